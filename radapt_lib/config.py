"""Profiles, paths, seeds and threads: the few global settings every page resolves first."""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import reference

PROFILES = ("mini", "paper")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Weights differ bit-wise between 1 and 2 threads, so the thread count is part of determinism.
CPU_THREADS = 2


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES} (e.g. -p profile mini)")
    return profile


def check_eps(eps: float) -> float:
    """The library's unit: eps on the [0, 1] pixel scale (attacks, evaluation). Pages take eps in 1/255."""
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"eps={eps} is outside [0, 1]: give it on the [0, 1] pixel scale, e.g. 4/255 = 0.0157")
    return float(eps)


# A page's eps is in 1/255 (eps = 4 means 4/255). A non-zero value below this is read as the [0, 1]
# pixel scale typed by mistake (4/255 = 0.0157) and refused: no budget in the paper is below 1/255.
EPS_255_MIN_NONZERO = 0.5


def check_eps_255(value, name: str = "eps") -> int | float:
    """A page's eps in 1/255, validated: a number in [0, 255], 0 or at least 0.5; "4/255" is read as 4.

    Returns an int when the value is whole (4.0 -> 4, so that it prints as 4/255), else a float.
    """
    example = "-p eps_list 1,2,4 for 1, 2 and" if name.startswith("eps_list") else "-p eps 4 for"
    number = value
    if isinstance(number, str):
        text = number.strip()
        text = text[:-4].strip() if text.endswith("/255") else text
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a number: give eps in 1/255, e.g. {example} 4/255") from None
    if isinstance(number, bool) or not isinstance(number, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r} is not a number: give eps in 1/255, e.g. {example} 4/255")
    number = float(number)
    if not math.isfinite(number) or not 0.0 <= number <= 255.0:
        raise ValueError(f"{name}={value!r} is outside [0, 255]: give eps in 1/255, e.g. {example} 4/255")
    if 0.0 < number < EPS_255_MIN_NONZERO:
        raise ValueError(f"{name}={value!r} looks like the [0, 1] pixel scale (= {number * 255:.4g}/255): "
                         f"pages take eps in 1/255, e.g. {example} 4/255")
    return int(number) if number.is_integer() else number


def eps_from_255(value) -> float:
    """A page's eps in 1/255 (validated by `check_eps_255`) on the library's [0, 1] scale: 4 -> 4/255."""
    return check_eps_255(value) / 255


@dataclass(frozen=True)
class ProfileDefaults:
    """What a profile fixes when a page leaves a parameter at None: one table for every page and the library."""

    resolution: int  # encoder input size in px
    finetune_source: str  # the fine-tunes' training distribution (the paper's ImageNet role)
    apgd_iter: int  # APGD iterations on the Section-3 pages (AutoAttack's default is 100)
    plus_train: str  # the R-Adapt+ anchor's training split
    plus_anchor: dict = field(default_factory=dict)  # R-Adapt+ optimisation (plus.AnchorTrainConfig fields)
    datasets: dict = field(default_factory=dict)  # page -> its default datasets (the first is the page's main one)


PROFILE_DEFAULTS: dict[str, ProfileDefaults] = {
    "mini": ProfileDefaults(
        resolution=32, finetune_source="animals", apgd_iter=10, plus_train="animals",
        # 500 images x 5 epochs fit the CPU; recipe, inner PGD steps and lr: the held-out validation pick among
        # rtables.ANCHOR_CHOICES (training-scale page)
        plus_anchor={"n_images": 500, "epochs": 5, "pgd_steps": 2, "batch_size": 50, "lr": 1e-2, "examples": "minmax"},
        datasets={
            "main": ("animals", "vehicles", "cifar10", "cifar10-gray", "cifar10-blur"),
            "cka": ("cifar10",), "attention": ("cifar10",), "insensitivity": ("cifar10",),
            "replacement": ("animals", "vehicles"),  # the first is the fine-tunes' source (ID), the rest OOD
            "shapley": ("animals",),
            "radapt": ("animals", "vehicles"),  # the R-Adapt pages (Tables 1-3, 6-8, cost)
        }),
    "paper": ProfileDefaults(
        resolution=224, finetune_source="ImageNet", apgd_iter=100, plus_train="ImageNet",
        plus_anchor={"n_images": int(reference.R_ADAPT_PLUS_BUDGET["images"]),
                     "epochs": int(reference.R_ADAPT_PLUS_BUDGET["epochs"]), "pgd_steps": 10, "batch_size": 50, "lr": 1e-2,
                     "examples": "minmax"},
        datasets={
            "main": reference.TABLE1_DATASETS,
            "cka": ("ImageNet",), "attention": ("ImageNet",), "insensitivity": ("ImageNet",),
            "replacement": ("ImageNet", "Flowers102"),
            "shapley": ("Caltech256",),
            "radapt": reference.TABLE1_DATASETS,
        }),
}


# The paper profile at smoke size, for running every page on 2 CPU cores against a local hub of random-weight
# checkpoints and tiny synthetic datasets (tests/test_paper_pages.py): the same code path, small enough to finish.
# With RADAPT_PAPER_SMOKE=1 it replaces the paper profile's defaults, and `models` builds ViT-B/32 where the paper
# uses ViT-L/14 (PAPER_SMOKE_ARCH). Pages print that they run at smoke size; no paper result is ever made this way.
PAPER_SMOKE_ENV = "RADAPT_PAPER_SMOKE"
PAPER_SMOKE_ARCH = "ViT-B-32-quickgelu"
_SMOKE_SETS = ("EuroSAT", "DTD")  # two small synthetic datasets in torchvision's layouts (tests/local_data.py)
PAPER_SMOKE_DEFAULTS = ProfileDefaults(
    resolution=224, finetune_source=_SMOKE_SETS[0], apgd_iter=2, plus_train=_SMOKE_SETS[0],
    plus_anchor={"n_images": 4, "epochs": 1, "pgd_steps": 1, "batch_size": 4, "lr": 1e-2, "examples": "minmax"},
    datasets={"main": _SMOKE_SETS, "cka": _SMOKE_SETS[:1], "attention": _SMOKE_SETS[:1],
              "insensitivity": _SMOKE_SETS[:1], "replacement": _SMOKE_SETS, "shapley": _SMOKE_SETS[:1],
              "radapt": _SMOKE_SETS})


def paper_smoke() -> bool:
    """True when RADAPT_PAPER_SMOKE is set (to anything but "" or "0"): the paper profile at smoke size."""
    return os.environ.get(PAPER_SMOKE_ENV, "") not in ("", "0")


# At smoke size (only) the page test may run pages side by side with fewer threads each: smoke numbers are not
# results, so the thread count, which changes float bits, does not matter there. Everywhere else it is CPU_THREADS.
PAPER_SMOKE_THREADS_ENV = "RADAPT_PAPER_SMOKE_THREADS"


def smoke_budget(n: int, cap: int = 2) -> int:
    """An iteration, step or query count as written, or at most `cap` at paper smoke size (random weights: only the
    code path is tested there, on ViT-B/32 at 224 px on a CPU)."""
    return min(n, cap) if paper_smoke() else n


def cpu_threads() -> int:
    if not paper_smoke() or not os.environ.get(PAPER_SMOKE_THREADS_ENV):
        return CPU_THREADS
    threads = int(os.environ[PAPER_SMOKE_THREADS_ENV])
    if threads < 1:
        raise ValueError(f"{PAPER_SMOKE_THREADS_ENV}={threads}: give at least 1 thread")
    return threads


if paper_smoke():
    PROFILE_DEFAULTS["paper"] = PAPER_SMOKE_DEFAULTS


def profile_defaults(profile: str) -> ProfileDefaults:
    return PROFILE_DEFAULTS[check_profile(profile)]


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
    torch.set_num_threads(cpu_threads())
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
    seed_everything(seed)
    return device()
