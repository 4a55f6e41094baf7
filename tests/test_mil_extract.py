"""Feature extraction into bags: every tile once through the compiled extractor, bags_config,
resume, shards, and extractor errors (missing or unfit weights file)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxwsi.io import Interleaver
from jaxwsi.mil import BagError, extract_features, feature_extractor, read_bag
from jaxwsi.models import Preprocessing, WeightsError
from tests.mil_data import Tiny, key_instance_bags, slide_cohort, write_cohort


@pytest.fixture
def cohort(tmp_path):
    bags = key_instance_bags(3)
    dataset, _ = write_cohort(tmp_path, bags, tiles_per_slide=11, write_bags=False)
    return dataset, tmp_path


def test_every_tile_once_resume_and_config(cohort):
    dataset, root = cohort
    out = root / "feats"
    fx = feature_extractor(Tiny())
    report = extract_features(fx, dataset, out, batch_size=8, min_tiles=4, progress=False)
    assert list(report["status"]) == ["done"] * 3
    model = Tiny()
    for slide, path in zip(dataset.slides(), dataset.tfrecords(), strict=True):
        bag = read_bag(out / f"{slide}.npz")
        tiles = next(
            iter(
                Interleaver(
                    [path],
                    batch_size=64,
                    infinite=False,
                    shuffle=False,
                    drop_remainder=False,
                    incl_loc=True,
                )
            )
        )
        x = (tiles["image"].astype(np.float32) / 255 - 0.5) / 0.25
        np.testing.assert_allclose(bag.features, np.asarray(model(jnp.asarray(x))), atol=1e-5)
        np.testing.assert_array_equal(bag.locations[:, 0], tiles["loc_x"])
    config = json.loads((out / "bags_config.json").read_text())
    assert config["num_features"] == 4 and config["tile_px"] == 16 and config["tile_um"] == 32
    assert config["preprocessing"]["size"] == 16 and config["weights"] is None

    first = dataset.slides()[0]
    before = {s: (out / f"{s}.npz").read_bytes() for s in dataset.slides()}
    (out / f"{first}.npz").unlink()
    again = extract_features(fx, dataset, out, batch_size=8, min_tiles=4, progress=False)
    assert dict(zip(again["slide"], again["status"], strict=True)) == {
        first: "done",
        **{s: "skipped" for s in dataset.slides()[1:]},
    }
    assert (out / f"{first}.npz").read_bytes() == before[first]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_shards_min_tiles_and_max_tiles(cohort):
    dataset, root = cohort
    fx = feature_extractor(Tiny())
    report = extract_features(fx, dataset, root / "s1", shard=(1, 2), max_tiles=5, min_tiles=1,
                              progress=False)  # fmt: skip
    assert list(report["slide"]) == dataset.slides()[1::2]
    assert len(read_bag(root / "s1" / f"{dataset.slides()[1]}.npz")) == 5
    few = extract_features(fx, dataset, root / "s2", min_tiles=12, progress=False)
    assert set(few["status"]) == {"too_few_tiles"}


def test_a_folder_of_other_bags_is_not_mixed(cohort):
    dataset, root = cohort
    extract_features(feature_extractor(Tiny()), dataset, root / "f", progress=False)
    other = feature_extractor(Tiny(), preprocessing=Preprocessing(size=32))
    with pytest.raises(BagError, match="preprocessing"):
        extract_features(other, dataset, root / "f", progress=False)


def test_weights_file_errors_say_what_to_pass(tmp_path):
    from safetensors.numpy import save_file

    with pytest.raises(FileNotFoundError, match="weights file not found"):
        feature_extractor("resnet50_trunc", weights=tmp_path / "missing.safetensors")
    save_file({"conv1.weight": np.zeros((3, 3), np.float32)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="conv1"):
        feature_extractor("resnet50_trunc", weights=tmp_path / "bad.safetensors")


def test_predict_slide_equals_the_prediction_from_bags(tmp_path):
    from jaxwsi.mil import mil_config, predict_mil, predict_slide, train_mil

    slides, dataset = slide_cohort(tmp_path, "label", ["x", "y"])
    config = mil_config("attention_mil", epochs=1, batch_size=8, bag_size=16)
    train_mil(config, dataset, None, "label", tmp_path / "bags", tmp_path / "run", progress=False)
    from_bags, _, _ = predict_mil(tmp_path / "run", dataset, tmp_path / "bags")
    for i, slide in enumerate(slides):
        result = predict_slide(tmp_path / "run", slide, extractor=Tiny(),
                               heatmap=tmp_path / f"{i}.png")  # fmt: skip
        expected = from_bags.loc[from_bags["slide"] == f"slide{i}", ["y_pred0", "y_pred1"]]
        np.testing.assert_allclose(result.probs, expected.to_numpy()[0], rtol=1e-4)
        assert len(result.attention) == len(read_bag(tmp_path / "bags" / f"slide{i}.npz"))
        assert (tmp_path / f"{i}.png").stat().st_size > 0


def test_project_bags_and_cross_validation(tmp_path):
    import shutil

    from jaxwsi.mil import mil_config
    from jaxwsi.project import create_project

    bags = key_instance_bags(12, seed=3)
    dataset, _ = write_cohort(tmp_path / "cohort", bags, tiles_per_slide=4, write_bags=False)
    project = create_project(tmp_path / "proj", annotations=tmp_path / "cohort" / "annotations.csv")
    shutil.copytree(tmp_path / "cohort" / "tfrecords", project.tfrecord_dir(16, 32))
    ds = project.dataset(16, 32)
    report = project.generate_feature_bags(Tiny(), ds, min_tiles=1, progress=False)
    assert set(report["status"]) == {"done"}
    bag_dir = tmp_path / "proj" / "bags" / "Tiny_16px_32"
    assert len(list(bag_dir.glob("*.npz"))) == 12
    config = mil_config("attention_mil", epochs=1, batch_size=8, bag_size=4)
    frames = project.train_mil(config, "label", bag_dir, dataset=ds, val_k_fold=2, progress=False)
    run = tmp_path / "proj" / "models" / "mil" / "00000-attention_mil-label"
    assert len(frames) == 2 and (run / "fold1" / "predictions.parquet").exists()
    validated = [set(f["slide"]) for f in frames]
    assert validated[0].isdisjoint(validated[1]) and validated[0] | validated[1] == set(ds.slides())
    assert json.loads((tmp_path / "proj" / "splits.json").read_text())  # the split was saved
