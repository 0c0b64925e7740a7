"""Profiles, paths, seeds and threads: the few global settings every page resolves first."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

PROFILES = ("mini", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Weights differ bit-wise between 1 and 2 threads, so the thread count is part of determinism.
CPU_THREADS = 2


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES} (e.g. -p profile mini)")
    return profile


def check_eps(eps: float) -> float:
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"eps={eps} is outside [0, 1]: give it on the [0, 1] pixel scale, e.g. 4/255 = 0.0157")
    return float(eps)


def cache_dir() -> Path:
    """Where trained models, decoded datasets and results live (git-ignored)."""
    return Path(os.environ.get("RADAPT_CACHE", REPO_ROOT / "data_cache"))


def data_root() -> Path | None:
    """The directory named by RADAPT_DATA, if set (CI sets it to ../shared/data)."""
    value = os.environ.get("RADAPT_DATA")
    return Path(value).expanduser().resolve() if value else None


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0) -> torch.device:
    """Pin threads and deterministic kernels, seed every RNG; call once at the top of a page."""
    torch.set_num_threads(CPU_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
    seed_everything(seed)
    return device()
