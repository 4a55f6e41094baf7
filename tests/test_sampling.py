"""Sampling semantics of the loader: shard partitioning, clipping, weights, determinism."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from interleaver_data import pairs, write_files

from jaxwsi import _native
from jaxwsi.io.interleaver import Interleaver
from jaxwsi.io.settings import LoaderSettings


def shard_items(counts, clip, shard, num_shards, seed=0):
    """The (file, record) pairs a shard owns, from the plan alone (nothing is read)."""
    tables = [np.zeros((n, 2), dtype=np.int64) for n in counts]
    settings = LoaderSettings(
        seed=seed, rank=shard, num_replicas=num_shards, infinite=False, batch_size=1,
        decode=False, num_threads=1,
    )  # fmt: skip
    loader = _native.NativeLoader(
        [f"unused{i}" for i in range(len(counts))],
        tables,
        weights=None,
        clip=clip,
        label_slides=None,
        settings=settings,
    )
    files, records = loader.shard_items()
    return list(zip(files, records, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=8),
    clip=st.one_of(st.none(), st.integers(0, 25)),
    replicas=st.integers(1, 4),
    workers=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_shards_are_disjoint_covering_and_balanced(counts, clip, replicas, workers, seed):
    num_shards = replicas * workers
    clips = None if clip is None else [clip] * len(counts)
    shards = [
        shard_items(counts, clips, rank * workers + worker, num_shards, seed)
        for rank in range(replicas)
        for worker in range(workers)
    ]
    union = [p for s in shards for p in s]
    assert len(union) == len(set(union)), "a record belongs to two shards"
    kept = collections.Counter(f for f, _ in union)
    for f, n in enumerate(counts):
        assert kept[f] == (n if clip is None else min(n, clip))
    assert all(0 <= r < counts[f] for f, r in union)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1, sizes


def test_clip_keeps_a_seeded_subset_not_the_first_records():
    a = {r for _, r in shard_items([100], [10], 0, 1, seed=1)}
    assert a == {r for _, r in shard_items([100], [10], 0, 1, seed=1)}
    assert a != {r for _, r in shard_items([100], [10], 0, 1, seed=2)}
    assert a != set(range(10)) and len(a) == 10


def test_small_files_do_not_pile_onto_shard_zero():
    sizes = [len(shard_items([1] * 12, None, s, 8)) for s in range(8)]
    assert sorted(sizes) == [1] * 4 + [2] * 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_files(tmp_path_factory.mktemp("sampling"), [40, 25, 7, 12])


def stream(paths, n_batches, **kwargs):
    kwargs.setdefault("rank", 0)
    kwargs.setdefault("num_replicas", 1)
    il = Interleaver(paths, decode=False, incl_loc=True, **kwargs)
    return [p for _, batch in zip(range(n_batches), il, strict=False) for p in pairs(batch)]


def test_finite_epoch_reads_each_clipped_record_once_across_replicas_and_workers(files):
    counts, clip = [40, 25, 7, 12], [30, 25, 7, 5]
    union = []
    for rank in range(2):
        for worker in range(3):
            union += stream(
                files, 10**6, infinite=False, clip=clip, weights=[1, 5, 2, 1], rank=rank,
                num_replicas=2, worker=worker, num_workers=3, batch_size=4, drop_remainder=False,
            )  # fmt: skip
    assert (
        len(union) == len(set(union)) == sum(min(n, c) for n, c in zip(counts, clip, strict=True))
    )
    clipped = collections.Counter(f for f, _ in union)
    assert [clipped[f] for f in range(4)] == clip


def test_weights_change_only_the_order_of_a_finite_epoch(files):
    plain = stream(files, 10**6, infinite=False, batch_size=4, drop_remainder=False)
    weighted = stream(files, 10**6, infinite=False, batch_size=4, weights=[0, 0, 0, 1],
                      drop_remainder=False)  # fmt: skip
    assert sorted(plain) == sorted(weighted) and plain != weighted
    assert all(f == 3 for f, _ in weighted[:12]), "the only weighted file comes first"


def test_infinite_file_frequencies_follow_weights(files):
    weights = np.array([1.0, 2.0, 4.0, 1.0])
    drawn = stream(files, 40, weights=weights, batch_size=100)
    observed = np.bincount([f for f, _ in drawn], minlength=4)
    expected = weights / weights.sum() * observed.sum()
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3, observed


def test_union_of_shards_follows_weights(files):
    weights = np.array([1.0, 1.0, 3.0, 1.0])
    drawn = []
    for rank in range(2):
        for worker in range(2):
            drawn += stream(files, 10, weights=weights, batch_size=100, rank=rank,
                            num_replicas=2, worker=worker, num_workers=2)  # fmt: skip
    observed = np.bincount([f for f, _ in drawn], minlength=4)
    expected = weights / weights.sum() * observed.sum()
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3, observed


def test_infinite_passes_over_a_file_are_reshuffled(files):
    drawn = stream(files[2:3], 4, batch_size=7)  # the 7-record file alone
    passes = [drawn[i : i + 7] for i in range(0, 28, 7)]
    assert all(sorted(p) == [(2, r) for r in range(7)] for p in passes)
    assert len({tuple(p) for p in passes}) > 1


def test_stream_is_deterministic_and_differs_between_shards_and_seeds(files):
    a = stream(files, 3, batch_size=8, num_replicas=2, rank=0)
    assert a == stream(files, 3, batch_size=8, num_replicas=2, rank=0)
    assert set(a).isdisjoint(stream(files, 3, batch_size=8, num_replicas=2, rank=1))
    assert a != stream(files, 3, batch_size=8, num_replicas=2, rank=0, seed=1)
    w0 = stream(files, 2, batch_size=8, num_workers=2, worker=0)
    assert set(w0).isdisjoint(stream(files, 2, batch_size=8, num_workers=2, worker=1))


def test_rank_and_replicas_default_to_the_jax_process(files):
    il = Interleaver(files, batch_size=2)
    assert (il.shard, il.num_shards) == (0, 1)
    il = Interleaver(files, batch_size=2, num_workers=4, worker=3)
    assert (il.shard, il.num_shards) == (3, 4)


def test_with_drop_remainder_every_shard_yields_the_same_number_of_batches(files):
    # 76 clipped records over 5 shards: sizes 16, 15, 15, 15, 15. The 16-record shard could
    # make 4 batches of 4, the others 3; all must stop at 3 or multi-host steps would diverge.
    counts = []
    for worker in range(5):
        il = Interleaver(files, batch_size=4, infinite=False, num_workers=5, worker=worker,
                         clip=[32, 25, 7, 12], rank=0, num_replicas=1, decode=False,
                         drop_remainder=True)  # fmt: skip
        counts.append((il.num_records, len(il), sum(1 for _ in il)))
    assert sorted(counts) == [(15, 3, 3)] * 4 + [(16, 3, 3)]
