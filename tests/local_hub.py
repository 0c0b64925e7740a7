"""A Hugging Face hub cache on disk, in the layout `huggingface_hub` reads offline, holding open_clip checkpoints
in the formats the paper's repositories publish (README, "The paper profile's checkpoints"):

- `hf-hub:chs20/fare4-clip` and its siblings: `open_clip_config.json` ({"model_cfg", "preprocess_cfg"}, as
  open_clip's own `save_config_for_hf` writes it) beside `open_clip_pytorch_model.bin` (a torch state dict);
- `pretrained="openai"`: open_clip reads `timm/vit_*_clip_224.openai` and its `open_clip_pytorch_model.bin`.

The weights are random; what is tested is that the project's normal loading code finds and loads them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from open_clip.push_to_hf_hub import save_config_for_hf

WEIGHTS = "open_clip_pytorch_model.bin"
SAFE_WEIGHTS = "open_clip_model.safetensors"  # open_clip tries it before WEIGHTS
CONFIG = "open_clip_config.json"
OPENAI_REPOS = {"ViT-B-32-quickgelu": "timm/vit_base_patch32_clip_224.openai",
                "ViT-L-14-quickgelu": "timm/vit_large_patch14_clip_224.openai"}


def snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in a hub cache (models--ORG--NAME/snapshots/<rev>), with refs/main naming it."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex commit id
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    folder = root / "snapshots" / revision
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_open_clip_repo(cache: Path, repo_id: str, model: torch.nn.Module, model_cfg: dict | None,
                         weights: bool = True, safetensors: bool = False) -> Path:
    """A chs20-style repo (config + .bin), or with model_cfg None an OpenAI-tag repo's weights; `safetensors` adds
    the .safetensors copy that the timm OpenAI repos also hold."""
    from safetensors.torch import save_file

    folder = snapshot(cache, repo_id)
    if model_cfg is not None:
        save_config_for_hf(model, folder / CONFIG, model_config=model_cfg)
    if weights:
        torch.save(model.state_dict(), folder / WEIGHTS)
    if weights and safetensors:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / SAFE_WEIGHTS))
    return folder


def use_cache(monkeypatch, cache: Path) -> None:
    """Point huggingface_hub at `cache`, offline (its constants are read from the environment at import)."""
    import huggingface_hub.constants as hub

    for key, value in {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
