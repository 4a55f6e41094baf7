"""Augmentation: exact geometry, binomial-interval probabilities, determinism, JAX parity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy.stats import binomtest, chisquare

from jaxwsi.pipeline.augment import (
    AugmentDraw,
    apply_augment,
    augment_images,
    draw_augment,
    flip_horizontal,
    flip_vertical,
    gaussian_blur,
    jpeg_recompress,
    parse_augment,
    rotate90,
)
from jaxwsi.pipeline.augment_jax import apply_jax, draw_jax, random_augment_jax
from jaxwsi.pipeline.example_rng import example_generators
from jaxwsi.pipeline.standardize import standardize, standardize_jax

N_DRAWS = 4000
#: Two-sided p-value below which a rate is called wrong. The draws are seeded, so this cannot flake.
P_MIN = 1e-3


@pytest.fixture(scope="module")
def tiles(fixtures_dir) -> np.ndarray:
    histo = np.asarray(Image.open(fixtures_dir / "images" / "histo.jpg").convert("RGB"))
    return np.stack([histo[y : y + 64, x : x + 64] for y in (0, 100, 200) for x in (0, 150, 300)])


@pytest.fixture(scope="module")
def draws() -> dict[str, AugmentDraw]:
    rngs = example_generators(np.random.default_rng(1234), N_DRAWS)
    return {d.letter: d for d in draw_augment("xyrjbn", rngs, stain_jitter_size=6)}


def test_parse_augment():
    assert parse_augment(True) == "xyrjb"
    assert parse_augment(False) == "" and parse_augment(None) == ""
    assert parse_augment("ryx") == "ryx"
    with pytest.raises(ValueError, match=r"unknown augmentation letter\(s\) \['q', 'z'\]"):
        parse_augment("xqz")
    with pytest.raises(TypeError, match="string of letters or a bool"):
        parse_augment(3)


def test_flips_and_rotations_are_exact(tiles):
    every = np.ones(len(tiles), dtype=bool)
    np.testing.assert_array_equal(flip_horizontal(tiles, every), tiles[:, :, ::-1])
    np.testing.assert_array_equal(flip_vertical(tiles, every), tiles[:, ::-1])
    some = np.arange(len(tiles)) % 2 == 0
    flipped = flip_horizontal(tiles, some)
    np.testing.assert_array_equal(flipped[~some], tiles[~some])
    np.testing.assert_array_equal(flipped[some], tiles[some][:, :, ::-1])
    turns = np.arange(len(tiles)) % 4
    rotated = rotate90(tiles, turns)
    for tile, k, out in zip(tiles, turns, rotated, strict=True):
        np.testing.assert_array_equal(out, np.rot90(tile, k))
    np.testing.assert_array_equal(rotate90(rotated, (4 - turns) % 4), tiles)
    with pytest.raises(ValueError, match="square"):
        rotate90(np.zeros((2, 4, 6, 3), np.uint8), np.array([1, 0]))


@pytest.mark.parametrize(
    ("letter", "probability"), [("x", 0.5), ("y", 0.5), ("j", 0.5), ("b", 0.1)]
)
def test_application_rates_are_within_binomial_intervals(draws, letter, probability):
    applied = int(draws[letter].apply.sum())
    assert binomtest(applied, N_DRAWS, probability).pvalue > P_MIN, applied / N_DRAWS


def test_rotation_is_uniform_over_quarter_turns(draws):
    counts = np.bincount(draws["r"].value, minlength=4)
    assert counts.shape == (4,)
    assert chisquare(counts).pvalue > P_MIN, counts
    np.testing.assert_array_equal(draws["r"].apply, draws["r"].value != 0)


def test_jpeg_quality_and_blur_sigma_ranges(draws):
    quality = draws["j"].value
    assert quality.min() == 50 and quality.max() == 100
    assert chisquare(np.bincount(quality - 50, minlength=51)).pvalue > P_MIN
    sigma = draws["b"].value
    assert 0.5 <= sigma.min() < 0.55 and 1.95 < sigma.max() <= 2.0
    assert abs(np.mean(sigma) - 1.25) < 0.03
    jitter = draws["n"].value
    assert jitter.shape == (N_DRAWS, 6) and abs(jitter.std() - 1) < 0.03


def test_apply_follows_the_draws_exactly(tiles):
    rngs = example_generators(np.random.default_rng(7), len(tiles))
    drawn = draw_augment("xr", rngs)
    out = apply_augment(tiles, drawn)
    for index, tile in enumerate(tiles):
        expected = tile[:, ::-1] if drawn[0].apply[index] else tile
        np.testing.assert_array_equal(out[index], np.rot90(expected, drawn[1].value[index]))


def test_jpeg_and_blur_change_images_as_expected(tiles):
    tile = tiles[4]
    low, high = jpeg_recompress(tile, 50), jpeg_recompress(tile, 100)
    error = [np.abs(x.astype(int) - tile).mean() for x in (low, high)]
    assert error[0] > error[1] > 0
    blurred = gaussian_blur(tile, 2.0)
    assert blurred.dtype == np.uint8 and blurred.shape == tile.shape
    assert (
        np.abs(np.diff(blurred.astype(int), axis=1)).mean()
        < 0.6 * np.abs(np.diff(tile.astype(int), axis=1)).mean()
    )
    assert abs(blurred.astype(float).mean() - tile.astype(float).mean()) < 1


def test_augment_is_deterministic_per_seed_and_per_example(tiles):
    same = np.stack([tiles[4]] * 16)
    first = augment_images(same, "xyrjb", 3)
    np.testing.assert_array_equal(first, augment_images(same, "xyrjb", 3))
    assert not np.array_equal(first, augment_images(same, "xyrjb", 4))
    distinct = {out.tobytes() for out in first}
    assert len(distinct) > 4  # examples draw from their own generators
    single = augment_images(tiles[0], True, 5)
    assert single.shape == tiles[0].shape and single.dtype == np.uint8


def test_augment_rejects_bad_inputs(tiles):
    with pytest.raises(TypeError, match="uint8"):
        augment_images(tiles.astype(np.float32), "x", 0)
    with pytest.raises(ValueError, match="3 RGB channels"):
        augment_images(np.zeros((2, 8, 8, 1), np.uint8), "x", 0)
    with pytest.raises(ValueError, match="unknown augmentation letter"):
        augment_images(tiles, "xw", 0)
    with pytest.raises(ValueError, match="runs inside the normalizer"):
        augment_images(tiles, "xn", 0)
    with pytest.raises(ValueError, match="needs a stain normalizer"):
        draw_augment("n", example_generators(np.random.default_rng(0), 2))


def as_jax_draws(drawn: list[AugmentDraw]) -> tuple:
    """numpy draws in the layout apply_jax takes."""
    layout = {"r": lambda d: d.value, "b": lambda d: (d.apply, d.value.astype(np.float32))}
    return tuple(layout.get(d.letter, lambda d: d.apply)(d) for d in drawn)


@pytest.mark.parametrize("order", ["xyr", "rx", "ryx", "yy"])
def test_jax_geometry_matches_numpy_on_the_same_draws(tiles, order):
    drawn = draw_augment(order, example_generators(np.random.default_rng(11), len(tiles)))
    expected = apply_augment(tiles, drawn)
    got = apply_jax(jnp.asarray(tiles), order, as_jax_draws(drawn))
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_jax_blur_matches_scipy_within_one_level(tiles):
    sigma = np.array([0.5, 0.74, 1.0, 1.3, 1.62, 2.0, 1.1, 0.9, 1.9], dtype=np.float32)
    apply = np.arange(len(tiles)) != 6
    drawn = [AugmentDraw("b", apply, sigma)]
    expected = apply_augment(tiles, drawn)
    got = np.asarray(apply_jax(jnp.asarray(tiles), "b", as_jax_draws(drawn)))
    np.testing.assert_array_equal(got[6], tiles[6])
    difference = np.abs(got.astype(int) - expected)
    assert difference.max() <= 1 and difference.mean() < 0.01, (difference.max(), difference.mean())
    assert got.dtype == np.uint8


def test_jax_random_augment_is_seeded_and_has_the_right_rates():
    key = jax.random.key(0)
    images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (6, 5, 5, 3), dtype=np.uint8))
    out = random_augment_jax(images, key, "xyrb")
    np.testing.assert_array_equal(
        np.asarray(out), np.asarray(random_augment_jax(images, key, "xyrb"))
    )
    other = random_augment_jax(images, jax.random.key(1))
    assert not np.array_equal(np.asarray(out), np.asarray(other))
    draw = jax.jit(draw_jax, static_argnums=(1, 2))
    flips_x, flips_y, turns, (blurs, sigma) = draw(key, N_DRAWS, "xyrb")
    flips_x, flips_y, turns, blurs, sigma = map(np.asarray, (flips_x, flips_y, turns, blurs, sigma))
    assert binomtest(int(blurs.sum()), N_DRAWS, 0.1).pvalue > P_MIN
    assert sigma.min() >= 0.5 and sigma.max() <= 2.0 and abs(sigma.mean() - 1.25) < 0.03
    assert binomtest(int(flips_x.sum()), N_DRAWS, 0.5).pvalue > P_MIN
    assert binomtest(int(flips_y.sum()), N_DRAWS, 0.5).pvalue > P_MIN
    assert chisquare(np.bincount(turns, minlength=4)).pvalue > P_MIN
    assert not np.array_equal(flips_x, flips_y)
    with pytest.raises(ValueError, match="JAX augmentation runs only"):
        random_augment_jax(images, key, "xj")


def test_standardize_numpy_and_jax(tiles):
    scaled = standardize(tiles)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, tiles / 127.5 - 1, atol=1e-6)
    assert standardize(np.array([[[0, 255, 0]]], np.uint8)).tolist() == [[[-1.0, 1.0, -1.0]]]
    per_image = standardize(tiles, "per_image")
    np.testing.assert_allclose(per_image.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(per_image.std(axis=(1, 2, 3)), 1, atol=1e-4)
    flat = standardize(np.full((4, 4, 3), 9, np.uint8), "per_image")
    assert np.all(flat == 0)
    for mode in ("scale", "per_image"):
        np.testing.assert_allclose(
            np.asarray(standardize_jax(jnp.asarray(tiles), mode)),
            standardize(tiles, mode),
            atol=1e-5,
        )
    with pytest.raises(ValueError, match="unknown standardization 'minmax'"):
        standardize(tiles, "minmax")
