"""Patient-level train/validation splits: the algorithms, on patients only.

Every strategy assigns whole patients, so a patient's slides are never on both sides. Each
function returns a list of folds, a fold being ``(training patients, validation patients)`` as
sorted lists. Randomness comes from ``numpy.random.default_rng`` seeded by the caller, so a split
is reproducible from its seed (and is also saved to splits.json by the dataset).

- ``"k-fold"``: patients of each category (sorted, then shuffled) are dealt round-robin into k
  folds, continuing the deal across categories, so each category and each fold differ in size by
  at most one between folds. Without categories (continuous outcome or no headers) all patients
  are dealt as one group. Fold i validates on its patients and trains on the rest.
- ``"k-fold-manual"``: one fold per distinct value of an annotation column.
- ``"k-fold-preserved-site"``: whole sites are assigned to folds (greedily, largest site first,
  to the fold whose per-category counts stay closest to an even share), so no site is in both
  training and validation. Slideflow solves an integer program instead; this is a heuristic.
- ``"bootstrap"``: k rounds; each draws as many patients as there are, with replacement, for
  training and validates on the patients never drawn (out-of-bag).
- ``"fixed"``: one fold; round(n_c · val_fraction) patients of each category validate.
- ``"none"``: one fold, everything in training.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from jaxwsi.dataset.errors import SplitError
from jaxwsi.messages import unknown

log = logging.getLogger(__name__)

SPLIT_STRATEGIES = (
    "k-fold",
    "k-fold-manual",
    "k-fold-preserved-site",
    "bootstrap",
    "fixed",
    "none",
)

Fold = tuple[list[str], list[str]]


def check_split_strategy(strategy: str) -> str:
    """The strategy name; unknown names are an error."""
    if strategy not in SPLIT_STRATEGIES:
        raise SplitError(unknown("split strategy", strategy, SPLIT_STRATEGIES))
    return strategy


def folds_from_validation(
    patients: Sequence[str], validation: Sequence[Sequence[str]]
) -> list[Fold]:
    """Folds that validate on each group of patients and train on all the others."""
    everyone = set(patients)
    return [(sorted(everyone - set(group)), sorted(group)) for group in validation]


def _groups(categories: Mapping[str, str | None]) -> dict[str | None, list[str]]:
    groups: dict[str | None, list[str]] = defaultdict(list)
    for patient in sorted(categories):
        groups[categories[patient]].append(patient)
    return dict(sorted(groups.items(), key=lambda item: str(item[0])))


def k_fold(categories: Mapping[str, str | None], k: int, seed: int) -> list[Fold]:
    """Stratified (by category; None = one group) k-fold over patients."""
    if k < 2:
        raise SplitError(f"k-fold needs k_fold >= 2, got {k}")
    if len(categories) < k:
        raise SplitError(
            f"k-fold with k_fold={k} needs at least {k} patients, have {len(categories)}"
        )
    rng = np.random.default_rng(seed)
    validation: list[list[str]] = [[] for _ in range(k)]
    dealt = 0
    for category, patients in _groups(categories).items():
        if category is not None and len(patients) < k:
            log.warning(
                "category %r has %d patient(s), fewer than k_fold=%d: some folds will not "
                "validate on it",
                category,
                len(patients),
                k,
            )
        for patient in rng.permutation(patients):
            validation[dealt % k].append(str(patient))
            dealt += 1
    return folds_from_validation(list(categories), validation)


def manual_folds(fold_of_patient: Mapping[str, str]) -> tuple[list[str], list[Fold]]:
    """One fold per distinct value (sorted); returns the values and the folds."""
    values = sorted(set(fold_of_patient.values()))
    if len(values) < 2:
        raise SplitError(f"k-fold-manual needs at least 2 distinct fold values, found {values}")
    validation = [[p for p, v in fold_of_patient.items() if v == value] for value in values]
    return values, folds_from_validation(list(fold_of_patient), validation)


def preserved_site_folds(
    categories: Mapping[str, str | None], sites: Mapping[str, str], k: int, seed: int
) -> list[Fold]:
    """k folds of whole sites, balancing each category's patients across folds."""
    site_names = sorted(set(sites.values()))
    if len(site_names) < k:
        raise SplitError(
            f"k-fold-preserved-site with k_fold={k} needs at least {k} sites, "
            f"found {len(site_names)}: {site_names}"
        )
    category_names = sorted({str(c) for c in categories.values()})
    column = {c: i for i, c in enumerate(category_names)}
    counts = {s: np.zeros(len(category_names)) for s in site_names}
    for patient, site in sites.items():
        counts[site][column[str(categories[patient])]] += 1
    target = sum(counts.values()) / k
    # Largest site first; ties in a seeded random order.
    tie_break = dict(
        zip(site_names, np.random.default_rng(seed).permutation(len(site_names)), strict=True)
    )
    order = sorted(site_names, key=lambda s: (-counts[s].sum(), tie_break[s]))
    fold_counts = [np.zeros(len(category_names)) for _ in range(k)]
    site_fold: dict[str, int] = {}
    for site in order:
        # Increase in Σ_c (fold_c − target_c)² from adding this site to each fold.
        cost = [
            float(np.sum(counts[site] * (2 * f + counts[site] - 2 * target))) for f in fold_counts
        ]
        best = int(np.argmin(cost))
        site_fold[site] = best
        fold_counts[best] += counts[site]
    validation = [[p for p, s in sites.items() if site_fold[s] == i] for i in range(k)]
    return folds_from_validation(list(sites), validation)


def bootstrap(patients: Sequence[str], rounds: int, seed: int) -> list[Fold]:
    """``rounds`` bootstrap folds: training drawn with replacement, validation out-of-bag."""
    if rounds < 1:
        raise SplitError(f"bootstrap needs k_fold (the number of rounds) >= 1, got {rounds}")
    ordered = sorted(patients)
    rng = np.random.default_rng(seed)
    folds: list[Fold] = []
    for _ in range(rounds):
        drawn = {ordered[i] for i in rng.integers(0, len(ordered), size=len(ordered))}
        folds.append((sorted(drawn), sorted(set(ordered) - drawn)))
    return folds


def fixed(categories: Mapping[str, str | None], val_fraction: float, seed: int) -> list[Fold]:
    """One fold validating on round(n_c · val_fraction) shuffled patients of each category."""
    if not 0 < val_fraction < 1:
        raise SplitError(f"fixed split needs 0 < val_fraction < 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    validation: list[str] = []
    for patients in _groups(categories).values():
        n_val = round(len(patients) * val_fraction)
        validation += [str(p) for p in rng.permutation(patients)[:n_val]]
    if not validation or len(validation) == len(categories):
        raise SplitError(
            f"val_fraction={val_fraction} of {len(categories)} patient(s) leaves "
            f"{len(validation)} for validation: one side would be empty"
        )
    return folds_from_validation(list(categories), [validation])


def no_split(patients: Sequence[str]) -> list[Fold]:
    """One fold with every patient in training."""
    return [(sorted(patients), [])]


def check_disjoint(folds: Sequence[Fold], where: str = "split") -> None:
    """Raise if any fold has a patient in both training and validation."""
    for i, (training, validation) in enumerate(folds):
        both = sorted(set(training) & set(validation))
        if both:
            raise SplitError(
                f"{where}: fold {i + 1} has patient(s) in both training and validation: {both}"
            )
