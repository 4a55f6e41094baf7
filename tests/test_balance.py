"""Balance weights and clip counts against Slideflow's formulas, computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxwsi.dataset.balance import balance_weights
from jaxwsi.dataset.clip import clip_counts
from jaxwsi.dataset.errors import DatasetError

# Five TFRecords, four patients (P1 has two slides), two categories.
#   record  patient  category  tiles
#   a1      P1       X         10
#   a2      P1       X         30
#   b1      P2       X         20
#   c1      P3       Y         15
#   d1      P4       Y         40
TILES = pd.DataFrame(
    {"patient": ["P1", "P1", "P2", "P3", "P4"], "tiles": [10, 30, 20, 15, 40]},
    index=["a1", "a2", "b1", "c1", "d1"],
)
CATEGORIES = pd.Series(["X", "X", "X", "Y", "Y"], index=TILES.index)


def assert_weights(actual: dict[str, float] | None, expected: dict[str, float]) -> None:
    assert actual is not None
    assert actual.keys() == expected.keys()
    for path, weight in expected.items():
        assert actual[path] == pytest.approx(weight, rel=1e-12), path
    assert sum(actual.values()) == pytest.approx(1.0)


def test_balance_tile_is_proportional_to_tiles():
    total = 10 + 30 + 20 + 15 + 40  # 115
    assert_weights(
        balance_weights(TILES, "tile"),
        {"a1": 10 / total, "a2": 30 / total, "b1": 20 / total, "c1": 15 / total, "d1": 40 / total},
    )


def test_balance_slide_is_uniform():
    assert_weights(balance_weights(TILES, "slide"), {p: 1 / 5 for p in TILES.index})


def test_balance_patient_splits_each_patient_evenly_over_its_slides():
    n_patients = 4
    assert_weights(
        balance_weights(TILES, "patient"),
        {
            "a1": 1 / (n_patients * 2),  # P1 has 2 slides
            "a2": 1 / (n_patients * 2),
            "b1": 1 / (n_patients * 1),
            "c1": 1 / (n_patients * 1),
            "d1": 1 / (n_patients * 1),
        },
    )


def test_balance_category_uses_slide_counts_not_tiles():
    slides_x, slides_y = 3, 2
    q_x = min(slides_x, slides_y) / slides_x  # 2/3
    q_y = min(slides_x, slides_y) / slides_y  # 1
    total = 3 * q_x + 2 * q_y  # 4
    expected = {"a1": q_x / total, "a2": q_x / total, "b1": q_x / total}
    expected |= {"c1": q_y / total, "d1": q_y / total}
    assert_weights(balance_weights(TILES, "category", CATEGORIES), expected)
    # Category masses are equal although category Y holds fewer tiles.
    weights = balance_weights(TILES, "category", CATEGORIES)
    assert weights["a1"] + weights["a2"] + weights["b1"] == pytest.approx(0.5)


def test_balance_none_means_uniform_sampling():
    assert balance_weights(TILES, "none") is None


def test_balance_unknown_strategy_is_an_error():
    with pytest.raises(DatasetError, match="unknown balance strategy 'tiles'"):
        balance_weights(TILES, "tiles")


def test_balance_category_without_categories_is_an_error():
    with pytest.raises(DatasetError, match="needs headers"):
        balance_weights(TILES, "category")


def test_clip_max_tiles_only():
    max_tiles = 25
    expected = {"a1": 10, "a2": 25, "b1": 20, "c1": 15, "d1": 25}  # min(n_i, 25)
    assert clip_counts(TILES, max_tiles) == expected


def test_clip_slide_caps_at_the_smallest_slide():
    smallest = min(10, 30, 20, 15, 40)  # 10
    assert clip_counts(TILES, strategy="slide") == {p: smallest for p in TILES.index}
    # With max_tiles below the smallest slide, max_tiles wins: c = min(10, 7) = 7.
    assert clip_counts(TILES, 7, strategy="slide") == {p: 7 for p in TILES.index}


def test_clip_patient_caps_every_record_at_the_smallest_patient():
    per_patient = {"P1": 10 + 30, "P2": 20, "P3": 15, "P4": 40}
    cap = min(per_patient.values())  # 15 (P3)
    expected = {"a1": min(10, cap), "a2": min(30, cap), "b1": min(20, cap)}
    expected |= {"c1": min(15, cap), "d1": min(40, cap)}
    assert expected == {"a1": 10, "a2": 15, "b1": 15, "c1": 15, "d1": 15}
    assert clip_counts(TILES, strategy="patient") == expected
    # Slideflow's quirk: P1 keeps 10 + 15 = 25 tiles, more than the cap of 15.
    clipped = clip_counts(TILES, strategy="patient")
    assert clipped["a1"] + clipped["a2"] == 25
    cap = min(cap, 12)  # with max_tiles=12
    assert clip_counts(TILES, 12, strategy="patient") == {
        "a1": 10,
        "a2": cap,
        "b1": cap,
        "c1": cap,
        "d1": cap,
    }


def test_clip_category_is_proportional_within_categories():
    tiles_x, tiles_y = 10 + 30 + 20, 15 + 40  # 60, 55
    fraction_x = min(tiles_x, tiles_y) / tiles_x  # 55/60
    fraction_y = min(tiles_x, tiles_y) / tiles_y  # 1
    expected = {
        "a1": math.floor(10 * fraction_x),  # floor(9.17) = 9
        "a2": math.floor(30 * fraction_x),  # floor(27.5) = 27
        "b1": math.floor(20 * fraction_x),  # floor(18.33) = 18
        "c1": math.floor(15 * fraction_y),
        "d1": math.floor(40 * fraction_y),
    }
    assert expected == {"a1": 9, "a2": 27, "b1": 18, "c1": 15, "d1": 40}
    assert clip_counts(TILES, strategy="category", categories=CATEGORIES) == expected
    # max_tiles is ignored by category clipping, as in Slideflow.
    assert clip_counts(TILES, 5, strategy="category", categories=CATEGORIES) == expected


def test_clip_nothing_to_clip_returns_none():
    assert clip_counts(TILES) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "tile"}, "unknown clip strategy 'tile'"),
        ({"max_tiles": -1}, "max_tiles must be >= 0"),
        ({"strategy": "category"}, "needs headers"),
    ],
)
def test_clip_bad_input(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        clip_counts(TILES, **kwargs)


_TABLES = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 60), st.sampled_from("XYZ")), min_size=1, max_size=8
)


def _table(rows):
    index = [f"r{i}" for i in range(len(rows))]
    tiles = pd.DataFrame(
        {"patient": [f"P{p}" for p, _, _ in rows], "tiles": [n for _, n, _ in rows]}, index=index
    )
    return tiles, pd.Series([c for _, _, c in rows], index=index)


@settings(max_examples=40, deadline=None)
@given(_TABLES, st.sampled_from(["tile", "slide", "patient", "category"]))
def test_balance_weights_are_a_distribution(rows, strategy):
    tiles, categories = _table(rows)
    weights = balance_weights(tiles, strategy, categories)
    assert set(weights) == set(tiles.index)
    assert all(w > 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)
    if strategy == "category":  # every category gets the same mass
        mass = pd.Series(weights).groupby(categories).sum()
        assert mass.to_numpy() == pytest.approx([1 / len(mass)] * len(mass))


@settings(max_examples=40, deadline=None)
@given(_TABLES, st.sampled_from([None, "slide", "patient", "category"]), st.integers(0, 30))
def test_clips_never_exceed_the_tiles(rows, strategy, max_tiles):
    tiles, categories = _table(rows)
    clips = clip_counts(tiles, max_tiles, strategy, categories)
    if clips is None:
        assert max_tiles == 0 and strategy is None
        return
    for path, n in tiles["tiles"].items():
        assert 0 <= clips[path] <= n
        if max_tiles and strategy != "category":
            assert clips[path] <= max_tiles


def test_proportional_patient_balance_is_what_slideflow_documents():
    n_patients, p1_tiles = 4, 10 + 30
    assert_weights(
        balance_weights(TILES, "patient", proportional=True),
        {
            "a1": (1 / n_patients) * 10 / p1_tiles,  # 1/16
            "a2": (1 / n_patients) * 30 / p1_tiles,  # 3/16
            "b1": 1 / n_patients,
            "c1": 1 / n_patients,
            "d1": 1 / n_patients,
        },
    )


def test_proportional_category_balance_weights_tiles_within_a_category():
    n_categories, tiles_x, tiles_y = 2, 10 + 30 + 20, 15 + 40
    assert_weights(
        balance_weights(TILES, "category", CATEGORIES, proportional=True),
        {
            "a1": (1 / n_categories) * 10 / tiles_x,  # 1/12
            "a2": (1 / n_categories) * 30 / tiles_x,  # 1/4
            "b1": (1 / n_categories) * 20 / tiles_x,  # 1/6
            "c1": (1 / n_categories) * 15 / tiles_y,  # 3/22
            "d1": (1 / n_categories) * 40 / tiles_y,  # 4/11
        },
    )


def test_proportional_patient_clip_caps_each_patient_in_total():
    cap = min(10 + 30, 20, 15, 40)  # 15, the smallest patient (P3)
    expected = {
        "a1": math.floor(10 * min(1, cap / 40)),  # floor(3.75) = 3
        "a2": math.floor(30 * min(1, cap / 40)),  # floor(11.25) = 11
        "b1": math.floor(20 * min(1, cap / 20)),  # 15
        "c1": math.floor(15 * min(1, cap / 15)),  # 15
        "d1": math.floor(40 * min(1, cap / 40)),  # 15
    }
    assert expected == {"a1": 3, "a2": 11, "b1": 15, "c1": 15, "d1": 15}
    assert clip_counts(TILES, strategy="patient", proportional=True) == expected
    # With max_tiles=8: c = 8, so P1 keeps floor(10·8/40) + floor(30·8/40) = 2 + 6.
    clipped = clip_counts(TILES, 8, strategy="patient", proportional=True)
    assert clipped == {"a1": 2, "a2": 6, "b1": 8, "c1": 8, "d1": 8}


def test_proportional_is_only_for_strategies_it_changes():
    with pytest.raises(DatasetError, match="proportional balancing applies to"):
        balance_weights(TILES, "slide", proportional=True)
    with pytest.raises(DatasetError, match="proportional clipping applies to 'patient'"):
        clip_counts(TILES, strategy="slide", proportional=True)
