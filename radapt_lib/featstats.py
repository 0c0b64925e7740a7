"""Distribution-level distances between two feature sets X (n x d) and Y (m x d).

Why: MAA's claim is that feature MSE (a per-image distance) can fall while corrected features leave the clean
features' distribution. Distances between the two *sets* test that claim directly: MMD with an RBF kernel,
KID (MMD with the cubic polynomial kernel, Binkowski et al. 2018), the energy distance, and for paired
features (the same images) linear CKA.

Torch or numpy in, a Python float out; all arithmetic in float64. Every statistic is computed from the
Gram matrices XX^T, YY^T, XY^T, so a bootstrap indexes precomputed n x n matrices instead of recomputing
n^2 d products per resample.
"""
from __future__ import annotations

import numpy as np
import torch

from . import stats
from .analysis.cka import cka_from_grams
from .stats import Estimate

DISTANCES = ("mmd2_rbf", "kid", "energy", "linear_cka")


def _as64(a) -> np.ndarray:
    """n x d float64 (a torch tensor may carry grad or live on a GPU)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1)


def _pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as64(X), _as64(Y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sets need the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"unbiased estimators need at least 2 samples per set, got {len(x)} and {len(y)}")
    return x, y


def _sqdist(gab: np.ndarray, na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """||a_i - b_j||^2 from a Gram matrix and squared norms, clipped at 0 against round-off."""
    return np.maximum(na[:, None] + nb[None, :] - 2.0 * gab, 0.0)


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Gretton et al. (2012)'s unbiased MMD^2: within-set means exclude the diagonal (i = j)."""
    n, m = len(kxx), len(kyy)
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def median_bandwidth(X, Y) -> float:
    """The median heuristic: the median Euclidean distance over all distinct pairs of the pooled sample."""
    z = np.concatenate(_pair(X, Y))
    sq = (z * z).sum(1)
    d2 = _sqdist(z @ z.T, sq, sq)[np.triu_indices(len(z), k=1)]
    return float(np.sqrt(np.median(d2)))


def _rbf_from_grams(gxx, gyy, gxy, bandwidth: float) -> float:
    nx, ny = np.diag(gxx), np.diag(gyy)
    k = lambda d2: np.exp(-d2 / (2.0 * bandwidth**2))  # noqa: E731
    return _mmd2_unbiased(k(_sqdist(gxx, nx, nx)), k(_sqdist(gyy, ny, ny)), k(_sqdist(gxy, nx, ny)))


def mmd2_rbf(X, Y, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 with k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2)).

    `bandwidth=None` takes the median heuristic (`median_bandwidth`: median pairwise distance of X and Y
    pooled), which keeps the kernel neither flat nor a delta at any feature scale. Unbiased: it can be
    slightly negative when the two distributions are equal.
    """
    x, y = _pair(X, Y)
    h = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be > 0, got {h}")
    return _rbf_from_grams(x @ x.T, y @ y.T, x @ y.T, h)


def _kid_from_grams(gxx, gyy, gxy, d: int) -> float:
    k = lambda g: (g / d + 1.0) ** 3  # noqa: E731
    return _mmd2_unbiased(k(gxx), k(gyy), k(gxy))


def kid(X, Y, n_subsets: int | None = None, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018).

    `n_subsets=None` uses all samples at once. Otherwise the mean over `n_subsets` seeded draws of
    `subset_size` (capped at the smaller set) without replacement from each set, as FID/KID tools do to
    bound the O(n^2) cost.
    """
    x, y = _pair(X, Y)
    d = x.shape[1]
    if n_subsets is None:
        return _kid_from_grams(x @ x.T, y @ y.T, x @ y.T, d)
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(x), len(y))
    vals = []
    for _ in range(n_subsets):
        a, b = x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
        vals.append(_kid_from_grams(a @ a.T, b @ b.T, a @ b.T, d))
    return float(np.mean(vals))


def _energy_from_grams(gxx, gyy, gxy) -> float:
    nx, ny = np.diag(gxx), np.diag(gyy)
    dist = lambda g, a, b: np.sqrt(_sqdist(g, a, b))  # noqa: E731
    return float(2.0 * dist(gxy, nx, ny).mean() - dist(gxx, nx, nx).mean() - dist(gyy, ny, ny).mean())


def energy_distance(X, Y) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| of the empirical distributions (Szekely & Rizzo).

    The V-statistic (within-set means over all n^2 pairs, zero diagonal included), as `dcor.energy_distance`
    computes it; >= 0, and equal to scipy.stats.energy_distance squared for 1-D samples. Written here
    rather than taken from dcor, which would add numba and llvmlite (~200 MB, ~5 s import) for ten lines.
    """
    x, y = _pair(X, Y)
    return _energy_from_grams(x @ x.T, y @ y.T, x @ y.T)


def linear_cka(X, Y) -> float:
    """Linear CKA of paired features (row i of X and Y: the same image): ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
    after centring, computed through n x n Gram matrices by the layer-wise analysis' own `cka_from_grams`."""
    x, y = _as64(X), _as64(Y)
    if len(x) != len(y):
        raise ValueError(f"linear CKA needs paired features (equal n), got {len(x)} and {len(y)}")
    return cka_from_grams(x @ x.T, y @ y.T)


def _distinct_mean(k: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> float:
    """Mean of k over pairs of distinct original units: a resample's repeated unit is a tie, not a pair (on all
    units, ia = ib = arange, this is the usual off-diagonal mean)."""
    return float(k[ia[:, None] != ib[None, :]].mean())


def _all(gxx, gyy, gxy, ia, ib, d: int, bandwidth: float, paired: bool) -> dict[str, float]:
    """Every distance from (resampled) Gram blocks; within-set means skip pairs of the same original unit."""
    nx, ny = np.diag(gxx), np.diag(gyy)
    rbf = lambda g, a, b: np.exp(-_sqdist(g, a, b) / (2.0 * bandwidth**2))  # noqa: E731
    poly = lambda g: (g / d + 1.0) ** 3  # noqa: E731
    dist = lambda g, a, b: np.sqrt(_sqdist(g, a, b))  # noqa: E731
    within = lambda kx, ky: _distinct_mean(kx, ia, ia) + _distinct_mean(ky, ib, ib)  # noqa: E731
    # Paired sets: x_i and y_i are one image (dependent), so the cross term skips them too (Gretton et al.'s MMD_u).
    cross = (lambda k: _distinct_mean(k, ia, ib)) if paired else (lambda k: float(k.mean()))  # noqa: E731
    out = {"mmd2_rbf": within(rbf(gxx, nx, nx), rbf(gyy, ny, ny)) - 2.0 * cross(rbf(gxy, nx, ny)),
           "kid": within(poly(gxx), poly(gyy)) - 2.0 * cross(poly(gxy)),
           "energy": 2.0 * cross(dist(gxy, nx, ny)) - within(dist(gxx, nx, nx), dist(gyy, ny, ny))}
    if paired:
        out["linear_cka"] = cka_from_grams(gxx, gyy)
    return out


def bootstrap_distances(X, Y, paired: bool, n_boot: int = 200, seed: int = 0,
                        level: float = 0.95) -> dict[str, Estimate]:
    """Each distance on all samples with a percentile bootstrap interval over images.

    `paired=True` (row i of X and Y are the same image, e.g. corrected vs clean features) resamples the same
    indices for both sets, and adds linear CKA; unpaired sets are resampled independently (seeds `seed` and
    `seed + 1`, as `stats.bootstrap_two_sample`) and CKA, which needs pairs, is left out. The RBF bandwidth is
    fixed at the full sample's median heuristic, so the interval reflects the samples, not a moving kernel.
    Every mean runs over pairs of distinct original images (U-statistics), in the point estimate and in every
    resample: within a set, a resample's repeated image would otherwise count as a pair at distance 0, and in a
    paired cross term an image's own (clean, corrected) pair would count more often than once per image; either
    shifts every replicate off the point estimate (measured: energy intervals above it, MMD^2 intervals below).
    So the paired point estimates are U-statistics that leave out each image's own pair from the cross term (the
    unpaired ones equal `mmd2_rbf` / `kid`; energy differs from `energy_distance`'s V-statistic).
    """
    x, y = _pair(X, Y)
    if paired and len(x) != len(y):
        raise ValueError(f"paired=True needs equal numbers of samples, got {len(x)} and {len(y)}")
    gxx, gyy, gxy = x @ x.T, y @ y.T, x @ y.T
    d, h = x.shape[1], median_bandwidth(x, y)
    point = _all(gxx, gyy, gxy, np.arange(len(x)), np.arange(len(y)), d, h, paired)
    ix = stats.resamples(len(x), n_boot, seed)
    iy = ix if paired else stats.resamples(len(y), n_boot, seed + 1)
    reps: dict[str, list[float]] = {k: [] for k in point}
    for a, b in zip(ix, iy):
        for k, v in _all(gxx[np.ix_(a, a)], gyy[np.ix_(b, b)], gxy[np.ix_(a, b)], a, b, d, h, paired).items():
            reps[k].append(v)
    n = len(x) if paired else len(x) + len(y)
    return {k: stats.percentile_interval(point[k], reps[k], level, n) for k in point}
