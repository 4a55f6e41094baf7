"""User-facing message helpers, and the dataset errors that use them."""

from __future__ import annotations

import pytest

from jaxwsi.dataset.balance import check_balance_strategy
from jaxwsi.dataset.errors import DatasetError, SplitError
from jaxwsi.dataset.splits import check_split_strategy
from jaxwsi.messages import did_you_mean, name_some, plural, unknown


def test_plural():
    assert plural(1, "slide") == "1 slide"
    assert plural(0, "slide") == "0 slides"
    assert plural(2, "patch", "patches") == "2 patches"


def test_name_some_counts_the_rest():
    assert name_some(["a", "b"]) == "a, b"
    assert name_some(range(25), limit=3) == "0, 1, 2 and 22 more"


def test_did_you_mean_is_case_insensitive_and_silent_without_a_close_match():
    assert did_you_mean("Label", ["label", "site"]) == " (did you mean 'label'?)"
    assert did_you_mean("zzz", ["label", "site"]) == ""
    assert unknown("column", "sit", ["label", "site"]) == (
        "unknown column 'sit' (did you mean 'site'?); expected one of: label, site"
    )


def test_strategy_errors_suggest_the_closest_name():
    with pytest.raises(SplitError, match=r"'kfold' \(did you mean 'k-fold'\?\); expected one of"):
        check_split_strategy("kfold")
    with pytest.raises(DatasetError, match=r"did you mean 'patient'"):
        check_balance_strategy("patients")
