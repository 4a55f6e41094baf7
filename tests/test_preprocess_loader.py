"""The preprocessing chain on the real loader: TFRecords → interleaved_dataset → preprocess."""

from __future__ import annotations

import shutil

import numpy as np

from jaxwsi.pipeline import interleaved_dataset, preprocess


def test_augmented_loader_stream_resumes_exactly(fixtures_dir, tmp_path):
    # Copies: the loader writes each file's .index.npz beside it, never into tests/fixtures.
    paths = [
        shutil.copy(path, tmp_path)
        for path in sorted((fixtures_dir / "tfrecords").glob("slide_*.tfrecords"))
    ]
    loader = interleaved_dataset(paths, batch_size=8, seed=0, incl_slidenames=True)
    dataset = preprocess(loader, normalizer="macenko", augment="xyrjbn", resize_target=32, seed=1)
    iterator = iter(dataset)
    first = next(iterator)
    assert first["image"].shape == (8, 32, 32, 3) and first["image"].dtype == np.float32
    assert first["slide"].shape == (8,)
    state = iterator.get_state()
    expected = [next(iterator) for _ in range(3)]
    restored = iter(dataset)
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["slide"], want["slide"])
