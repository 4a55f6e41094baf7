"""jaxwsi.pipeline.interleaved_dataset with Grain: map, mp_prefetch (spawn), device_put onto a
NamedSharding, an orbax checkpoint round trip, and pickling into a spawned process."""

from __future__ import annotations

import multiprocessing
import pickle

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags
from interleaver_data import pairs, write_files
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxwsi.io import IndexedSource
from jaxwsi.pipeline.grain_source import interleaved_dataset


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return write_files(tmp_path_factory.mktemp("grain"), [12, 9, 5])


def dataset(paths, **kwargs):
    kwargs.setdefault("rank", 0)
    kwargs.setdefault("num_replicas", 1)
    kwargs.setdefault("incl_loc", True)
    kwargs.setdefault("batch_size", 8)
    return interleaved_dataset(paths, **kwargs)


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_composes_with_map_and_device_put_onto_a_named_sharding(paths):
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, P("data"))
    ds = dataset(paths).map(lambda b: {"x": b["image"].astype(np.float32) / 255.0})
    ds = grain.experimental.device_put(ds, sharding, cpu_buffer_size=2, device_buffer_size=1)
    batch = next(iter(ds))
    assert isinstance(batch["x"], jax.Array) and batch["x"].shape == (8, 16, 16, 3)
    assert batch["x"].sharding == sharding
    assert len(batch["x"].addressable_shards) == 8
    expected = next(iter(dataset(paths)))["image"].astype(np.float32) / 255.0
    np.testing.assert_allclose(np.asarray(batch["x"]), expected)


def test_batch_stacks_loader_batches(paths):
    stacked = next(iter(dataset(paths, batch_size=4).batch(3)))
    assert stacked["image"].shape == (3, 4, 16, 16, 3)
    it = iter(dataset(paths, batch_size=4))
    np.testing.assert_array_equal(stacked["loc_x"], [next(it)["loc_x"] for _ in range(3)])


def test_orbax_checkpoint_round_trip_restores_the_stream(paths, tmp_path):
    ds = dataset(paths, weights=[1, 2, 3])
    reference = [pairs(b) for b in take(iter(ds), 5)]
    it = iter(ds)
    take(it, 2)
    checkpointer = ocp.Checkpointer(grain.checkpoint.CheckpointHandler())
    checkpointer.save(tmp_path / "ckpt", args=grain.checkpoint.CheckpointSave(it))
    restored = iter(ds)
    checkpointer.restore(tmp_path / "ckpt", args=grain.checkpoint.CheckpointRestore(restored))
    assert [pairs(b) for b in take(restored, 3)] == reference[2:]


def read_pickled(blob: bytes) -> list[list[tuple[int, int]]]:
    """Runs in a spawned process: unpickle the dataset and read two batches."""
    ds = pickle.loads(blob)
    return [pairs(b) for b in take(iter(ds), 2)]


def test_pickled_dataset_reads_the_same_stream_in_a_spawned_process(paths):
    ds = dataset(paths, seed=5)
    blob = pickle.dumps(ds)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        remote = pool.apply(read_pickled, (blob,))
    assert remote == [pairs(b) for b in take(iter(ds), 2)]


def test_mp_prefetch_workers_read_disjoint_shards_covering_an_epoch(paths):
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()  # Grain reads absl flags; pytest never parses them
    ds = dataset(paths, infinite=False, drop_remainder=False, batch_size=4)
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
    seen = [p for batch in ds for p in pairs(batch)]
    assert sorted(seen) == sorted({(f, r) for f, n in enumerate([12, 9, 5]) for r in range(n)})


def test_grain_slicing_composes_with_explicit_workers(paths):
    ds = dataset(paths, num_workers=2, worker=1)
    ds.set_slice(slice(1, None, 3))
    args = ds.interleaver_args
    assert (args["worker"], args["num_workers"]) == (4, 6)
    with pytest.raises(ValueError, match="only slice"):
        ds.set_slice(slice(0, 4, 2))


def test_indexed_source_gives_random_access_with_clip_and_sharding(paths):
    shards = [
        IndexedSource(paths, clip=[6, 9, 5], rank=r, num_replicas=3, incl_loc=True)
        for r in range(3)
    ]
    assert sorted(len(s) for s in shards) == [6, 7, 7]
    elements = [e for s in shards for e in s.__getitems__(range(len(s)))]
    union = [(int(e["loc_x"]) // 1000, int(e["loc_y"])) for e in elements]
    assert len(union) == len(set(union)) == 20
    source = pickle.loads(pickle.dumps(shards[0]))
    ds = grain.MapDataset.source(source).shuffle(seed=1)
    elements = [ds[i] for i in range(len(source))]
    assert sorted(int(e["loc_x"]) for e in elements) == sorted(
        int(source[i]["loc_x"]) for i in range(len(source))
    )
    assert elements[0]["image"].shape == (16, 16, 3)
    np.testing.assert_array_equal(source[-1]["image"], source[len(source) - 1]["image"])
    with pytest.raises(IndexError):
        source[len(source)]
