"""Stain normalizers on a real H&E image and a re-stained copy of it, numpy and JAX."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from skimage.color import rgb2lab

from jaxwsi.norm import (
    NORMALIZERS,
    NotFittedError,
    autoselect,
    load_normalizer,
    load_reference_image,
    save_normalizer,
)
from jaxwsi.norm.color import lab_to_rgb, rgb_to_lab
from jaxwsi.norm.reinhard import standardize_brightness
from jaxwsi.norm.stats import masked_percentiles, uint8_percentile

METHODS = sorted(NORMALIZERS)
JAX_METHODS = [m for m in METHODS if NORMALIZERS[m].has_jax]


@pytest.fixture(scope="module")
def fitted(histo) -> dict:
    return {method: autoselect(method, histo) for method in METHODS}


def lab_stats(image: np.ndarray) -> np.ndarray:
    """Per-channel LAB means and stds (skimage) as one vector of 6."""
    lab = rgb2lab(image).reshape(-1, 3)
    return np.concatenate([lab.mean(axis=0), lab.std(axis=0)])


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_lab_conversion_matches_skimage_and_round_trips(histo):
    rgb = histo.astype(np.float32) / 255
    lab = rgb_to_lab(rgb)
    np.testing.assert_allclose(lab, rgb2lab(histo), atol=2e-3)
    np.testing.assert_allclose(lab_to_rgb(lab), rgb, atol=1e-4)


def test_restained_fixture_really_differs(histo, restained):
    assert mean_abs_diff(histo, restained) > 10


@pytest.mark.parametrize("method", METHODS)
def test_reference_maps_near_itself(method, histo, fitted):
    out = fitted[method].transform(histo)
    assert out.dtype == np.uint8 and out.shape == histo.shape
    if method in ("reinhard", "reinhard_mask"):
        # These standardize brightness first: the fixed point is the brightened image (tissue).
        expected = standardize_brightness(histo[None], np)[0]
        tissue = rgb2lab(expected)[..., 0] < 93 if method == "reinhard_mask" else slice(None)
        assert mean_abs_diff(out[tissue], expected[tissue]) < 1.0
    else:
        assert mean_abs_diff(out, histo) < 3.5


@pytest.mark.parametrize("method", METHODS)
def test_restained_image_moves_to_the_reference(method, histo, restained, fitted):
    normalizer = fitted[method]
    reference_out = normalizer.transform(histo)
    restained_out = normalizer.transform(restained)
    before = np.abs(lab_stats(restained) - lab_stats(histo)).sum()
    after = np.abs(lab_stats(restained_out) - lab_stats(reference_out)).sum()
    assert after < 0.5 * before, (before, after)
    # Same tissue, so normalization should largely undo the stain change pixel by pixel too.
    assert mean_abs_diff(restained_out, reference_out) < 0.6 * mean_abs_diff(restained, histo)


@pytest.mark.parametrize("method", ["reinhard_fast", "reinhard", "reinhard_mask"])
def test_reinhard_output_has_the_target_lab_statistics(method, restained, fitted):
    normalizer = fitted[method]
    lab = rgb2lab(normalizer.transform(restained)).reshape(-1, 3)
    if method == "reinhard_mask":  # the tissue mask is taken on the brightened input
        brightened = standardize_brightness(restained[None], np)[0]
        lab = lab[rgb2lab(brightened).reshape(-1, 3)[:, 0] < 93]
    params = normalizer.get_params()
    np.testing.assert_allclose(lab.mean(axis=0), params["target_means"], atol=1.5)
    np.testing.assert_allclose(lab.std(axis=0), params["target_stds"], rtol=0.1)


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_one_image_at_a_time(method, histo, restained, fitted):
    batch = np.stack([histo[:128, :128], restained[:128, :128], histo[100:228, 200:328]])
    together = fitted[method].transform(batch)
    for image, out in zip(batch, together, strict=True):
        np.testing.assert_array_equal(fitted[method].transform(image), out)


@pytest.mark.parametrize("method", ["reinhard_mask", "macenko", "vahadane"])
def test_blank_image_is_returned_unchanged(method, histo, fitted):
    blank = np.full((32, 32, 3), 245, dtype=np.uint8)
    out = fitted[method].transform(np.stack([blank, histo[:32, :32]]))
    np.testing.assert_array_equal(out[0], blank)


def test_reinhard_mask_leaves_background_untouched(fitted):
    image = np.full((40, 40, 3), 250, dtype=np.uint8)
    image[10:30, 10:30] = (150, 80, 160)
    image[15:25, 15:25] = (90, 40, 120)
    out = fitted["reinhard_mask"].transform(image)
    np.testing.assert_array_equal(out[:5], image[:5])
    assert mean_abs_diff(out[10:30, 10:30], image[10:30, 10:30]) > 1


@pytest.mark.parametrize("method", JAX_METHODS)
def test_jax_transform_agrees_with_numpy(method, histo, restained, fitted):
    batch = np.stack(
        [histo[:96, :96], restained[50:146, 100:196], np.full((96, 96, 3), 250, np.uint8)]
    )
    normalizer = fitted[method]
    jitter = (
        np.random.default_rng(0).standard_normal((3, normalizer.jitter_size)).astype(np.float32)
    )
    run = normalizer.jax_transform()
    for j in (None, jitter):
        expected = normalizer.transform(batch, jitter=j)
        got = np.asarray(run(jnp.asarray(batch), None if j is None else jnp.asarray(j)))
        difference = np.abs(got.astype(np.int16) - expected.astype(np.int16))
        assert difference.max() <= 2 and difference.mean() < 0.05, (
            difference.max(),
            difference.mean(),
        )


@pytest.mark.parametrize("method", METHODS)
def test_stain_jitter_perturbs_per_image(method, histo, fitted):
    normalizer = fitted[method]
    batch = np.stack([histo[:64, :64]] * 3)
    jitter = np.zeros((3, normalizer.jitter_size), dtype=np.float32)
    jitter[1] = 1.5
    jitter[2] = -1.5
    out = normalizer.transform(batch, jitter=jitter)
    np.testing.assert_array_equal(out[0], normalizer.transform(batch[0]))
    assert mean_abs_diff(out[1], out[0]) > 1 and mean_abs_diff(out[2], out[0]) > 1
    if method.startswith("reinhard"):
        lightness = [rgb2lab(image)[..., 0].mean() for image in out]
        assert lightness[2] < lightness[0] < lightness[1]


@pytest.mark.parametrize("method", METHODS)
def test_params_round_trip_through_json(method, histo, restained, fitted, tmp_path):
    normalizer = fitted[method]
    text = json.dumps(normalizer.get_params())
    rebuilt = autoselect(method, json.loads(text))
    np.testing.assert_array_equal(rebuilt.transform(restained), normalizer.transform(restained))
    again = NORMALIZERS[method]().fit_from_params(
        **{k: v for k, v in json.loads(text).items() if k != "method"}
    )
    np.testing.assert_array_equal(again.transform(restained), normalizer.transform(restained))


def test_params_json_keeps_other_keys_and_restores_the_fit(fitted, restained, tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"model_name": "m1", "tile_px": 299}))
    save_normalizer(path, fitted["macenko"])
    content = json.loads(path.read_text())
    assert content["model_name"] == "m1" and content["norm_fit"]["method"] == "macenko"
    loaded = load_normalizer(path)
    np.testing.assert_array_equal(
        loaded.transform(restained), fitted["macenko"].transform(restained)
    )
    save_normalizer(path, None)
    assert load_normalizer(path) is None
    assert list(tmp_path.iterdir()) == [path]


def test_params_json_errors(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"model_name": "m1"}))
    with pytest.raises(KeyError, match="norm_fit"):
        load_normalizer(path)
    path.write_text(json.dumps({"norm_fit": {"method": "macenko", "stain_matrix": [1, 2]}}))
    with pytest.raises(ValueError, match="params.json.*norm_fit"):
        load_normalizer(path)


@pytest.mark.parametrize("method", METHODS)
def test_default_fit_is_the_packaged_reference(method, restained):
    default = autoselect(method)
    assert not default.is_fitted
    out = default.transform(restained[:64, :64])
    assert default.is_fitted
    explicit = NORMALIZERS[method]().fit(load_reference_image())
    np.testing.assert_array_equal(out, explicit.transform(restained[:64, :64]))


def test_autoselect_from_a_path_equals_fit_on_the_array(fixtures_dir, histo, restained):
    from_path = autoselect("reinhard_fast", fixtures_dir / "images" / "histo.jpg")
    from_array = autoselect("reinhard_fast", histo)
    np.testing.assert_array_equal(from_path.transform(restained), from_array.transform(restained))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), TypeError, "uint8"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, "3 RGB channels"),
        (np.zeros((8, 8), np.uint8), ValueError, "2-D"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, "empty"),
        ([[1, 2, 3]], TypeError, "numpy array"),
    ],
)
def test_bad_images_are_rejected(bad, error, message, fitted):
    with pytest.raises(error, match=message):
        fitted["macenko"].transform(bad)
    with pytest.raises(error, match=message):
        NORMALIZERS["reinhard"]().fit(bad)


def test_bad_methods_params_and_sources_are_rejected(fixtures_dir, histo):
    with pytest.raises(ValueError, match="unknown stain normalizer 'rienhard'"):
        autoselect("rienhard")
    with pytest.raises(TypeError, match="source must be"):
        autoselect("macenko", 3.5)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        autoselect("macenko", fixtures_dir / "nope.jpg")
    with pytest.raises(ValueError, match="exactly"):
        autoselect("reinhard", {"target_means": [1, 2, 3]})
    with pytest.raises(ValueError, match="shape"):
        autoselect("reinhard", {"target_means": [1, 2], "target_stds": [1, 2, 3]})
    with pytest.raises(ValueError, match="not finite"):
        autoselect("reinhard", {"target_means": [1, 2, float("nan")], "target_stds": [1, 2, 3]})
    with pytest.raises(ValueError, match="for method 'macenko'"):
        autoselect("reinhard", autoselect("macenko", histo).get_params())
    with pytest.raises(ValueError, match="tissue pixels"):
        NORMALIZERS["macenko"]().fit(np.full((16, 16, 3), 255, np.uint8))
    with pytest.raises(ValueError, match="jitter must have shape"):
        autoselect("macenko", histo).transform(histo[:8, :8], jitter=np.zeros((1, 3)))
    with pytest.raises(NotImplementedError, match="vahadane has no JAX"):
        autoselect("vahadane").jax_transform()


def test_transform_before_fit_without_default_is_an_error(histo):
    normalizer = NORMALIZERS["macenko"](default_fit=False)
    with pytest.raises(NotFittedError, match="has not been fitted"):
        normalizer.transform(histo)
    normalizer.fit(histo)
    assert normalizer.transform(histo).shape == histo.shape


@pytest.mark.parametrize("length", [1, 2, 7, 1000])
def test_uint8_percentile_equals_numpy_percentile(length):
    values = np.random.default_rng(length).integers(0, 256, (3, length), dtype=np.uint8)
    for q in (0.0, 1.0, 50.0, 90.0, 99.0, 100.0):
        expected = np.percentile(values.astype(np.float64), q, axis=1)
        np.testing.assert_allclose(uint8_percentile(values, q, np), expected, atol=1e-3)
        got = np.asarray(uint8_percentile(jnp.asarray(values), q, jnp))
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_masked_percentiles_equal_numpy_on_the_selection():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 500)).astype(np.float32)
    mask = rng.random((3, 500)) < np.array([[0.9], [0.05], [0.0]])
    qs = (1.0, 50.0, 99.0)
    for xp in (np, jnp):
        got = np.asarray(masked_percentiles(xp.asarray(values), xp.asarray(mask), qs, xp))
        for row in range(2):
            np.testing.assert_allclose(
                got[row], np.percentile(values[row][mask[row]], qs), rtol=1e-5
            )
        assert np.all(np.isnan(got[2]))
