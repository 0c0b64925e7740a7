"""Five image corruptions at severities 1..5, on float images in [0, 1] (N x 3 x H x W, 32 px CIFAR).

Why: MAA is trained on clean / corrupted pairs and evaluated per corruption and severity, so the
corruptions must be deterministic (a seed, never the global RNG) and graded. The ladders are chosen
so that the mini profile's existing shifted datasets (`data.MINI_DATASETS["cifar10-<shift>"]`) are one
rung of them, bit for bit:

    noise   severity 2 = cifar10-noise  (std 0.08; with seed=1234, data._noise's default seed)
    blur    severity 3 = cifar10-blur   (sigma 1.0, data._blur's radius-2 kernel)

Noise, blur, JPEG and low resolution are data.py's own helpers (the shifted datasets'), with the ladder's parameter.
    jpeg    severity 3 = cifar10-jpeg   (quality 15)
    lowres  severity 3 = cifar10-lowres (12 px)
    lowlight: no existing shift.
"""
from __future__ import annotations

import torch

from .data import _blur, _jpeg, _lowres, _noise

CORRUPTIONS: tuple[str, ...] = ("noise", "blur", "jpeg", "lowres", "lowlight")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

# One parameter per severity 1..5 (lowlight: (factor, gamma)).
NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)
BLUR_SIGMA = (0.5, 0.75, 1.0, 1.5, 2.0)
JPEG_QUALITY = (40, 25, 15, 10, 6)
LOWRES_SIZE = (24, 16, 12, 10, 8)
LOWLIGHT = ((0.6, 1.2), (0.45, 1.4), (0.32, 1.6), (0.22, 1.8), (0.14, 2.0))


def _check(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}: use one of {CORRUPTIONS}")
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity={severity!r}: use one of {SEVERITIES}")


def _lowlight(x: torch.Tensor, factor: float, gamma: float) -> torch.Tensor:
    """Pure dimming with a gamma > 1: shadows lose more than highlights, as in under-exposure (no noise)."""
    return (factor * x.clamp(0, 1).pow(gamma)).clamp(0, 1)


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`x` (N x 3 x H x W floats in [0, 1]) with corruption `name` at `severity`; float32 in [0, 1].

    `seed` drives the only random corruption ("noise"); the others are deterministic functions of x.
    """
    _check(name, severity)
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"corrupt needs float images N x 3 x H x W in [0, 1], got {tuple(x.shape)} {x.dtype}")
    device = x.device
    x = x.detach().float().cpu()  # PIL (jpeg) and the seeded CPU generator (noise) run on the CPU
    i = severity - 1
    if name == "noise":
        out = _noise(x, NOISE_STD[i], seed)
    elif name == "blur":
        out = _blur(x, BLUR_SIGMA[i])
    elif name == "jpeg":
        out = _jpeg(x.clamp(0, 1), JPEG_QUALITY[i])
    elif name == "lowres":
        out = _lowres(x, LOWRES_SIZE[i])
    else:
        out = _lowlight(x, *LOWLIGHT[i])
    return out.clamp(0, 1).to(torch.float32).to(device)


def describe(name: str, severity: int) -> str:
    """A human-readable label of one corruption setting, e.g. "Gaussian noise, std 0.08"."""
    _check(name, severity)
    i = severity - 1
    if name == "noise":
        return f"Gaussian noise, std {NOISE_STD[i]:g}"
    if name == "blur":
        return f"Gaussian blur, sigma {BLUR_SIGMA[i]:g}"
    if name == "jpeg":
        return f"JPEG, quality {JPEG_QUALITY[i]}"
    if name == "lowres":
        return f"low resolution, {LOWRES_SIZE[i]} px and back"
    factor, gamma = LOWLIGHT[i]
    return f"low light, x {factor:g} after gamma {gamma:g}"


def random_corruption_batch(x: torch.Tensor, generator: torch.Generator
                            ) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Each image of a training batch with its own random corruption and severity (uniform over both).

    Returns (corrupted images, names per image, severities per image as a long tensor). Everything random
    is drawn from `generator` in a fixed order, so a seeded generator gives the same pairs every run.
    """
    n = x.shape[0]
    kinds = torch.randint(0, len(CORRUPTIONS), (n,), generator=generator)
    severities = torch.randint(1, len(SEVERITIES) + 1, (n,), generator=generator)
    noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))  # fresh noise every batch
    out = torch.empty_like(x, dtype=torch.float32)
    # One call per (corruption, severity) group: batched ops, and the draw above fixes the result.
    for k, name in enumerate(CORRUPTIONS):
        for s in SEVERITIES:
            idx = ((kinds == k) & (severities == s)).nonzero().squeeze(1)
            if idx.numel():
                out[idx.to(x.device)] = corrupt(x[idx.to(x.device)], name, s, seed=noise_seed + 7 * k + s)
    return out, [CORRUPTIONS[int(k)] for k in kinds], severities
