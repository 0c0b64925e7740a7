"""Bootstrap confidence intervals over images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOT = 1000


@dataclass(frozen=True)
class Estimate:
    """A mean with a percentile-bootstrap interval, in the units of the input (e.g. % or cosine)."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return self.fmt(1)

    def fmt(self, digits: int = 1) -> str:
        num = lambda v: f"{round(v, digits) + 0.0:.{digits}f}"  # noqa: E731  (+ 0.0: never print "-0.0")
        return f"{num(self.mean)} [{num(self.low)}, {num(self.high)}]"


def resamples(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """n_boot x n indices drawn with replacement from range(n), one seeded draw; row b is resample b.

    One draw of shape (n_boot, n) equals n_boot successive draws of n from the same generator, so a
    loop over the rows resamples in the same order as a loop that draws as it goes.
    """
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_interval(point: float, replicates, level: float = 0.95, n: int = 0) -> Estimate:
    """`point` with the percentile interval (central `level`) of its bootstrap replicates."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [tail, 1.0 - tail])
    return Estimate(float(point), float(low), float(high), int(n))


def bootstrap(statistic, n: int, point: float | None = None, n_boot: int = N_BOOT, level: float = 0.95,
              seed: int = 0) -> Estimate:
    """Percentile bootstrap of any statistic of n units: `statistic(idx)` on each resample's indices.

    `point` defaults to the statistic on all units in order (`statistic(np.arange(n))`).
    """
    if n < 1:
        raise ValueError("bootstrap needs at least one unit")
    boots = np.array([statistic(idx) for idx in resamples(n, n_boot, seed)], dtype=np.float64)
    return percentile_interval(statistic(np.arange(n)) if point is None else point, boots, level, n)


def bootstrap_mean(values, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Estimate:
    """Percentile bootstrap of the mean of per-image values (e.g. 100*correct)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    means = x[resamples(x.size, n_boot, seed)].mean(axis=1)
    return percentile_interval(x.mean(), means, level, x.size)


def bootstrap_diff(a, b, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Estimate:
    """Paired percentile bootstrap of mean(a - b): a and b are per-unit values on the same units (images)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    return bootstrap_mean(a - b, n_boot, level, seed)


def bootstrap_two_sample(a, b, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Estimate:
    """Percentile bootstrap of mean(a) - mean(b) for values on different units (e.g. two datasets' images)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("bootstrap_two_sample needs values on both sides")
    boots = a[resamples(a.size, n_boot, seed)].mean(axis=1) - b[resamples(b.size, n_boot, seed + 1)].mean(axis=1)
    return percentile_interval(a.mean() - b.mean(), boots, level, a.size + b.size)


def accuracy(correct) -> Estimate:
    """Accuracy in percent with its bootstrap interval, from a boolean per-image vector."""
    return bootstrap_mean(100.0 * np.asarray(correct, dtype=np.float64))


def binomial_halfwidth(p: float, n: int, z: float = 1.96) -> float:
    """Normal-approximation 95% half-width (in the units of p) that n samples imply; for sizing pages."""
    return float(z * np.sqrt(max(p * (1 - p), 1e-12) / n))


def wilson(successes: int, n: int, z: float = 1.96) -> Estimate:
    """A proportion in percent with its Wilson score interval: unlike the bootstrap, not degenerate at 0 or 100 %."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(100.0 * p, 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half), n)
