"""Spectral shift map of the patch-embedding kernels (the paper's Eq. 4, Fig. 3a).

Why: the patch embedding is a strided convolution, so the magnitude of its kernels' DFT says
which spatial frequencies it passes. If adversarial fine-tuning turned it into a low-pass filter,
the robust-minus-standard magnitude map gains at the centre (low frequencies) and loses at the rim.

S(W) = mean over output and input channels of |DFT_KxK(W[o, i])|, fftshift-centred so that the
DC term sits in the middle; Delta S = S(W_robust) - S(W_standard). Frequencies are in cycles per
pixel (Nyquist = 0.5). `pad_to` zero-pads each kernel before the DFT, which samples the same
spectrum more finely (for smoother pictures); the low-pass index always uses the K x K DFT of Eq. 4.

Low-pass index (one number, in [-1, 1]):
    LPI = (mean Delta S at r <= cutoff - mean Delta S at r > cutoff) / (mean |Delta S| at r <= cutoff + mean |Delta S| at r > cutoff)
with r the radial frequency as a fraction of Nyquist and cutoff 0.5 (half the Nyquist radius).
It is positive when the low band gains relative to the high band (low-pass shift), negative for
a high-pass shift, and insensitive to the overall scale of the kernels. With 4 x 4 mini kernels the
low band holds the DC bin and its four nearest neighbours only, so pages also report the index without
the DC bin and the DC gain on its own; a clean fine-tune (same steps, no adversary) is the control that
tells AFT's shift from any fine-tuning's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .. import stats
from ..stats import Estimate


@dataclass(frozen=True)
class Spectrum:
    """A centred magnitude map and its frequency grid (cycles / pixel)."""

    values: np.ndarray  # N x N
    freqs: np.ndarray  # N, centred (fftshift order)

    @property
    def radius(self) -> np.ndarray:
        """Radial frequency as a fraction of Nyquist (0.5 cycles / pixel) for each bin."""
        fu, fv = np.meshgrid(self.freqs, self.freqs, indexing="ij")
        return np.sqrt(fu**2 + fv**2) / 0.5


def _kernel_magnitudes(weight: torch.Tensor | np.ndarray, pad_to: int | None = None) -> np.ndarray:
    """|DFT| of each K x K kernel (zero-padded to pad_to), averaged over input channels: C_out x K x K, not centred."""
    w = np.asarray(weight.detach().cpu().double() if isinstance(weight, torch.Tensor) else weight, dtype=np.float64)
    if w.ndim == 2:
        w = w[None, None]
    size = pad_to or w.shape[-1]
    return np.abs(np.fft.fft2(w, s=(size, size), axes=(-2, -1))).mean(axis=1)


def kernel_spectrum(weight: torch.Tensor | np.ndarray, pad_to: int | None = None) -> Spectrum:
    """Mean |DFT| over all (out, in) kernels of a C_out x C_in x K x K weight, centred."""
    mean = _kernel_magnitudes(weight, pad_to).mean(axis=0)
    return Spectrum(np.fft.fftshift(mean), np.fft.fftshift(np.fft.fftfreq(mean.shape[-1])))


def spectral_shift(robust: torch.Tensor | np.ndarray, standard: torch.Tensor | np.ndarray,
                   pad_to: int | None = None) -> Spectrum:
    """Eq. 4: Delta S = |F(W_robust)| - |F(W_standard)| (channel-averaged, centred)."""
    r, s = kernel_spectrum(robust, pad_to), kernel_spectrum(standard, pad_to)
    return Spectrum(r.values - s.values, r.freqs)


def low_pass_index(shift: Spectrum, cutoff: float = 0.5, include_dc: bool = True) -> float:
    """Signed, scale-free share of the spectral gain that sits at low frequencies (see module doc).

    `include_dc=False` leaves the DC bin out of the low band: the DC term only says how much the
    kernels' mean (their response to a flat patch) changed, not whether low frequencies gained.
    """
    r = shift.radius
    low = shift.values[(r <= cutoff) & ((r > 0) | include_dc)]
    high = shift.values[r > cutoff]
    denom = np.abs(low).mean() + np.abs(high).mean()
    return float((low.mean() - high.mean()) / denom) if denom > 0 else 0.0


def dc_gain(shift: Spectrum) -> float:
    """Delta S at the DC bin (zero frequency)."""
    return float(shift.values[shift.radius == 0][0])


def band_gain(shift: Spectrum, low: float, high: float) -> float:
    """Mean Delta S over bins with low < r <= high (fractions of Nyquist)."""
    r = shift.radius
    return float(shift.values[(r > low) & (r <= high)].mean())


def low_high_contrast(shift: Spectrum, cutoff: float = 0.5) -> float:
    """Mean Delta S of the low band without DC minus that of the high band (|DFT| units, not scale-free).

    Unlike the index, it does not blow a near-zero shift up to +-1, so it can compare a model that
    moved its kernels a lot with one (a clean fine-tune) that barely moved them.
    """
    return band_gain(shift, 0.0, cutoff) - band_gain(shift, cutoff, np.inf)


def shift_statistic(statistic: Callable[..., float], robust: Sequence[torch.Tensor],
                    standard: torch.Tensor) -> Callable[[np.ndarray], float]:
    """`statistic(*shifts)` as a function of the output kernels kept (indices, with repeats: a bootstrap resample)."""
    mags = [_kernel_magnitudes(w) for w in robust]
    base = _kernel_magnitudes(standard)
    freqs = np.fft.fftshift(np.fft.fftfreq(base.shape[-1]))

    def of(idx: np.ndarray) -> float:
        shifts = [Spectrum(np.fft.fftshift(m[idx].mean(axis=0) - base[idx].mean(axis=0)), freqs) for m in mags]
        return statistic(*shifts)

    return of


def shift_statistic_ci(statistic: Callable[..., float], robust: Sequence[torch.Tensor], standard: torch.Tensor,
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """`statistic(*shifts)` of the spectral shifts of several towers from one standard one, with a bootstrap CI.

    Output kernels are resampled jointly across the towers: every tower was fine-tuned from the same
    standard weights, so output channel o is the same filter in all of them (a paired comparison).
    """
    n_kernels = _kernel_magnitudes(standard).shape[0]
    return stats.bootstrap(shift_statistic(statistic, robust, standard), n_kernels, n_boot=n_boot, level=level, seed=seed)


def low_pass_index_ci(robust: torch.Tensor, standard: torch.Tensor, n_boot: int = 1000, seed: int = 0,
                      cutoff: float = 0.5, level: float = 0.95, include_dc: bool = True) -> Estimate:
    """The low-pass index with a bootstrap interval over output channels (kernels resampled in pairs)."""
    return shift_statistic_ci(lambda s: low_pass_index(s, cutoff, include_dc), [robust], standard, n_boot, seed, level)


def radial_profile(shift: Spectrum, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres as a fraction of Nyquist, mean Delta S per radial bin) up to the corner radius."""
    r = shift.radius.ravel()
    v = shift.values.ravel()
    n_bins = n_bins or max(2, shift.values.shape[0] // 2)
    edges = np.linspace(0.0, r.max() + 1e-9, n_bins + 1)
    which = np.clip(np.digitize(r, edges) - 1, 0, n_bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    means = np.array([v[which == b].mean() if np.any(which == b) else np.nan for b in range(n_bins)])
    keep = ~np.isnan(means)
    return centres[keep], means[keep]
