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
        return f"{self.mean:.1f} [{self.low:.1f}, {self.high:.1f}]"

    def fmt(self, digits: int = 1) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_mean(values, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Estimate:
    """Percentile bootstrap of the mean of per-image values (e.g. 100*correct)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(float(x.mean()), float(low), float(high), int(x.size))


def accuracy(correct) -> Estimate:
    """Accuracy in percent with its bootstrap interval, from a boolean per-image vector."""
    return bootstrap_mean(100.0 * np.asarray(correct, dtype=np.float64))


def binomial_halfwidth(p: float, n: int, z: float = 1.96) -> float:
    """Normal-approximation 95% half-width (in the units of p) that n samples imply; for sizing pages."""
    return float(z * np.sqrt(max(p * (1 - p), 1e-12) / n))
