"""Everything the paper profile reads, on disk and offline: a Hugging Face cache holding random-weight checkpoints
of every paper model in its real repository format (`local_hub`: the open_clip models, and LLaVA-1.5, its CLIP and
Qwen3-VL as transformers writes them, at toy widths), the TGA checkpoint file, and the smoke-size datasets in
torchvision's layouts plus COCO val2017's (`local_data`). `build(root)` writes them once and returns the environment
that points the library at them, with RADAPT_PAPER_SMOKE=1 (config.PAPER_SMOKE_DEFAULTS: ViT-B/32 for every model).

    python tests/local_paper.py /tmp/paper-smoke     # build, then print the environment to export
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import open_clip
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_data import coco, dtd, eurosat, flickr30k  # noqa: E402
from local_hub import OPENAI_REPOS, write_llava_repos, write_open_clip_repo, write_qwen3_vl_repo  # noqa: E402

from radapt_lib import config, models  # noqa: E402

ARCH = config.PAPER_SMOKE_ARCH
HUB, TGA_FILE, DONE = "hub", "tga4-vit-b-32.pt", ".complete"


def _random_clip(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(ARCH, pretrained=None).eval()


def build(root: Path) -> dict[str, str]:
    """Write the hub, the TGA file and the datasets under `root` (skipped if already there); return the environment."""
    root = Path(root)
    hub, datasets, tga = root / HUB, root / "data", root / TGA_FILE
    done = root / DONE
    if not done.exists():
        cfg = open_clip.get_model_config(ARCH)
        write_open_clip_repo(hub, OPENAI_REPOS[ARCH], _random_clip(0), model_cfg=None, safetensors=True)
        for seed, name in enumerate(("fare4-vit-l-14", "tecoa4-vit-l-14"), start=1):
            repo = models.PAPER_MODELS[name].hub_id.removeprefix("hf-hub:")
            write_open_clip_repo(hub, repo, _random_clip(seed), model_cfg=cfg)
        torch.save(_random_clip(3).state_dict(), tga)
        eurosat(datasets / "paper" / "EuroSAT", per_class=8)
        dtd(datasets / "paper" / "DTD", per_class=4)
        flickr30k(datasets / "paper" / "Flickr30k")
        # The LVLM page (Tables 5 / 11); its anchors train on the smoke R-Adapt+ split (EuroSAT): no ImageNet needed
        write_llava_repos(hub)
        write_qwen3_vl_repo(hub)
        coco(datasets / "paper" / "coco")
        done.write_text("ok\n")
    return {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "RADAPT_DATA": str(datasets),
            models.PAPER_MODELS["tga4-vit-l-14"].checkpoint_env: str(tga), config.PAPER_SMOKE_ENV: "1",
            "RADAPT_CACHE": str(root / "cache")}


def remove_weights(root: Path) -> None:
    """Delete the ~2.9 GB of random weights (the datasets and anything else under `root` stay)."""
    shutil.rmtree(root / HUB, ignore_errors=True)
    for name in (TGA_FILE, DONE):
        (root / name).unlink(missing_ok=True)


if __name__ == "__main__":
    env = build(Path(sys.argv[1]))
    print("\n".join(f"export {k}={v}" for k, v in env.items()))
