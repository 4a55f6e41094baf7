"""Vahadane stain normalization: sparse non-negative stain separation by dictionary learning.

Vahadane et al., "Structure-preserving color normalization and sparse stain separation for
histological images", IEEE TMI 35(8), 2016; parameters as in StainTools. Per image: tissue pixels
(L*/100 < 0.8) give at most 4096 OD samples, spread evenly, and sparse non-negative dictionary
learning (2 atoms, lambda 0.1, as StainTools asks SPAMS) finds the stain matrix: alternate the exact
non-negative lasso for the codes with a block-coordinate update of the atoms (non-negative, norm
<= 1; Mairal et al. 2010), from the Ruifrok–Johnston H&E vectors, for a fixed number of rounds.
Concentrations solve the non-negative lasso ``min ½‖od − S c‖² + 0.01 ‖c‖₁, c ≥ 0`` exactly (with
two stains it has a closed form). Dictionary learning runs in numpy, one image at a time: this is
the slowest normalizer, and it has no JAX version.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from jaxwsi.norm.color import rgb_to_lab
from jaxwsi.norm.stain_matrix import StainMatrixNormalizer, haematoxylin_first, unit_columns

LUMINOSITY_THRESHOLD = 0.8
DICTIONARY_ALPHA = 0.1
LASSO_LAMBDA = 0.01
MAX_SAMPLES = 4096
DICTIONARY_ROUNDS = 30
#: Ruifrok & Johnston (2001) optical-density vectors of haematoxylin and eosin: the starting atoms.
RUIFROK_HE = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]], dtype=np.float32)


def nonnegative_lasso_2(density: np.ndarray, stains: np.ndarray, lam: float) -> np.ndarray:
    """Exact ``argmin_{c >= 0} ½‖x − S c‖² + lam·sum(c)`` per pixel, for ``S [B, 3, 2]``.

    The minimum lies in the interior of one face of the orthant (both positive, one zero, both
    zero); each face's unconstrained minimum is computed and the best feasible one kept.
    """
    gram = np.einsum("bki,bkj->bij", stains, stains)
    response = np.einsum("bnk,bki->bni", density, stains) - lam
    determinant = gram[:, 0, 0] * gram[:, 1, 1] - gram[:, 0, 1] ** 2
    inverse = (
        np.stack(
            [
                np.stack([gram[:, 1, 1], -gram[:, 0, 1]], axis=-1),
                np.stack([-gram[:, 1, 0], gram[:, 0, 0]], axis=-1),
            ],
            axis=-2,
        )
        / np.maximum(determinant, 1e-12)[:, None, None]
    )
    both = np.einsum("bij,bnj->bni", inverse, response)
    only_first = np.stack(
        [response[..., 0] / gram[:, None, 0, 0], np.zeros_like(response[..., 0])], -1
    )
    only_second = np.stack(
        [np.zeros_like(response[..., 1]), response[..., 1] / gram[:, None, 1, 1]], -1
    )
    candidates = np.stack([both, only_first, only_second, np.zeros_like(both)], axis=-2)
    feasible = np.all(candidates >= 0, axis=-1)
    # Objective up to the constant ½‖x‖²: ½ cᵀGc − (Sᵀx − lam)ᵀc.
    quadratic = np.einsum("bnki,bij,bnkj->bnk", candidates, gram, candidates)
    objective = 0.5 * quadratic - np.einsum("bnki,bni->bnk", candidates, response)
    best = np.argmin(np.where(feasible, objective, np.inf), axis=-1)
    return np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]


def learn_stain_dictionary(samples: np.ndarray) -> np.ndarray:
    """Two non-negative atoms ``[2, 3]`` (norm <= 1) that sparsely code ``samples [N, 3]`` (OD)."""
    atoms = RUIFROK_HE / np.linalg.norm(RUIFROK_HE, axis=1, keepdims=True)
    for _ in range(DICTIONARY_ROUNDS):
        codes = nonnegative_lasso_2(samples[None], atoms.T[None], DICTIONARY_ALPHA)[0]
        for k in range(2):
            weight = codes[:, k] @ codes[:, k]
            if weight <= 0:
                continue
            residual = samples - codes @ atoms + np.outer(codes[:, k], atoms[k])
            atom = np.maximum(residual.T @ codes[:, k] / weight, 0.0)
            atoms[k] = atom / max(float(np.linalg.norm(atom)), 1.0)
    return atoms


class VahadaneNormalizer(StainMatrixNormalizer):
    """Vahadane normalization (see the module docstring)."""

    method: ClassVar[str] = "vahadane"
    has_jax: ClassVar[bool] = False

    def _stains(self, density: Any, xp: Any) -> tuple[Any, Any]:
        rgb = (256.0 * np.exp(-density) - 1.0) / 255.0
        tissue = rgb_to_lab(np.clip(rgb, 0.0, 1.0), np)[..., 0] / 100.0 < LUMINOSITY_THRESHOLD
        matrices = np.full((density.shape[0], 3, 2), np.nan, dtype=np.float32)
        for index in range(density.shape[0]):
            samples = density[index][tissue[index]]
            if len(samples) < 2:
                continue
            samples = samples[
                np.linspace(0, len(samples) - 1, min(len(samples), MAX_SAMPLES)).astype(int)
            ]
            atoms = learn_stain_dictionary(samples.astype(np.float32))
            matrices[index] = unit_columns(haematoxylin_first(atoms[:1], atoms[1:], np), np)[0]
        return matrices, tissue

    def _concentrations(self, density: Any, stains: Any, xp: Any) -> Any:
        return nonnegative_lasso_2(density, stains, LASSO_LAMBDA)
