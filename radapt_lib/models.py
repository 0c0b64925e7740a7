"""One registry of models: `paper` (open_clip / Hugging Face hub) and `mini` (trained here).

`load_model(name)` returns a LoadedModel (the open_clip CLIP, its preprocessing, tokenizer);
`classifier(name, dataset)` returns the ZeroShotClassifier that every evaluation and attack uses.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Sequence

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN as OPENAI_MEAN
from open_clip.constants import OPENAI_DATASET_STD as OPENAI_STD
from torch import nn

from . import config, data, hpt, training, zoo
from .zeroshot import ZeroShotClassifier, text_head


@dataclass(frozen=True)
class PaperModelSpec:
    """How open_clip builds a paper model: `arch` always, and either `pretrained` or a hub id."""

    arch: str
    pretrained: str | None = None
    hub_id: str | None = None
    method: str = "CLIP"
    checkpoint_env: str | None = None  # for models without a public hub checkpoint


# OpenAI's CLIPs were trained with QuickGELU: open_clip's plain "ViT-L-14" config uses GELU and would load the
# OpenAI weights with only a warning, so every paper model names the "-quickgelu" config. The chs20 hub repos
# (FARE, TeCoA: fine-tunes of OpenAI's ViT-L/14) carry their own config, with "quick_gelu" set.
PAPER_MODELS: dict[str, PaperModelSpec] = {
    "clip-vit-b-32": PaperModelSpec("ViT-B-32-quickgelu", pretrained="openai"),
    "clip-vit-l-14": PaperModelSpec("ViT-L-14-quickgelu", pretrained="openai"),
    "fare4-vit-l-14": PaperModelSpec("ViT-L-14-quickgelu", hub_id="hf-hub:chs20/fare4-clip", method="FARE"),
    "fare2-vit-l-14": PaperModelSpec("ViT-L-14-quickgelu", hub_id="hf-hub:chs20/fare2-clip", method="FARE"),
    "tecoa4-vit-l-14": PaperModelSpec("ViT-L-14-quickgelu", hub_id="hf-hub:chs20/tecoa4-clip", method="TeCoA"),
    "tecoa2-vit-l-14": PaperModelSpec("ViT-L-14-quickgelu", hub_id="hf-hub:chs20/tecoa2-clip", method="TeCoA"),
    "tga4-vit-l-14": PaperModelSpec("ViT-L-14-quickgelu", method="TGA", checkpoint_env="RADAPT_TGA_CHECKPOINT"),
}
MINI_MODELS: dict[str, str] = {"mini-clip": "CLIP", "mini-fare": "FARE", "mini-tecoa": "TeCoA", "mini-tga": "TGA",
                               "mini-clean": "Clean-FT",
                               **{f"{n}-s{s}": {"mini-fare": "FARE", "mini-tecoa": "TeCoA", "mini-tga": "TGA"}[n]
                                  for n in training.SEEDED for s in training.EXTRA_SEEDS},
                               **{n: "CLIP" for n in training.PRETRAIN_PREFIXES},
                               **{n: "FARE" for n in training.FINETUNE_PARENTS},
                               "mini-tecoa-1000": "TeCoA", "mini-tga-1000": "TGA", "mini-clip-mosaic": "CLIP",
                               **{n: "CLIP" for n in training.OTHER_CLIPS}, "mini-hpt": "HPT", "mini-hpt-gpd": "HPT-GPD"}

# The models each profile compares, by the paper's method names.
PROFILE_MODELS: dict[str, dict[str, str]] = {
    "mini": {"CLIP": "mini-clip", "TeCoA": "mini-tecoa", "TGA": "mini-tga", "FARE": "mini-fare"},
    "paper": {"CLIP": "clip-vit-l-14", "TeCoA": "tecoa4-vit-l-14", "TGA": "tga4-vit-l-14", "FARE": "fare4-vit-l-14"},
}
# Controls: the same fine-tune without the adversary, to tell what AFT does from what any fine-tuning does.
# The paper released none, so the paper profile has no control.
PROFILE_CONTROLS: dict[str, dict[str, str]] = {"mini": {"Clean-FT": "mini-clean"}, "paper": {}}


@dataclass
class LoadedModel:
    name: str
    clip: nn.Module  # open_clip CLIP: .visual, .encode_text
    preprocess: Callable | None
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    info: dict[str, Any]


def seeded_name(name: str, seed: int) -> str:
    """The registry name of `name` trained with another seed; `name` itself where the zoo has no replica
    (seed 0, mini-clip's single pre-training run, and the fine-tunes not in `training.SEEDED`)."""
    if seed not in (0, *training.EXTRA_SEEDS):
        raise ValueError(f"no seed-{seed} replicas: the zoo releases seeds {training.EXTRA_SEEDS} of {training.SEEDED}")
    return f"{name}-s{seed}" if seed and name in training.SEEDED else name


def check_model(name: str) -> str:
    if name not in PAPER_MODELS and name not in MINI_MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {sorted(MINI_MODELS)} (mini) or {sorted(PAPER_MODELS)} (paper)")
    return name


def profile_of(name: str) -> str:
    return "mini" if check_model(name) in MINI_MODELS else "paper"


def paper_spec(name: str) -> PaperModelSpec:
    """A paper model's spec; at smoke size (config.paper_smoke) built as ViT-B/32 (a hub repo's own config still rules)."""
    spec = PAPER_MODELS[check_model(name)]
    return replace(spec, arch=config.PAPER_SMOKE_ARCH) if config.paper_smoke() else spec


def open_clip_call(name: str, pretrained: bool = True) -> tuple[str, dict[str, Any]]:
    """The (model_name, kwargs) given to open_clip.create_model_and_transforms for a paper name.

    With pretrained=False it builds the same architecture with random weights, offline.
    """
    spec = paper_spec(name)
    if not pretrained:
        return spec.arch, {"pretrained": None}
    if spec.hub_id is not None:
        return spec.hub_id, {}
    if spec.checkpoint_env is not None:
        path = os.environ.get(spec.checkpoint_env)
        if not path:
            raise FileNotFoundError(f"{name} has no public hub checkpoint: set {spec.checkpoint_env} to an open_clip "
                                    f"{spec.arch} state-dict file, or load it with pretrained=False for a random-weight check")
        return spec.arch, {"pretrained": path}
    return spec.arch, {"pretrained": spec.pretrained}


class WeightsUnavailableError(RuntimeError):
    pass


def _load_paper(name: str, pretrained: bool) -> LoadedModel:
    model_name, kwargs = open_clip_call(name, pretrained)
    try:
        # require_pretrained: open_clip otherwise logs a missing hub weights file and returns random weights
        clip, _, preprocess = open_clip.create_model_and_transforms(model_name, require_pretrained=pretrained, **kwargs)
    except Exception as exc:  # hub, network and file errors come in many types
        if not pretrained:
            raise
        raise WeightsUnavailableError(_missing_weights(name, model_name, kwargs, exc)) from exc
    tokenizer = open_clip.get_tokenizer(model_name if model_name.startswith("hf-hub:") else paper_spec(name).arch)
    clip.eval()
    return LoadedModel(name, clip, preprocess, tokenizer, OPENAI_MEAN, OPENAI_STD,
                       {"profile": "paper", "open_clip": model_name, **kwargs})


def _load_mini(name: str) -> LoadedModel:
    """A mini model from the released zoo (zoo/, checked against the manifest); never trains."""
    cfg = training.clip_config(zoo.clip_of(name))
    return LoadedModel(name, zoo.build(name), None, training.mini_tokenizer(cfg), training.CIFAR_MEAN, training.CIFAR_STD,
                       {"profile": "mini", "config": asdict(cfg), "zoo_sha256": zoo.entry(name)["sha256"],
                        "finetune": asdict(training.MINI_FINETUNES[name]) if name in training.MINI_FINETUNES else
                        asdict(hpt.HPT_FINETUNES[name]) if name in hpt.HPT_FINETUNES else None})


def _missing_weights(name: str, model_name: str, kwargs: dict[str, Any], exc: Exception) -> str:
    spec = paper_spec(name)
    where = (f"the Hugging Face repo {spec.hub_id.removeprefix('hf-hub:')}" if spec.hub_id
             else f"open_clip's {spec.arch} '{kwargs.get('pretrained')}' checkpoint")
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return (f"weights for {name} are not available offline ({type(exc).__name__}: {first}). Provide {where}: go online "
            f"once, or copy a Hugging Face cache holding it and set HF_HUB_CACHE (with HF_HUB_OFFLINE=1), or run the "
            f"mini profile (-p profile mini)")


def load_model(name: str, pretrained: bool = True, device: torch.device | None = None) -> LoadedModel:
    """A model by registry name: paper models through open_clip, mini models from the released zoo."""
    loaded = _load_paper(name, pretrained) if profile_of(name) == "paper" else _load_mini(name)
    loaded.clip.to(device or config.device())
    return loaded


def classifier(loaded: LoadedModel, classnames: Sequence[str], templates: Sequence[str] | None = None,
               visual: nn.Module | None = None) -> ZeroShotClassifier:
    """A ZeroShotClassifier over `classnames`; `visual` overrides the tower (e.g. a robust one)."""
    if not templates:  # at paper smoke size one prompt per class: ViT-B/32's text tower is most of a page's set-up
        smoke = loaded.info.get("profile") == "paper" and config.paper_smoke()
        templates = data.CIFAR_TEMPLATES[:1] if smoke else data.CIFAR_TEMPLATES
    return head_classifier(loaded, text_head(loaded.clip, loaded.tokenizer, classnames, templates), classnames, visual)


def head_classifier(loaded: LoadedModel, head: torch.Tensor, classnames: Sequence[str],
                    visual: nn.Module | None = None) -> ZeroShotClassifier:
    """A frozen, eval-mode ZeroShotClassifier of a copy of a tower (default the CLIP's own) over a given head."""
    tower = copy.deepcopy(visual if visual is not None else loaded.clip.visual)
    model = ZeroShotClassifier(tower, head, loaded.mean, loaded.std, classnames)
    model.to(head.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def mini_classifier(name: str, dataset: str) -> ZeroShotClassifier:
    """The mini model `name` as a zero-shot classifier for a mini dataset's classes.

    Fine-tunes change only the vision tower, so the text head is mini-clip's for every model.
    """
    loaded = load_model(name)
    return classifier(loaded, data.MINI_DATASETS[data.check_dataset(dataset, "mini")].classes)


def registry_frame(profile: str):
    """What each method name stands for in a profile: registry name and how it is obtained."""
    import pandas as pd

    config.check_profile(profile)
    rows = []
    for method, name in PROFILE_MODELS[profile].items():
        if profile == "paper":
            spec = paper_spec(name)
            source = spec.hub_id or (f"open_clip {spec.arch}, pretrained={spec.pretrained}" if spec.pretrained
                                     else f"local checkpoint (${spec.checkpoint_env})")
        else:
            source = "trained here: CLIP pre-training on CIFAR-10" if method == "CLIP" else \
                f"trained here: {method} fine-tune of mini-clip's vision tower on '{data.FINETUNE_SOURCE}', eps 4/255"
        rows.append({"method": method, "model": name, "source": source})
    return pd.DataFrame(rows)
