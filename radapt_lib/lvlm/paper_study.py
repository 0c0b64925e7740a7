"""Tables 5 and 11 under the paper profile: LLaVA-1.5 and Qwen3-VL on COCO, R-Adapt+ anchors trained here.

`rtables.table5.run_study` calls `run_paper_study` for the paper names; it mirrors the mini path (same
`evaluate_lvlm` rows, same `LvlmStudy`), with three differences (the book lists them):
* the VQA set: COCO val2017 (`coco.coco_vqa_set`, seeded, at the model's input size), screened like the mini set
  (the first images whose clean caption and three answers all name the main object, `coco.accepted_words`),
  V-Attack's target the nearest other of COCO's 80 categories in the model's concept space;
* the anchors are not released: each setting's R-Adapt+ anchor is trained here (App. E) on the paper profile's
  R-Adapt+ split (`plus_train`: ImageNet train, a seeded 2000, the paper's "2k") with its recipe (`plus_anchor`:
  10 epochs, 10-step PGD examples, batch 50, lr 1e-2) and Table 9's R-Adapt+ alpha / beta / D0, then cached;
* a model is named by its hub repository and the commit read (never by hashing 7-8 B weights), its dtype and
  device kind (half precision on a GPU), the transformers version and the wrapper code.

At smoke size (RADAPT_PAPER_SMOKE) the random-weight models name nothing, so screening would find no image: the
set is the first n images unscreened; the anchors use the smoke recipe (a handful of images, 1 epoch, 1 PGD step)
and V-Attack at most `config.smoke_budget` steps.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from .. import cache, config, data, reference
from ..evaluation import fingerprint
from . import coco, protocol
from .anchor import LvlmAnchorConfig, LvlmAnchorRun, train_lvlm_anchor
from .paper_vlm import PaperVLM
from .vattack import VAttackConfig

if TYPE_CHECKING:  # table5 imports this module lazily; at run time the import is inside run_paper_study
    from ..rtables.table5 import LvlmStudy

CANDIDATES = 2000  # COCO images drawn for screening: the paper's 300 need a 15 % pass rate of the clean model
ANCHOR_FIELDS = ("n_images", "epochs", "batch_size", "pgd_steps", "lr")  # what the profile's plus_anchor sets


def _load(name: str) -> tuple[PaperVLM, dict[str, str]]:
    """The model and the hub repositories it is read from (role -> repo id)."""
    if name == "llava-1.5":
        from .llava import CLIP_REPO, LLAVA_REPO, load_llava

        return load_llava(), {"lvlm": LLAVA_REPO, "clip": CLIP_REPO}
    if name == "qwen3-vl":
        from .qwen_vl import QWEN_REPO, load_qwen3_vl

        return load_qwen3_vl(), {"lvlm": QWEN_REPO}
    raise ValueError(f"unknown paper LVLM {name!r}: use 'llava-1.5' or 'qwen3-vl'")


def revision(repo: str) -> str | None:
    """The commit of `repo` the loaders read: the snapshot in the Hugging Face cache that holds its config.json
    (refs/main's; from_pretrained downloads there). None when it is not a cached hub repository."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo, "config.json")
    return Path(path).parent.name if isinstance(path, str) else None


def model_identity(name: str, model: PaperVLM, repos: dict[str, str]) -> dict:
    """What makes the undefended model, without hashing its weights: repos at their commits, dtype, device kind
    (fp16 / bf16 on a GPU and fp32 on a CPU give other answers), input size, transformers and the wrapper code."""
    wrapper = {"llava-1.5": "lvlm.llava", "qwen3-vl": "lvlm.qwen_vl"}[name]
    return {"repos": {role: {"repo": repo, "revision": revision(repo)} for role, repo in repos.items()},
            "dtype": str(model.dtype), "device": model.device.type, "image_size": model.image_size,
            "transformers": version("transformers"),
            "wrapper": cache.code_fingerprint("lvlm.paper_vlm", "lvlm.hf_anchor", wrapper)}


def anchor_config(eps_255: int, seed: int) -> LvlmAnchorConfig:
    """App. E at one setting: the profile's R-Adapt+ recipe (paper: 2000 images, 10 epochs; smoke: 4, 1) at eps,
    with Table 9's R-Adapt+ alpha, beta and D0."""
    recipe = config.profile_defaults("paper").plus_anchor
    weights = reference.TABLE9["R-Adapt+"]
    return LvlmAnchorConfig(eps=eps_255 / 255, alpha=weights["alpha"], beta=weights["beta"], d0_224=weights["d0"],
                            seed=seed, **{k: recipe[k] for k in ANCHOR_FIELDS})


def anchor_images(model: PaperVLM, n: int, seed: int) -> torch.Tensor:
    """The anchors' training images, [0, 1] at the model's size: the seeded n train images that Table 1's R-Adapt+
    anchor is fitted on (paper: ImageNet train; smoke: the smoke split), resized to the LVLM's input instead of 224."""
    dataset = config.profile_defaults("paper").plus_train
    return data.paper_imageset(dataset, n, seed, image_size=model.image_size, split="train").images.float().div(255)


def train_anchor(model: PaperVLM, ident: dict, images: torch.Tensor, cfg: LvlmAnchorConfig,
                 progress: bool) -> LvlmAnchorRun:
    """One setting's anchor, cached: the same model, recipe, images and code give the same anchor."""
    spec = {"model": ident, "config": asdict(cfg), "images": fingerprint(images), "threads": config.CPU_THREADS,
            **cache.code_spec("lvlm.anchor", "attacks", "defense")}  # the wrapper's code is in the model's identity

    def compute() -> LvlmAnchorRun:
        config.seed_everything(cfg.seed)
        run = train_lvlm_anchor(model, images, cfg, progress=progress)
        return replace(run, anchor=run.anchor.cpu())  # a cache hit is read to the CPU: a miss returns the same

    return cache.cached("lvlm_anchor", spec, compute)


def vqa_set(model: PaperVLM, n_images: int, seed: int) -> protocol.VqaSet:
    """The screened COCO set (smoke: the first n images, unscreened, which the random weights could not pass)."""
    smoke = config.paper_smoke()
    candidates = coco.coco_vqa_set(n_images if smoke else max(CANDIDATES, n_images), seed, model.image_size)
    if not smoke:
        return protocol.screened_set(model, candidates.images, candidates.objects, candidates.vocabulary,
                                     candidates.caption_prompt, candidates.questions, n_images, candidates.source,
                                     words_of=coco.accepted_words)
    if len(candidates) < n_images:
        raise ValueError(f"only {len(candidates)} COCO images have a main object: ask for fewer (n_samples)")
    print(f"smoke size: the first {n_images} COCO images, unscreened (a random-weight {model.name} names no object)")
    objects = candidates.objects
    return protocol.VqaSet(candidates.images.clone(), objects,
                           protocol.nearest_targets(model, objects, candidates.vocabulary), candidates.caption_prompt,
                           candidates.questions, f"{candidates.source} (smoke size: unscreened)", len(candidates))


def row_identity(base: dict, run: LvlmAnchorRun | None) -> dict:
    """A row's model: the undefended model's identity, plus the anchor (by content) and how it is applied."""
    if run is None:
        return {**base, "anchor": None}
    cfg = run.config
    return {**base, "anchor": fingerprint(run.anchor), "alpha": cfg.alpha, "beta": cfg.beta, "d0_224": cfg.d0_224}


def run_paper_study(name: str, n_images: int, seed: int, settings: Sequence[int], attack: VAttackConfig,
                    progress: bool = True) -> "LvlmStudy":
    """One paper LVLM's rows: no defense, then R-Adapt+ with the anchor trained at each setting (eps in 1/255)."""
    from ..rtables.table5 import LvlmStudy

    model, repos = _load(name)
    ident = model_identity(name, model, repos)
    attack = replace(attack, steps=config.smoke_budget(attack.steps))
    study = LvlmStudy(name, model, vqa_set(model, n_images, seed), attack)
    runs: dict[int | None, LvlmAnchorRun | None] = {None: None}
    if settings:
        cfgs = {eps: anchor_config(eps, seed) for eps in settings}
        images = anchor_images(model, max(c.n_images for c in cfgs.values()), seed)  # one draw for every setting
        for eps, cfg in cfgs.items():
            runs[eps] = train_anchor(model, ident, images[:cfg.n_images], cfg, progress)
    for eps, run in runs.items():
        label = "No Defense" if eps is None else f"R-Adapt+ (eps={eps}/255)"
        row = model if run is None else model.defended(run.anchor, run.config.alpha, run.config.beta,
                                                       run.config.d0_224)
        study.results[eps] = protocol.evaluate_lvlm(row, label, row_identity(ident, run), study.vqa, attack,
                                                    words_of=coco.accepted_words, progress=progress)
    return study
