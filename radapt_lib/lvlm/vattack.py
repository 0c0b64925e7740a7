"""V-Attack (Nie et al. 2025), single-object manipulation, implemented from its description (no code reachable).

The attack perturbs an image (l-inf, eps 16/255, 300 steps in the R-Adapt paper) so that, in the vision
encoder's *value* features of its last blocks, the patches that carry the source object ("dog") move toward a
target concept ("cat") and away from the source. It works on any `base.VisionLanguageModel`, through the whole
(defended) encoder: the gradient passes the Gaussian input filter and the anchor.

Our choices, where the description leaves them open (the book lists them):
* value view: `model.value_readout(x, blocks)`: each of the last `blocks` blocks' values, read out into the
  space where `model.concept_embeddings` live (for CLIP towers: the block's output projection, the final
  layer norm and the CLIP projection; for Qwen3-VL: the merger into the LM's embedding space);
* Self-Value Enhancement: each token's value is replaced by an attention-weighted mean of the values of its
  own image (V' = softmax(cos(V, V) / tau) V, tau = `enhance_tau`), which sharpens the object's semantics
  over the patches that carry it;
* text-guided localisation: on the clean image, the tokens whose enhanced value is at least as similar to the
  source concept as the image's mean token are the object's; the mask is fixed for the whole attack;
* objective (maximised): mean over masked tokens and blocks of cos(V', target) - cos(V', source);
* optimiser: signed gradient ascent, step 1/255 from the clean image (no random start: deterministic),
  projected onto the eps-ball and [0, 1] after every step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import attacks, config
from .base import VisionLanguageModel


@dataclass(frozen=True)
class VAttackConfig:
    eps: float = 16 / 255
    steps: int = 300
    step_size: float = 1 / 255
    blocks: int = 2  # the encoder's last blocks whose values are manipulated
    enhance: bool = True  # Self-Value Enhancement
    enhance_tau: float = 0.1
    batch_size: int = 100


def check_config(cfg: VAttackConfig) -> VAttackConfig:
    config.check_eps(cfg.eps)
    if cfg.steps < 0 or cfg.blocks < 1 or not cfg.step_size > 0 or cfg.batch_size < 1:
        raise ValueError(f"V-Attack needs steps >= 0, blocks >= 1, step_size > 0 and batch_size >= 1, got {cfg}")
    return cfg


def enhance(values: torch.Tensor, tau: float) -> torch.Tensor:
    """Self-Value Enhancement: V' = softmax(cos(V, V) / tau) V over one image's tokens (N x T x D)."""
    unit = F.normalize(values, dim=-1)
    return torch.softmax(unit @ unit.transpose(1, 2) / tau, dim=-1) @ values


def _views(model: VisionLanguageModel, x: torch.Tensor, cfg: VAttackConfig) -> list[torch.Tensor]:
    views = model.value_readout(x, cfg.blocks)
    return [enhance(v, cfg.enhance_tau) if cfg.enhance else v for v in views]


def source_masks(model: VisionLanguageModel, x: torch.Tensor, source: torch.Tensor,
                 cfg: VAttackConfig) -> list[torch.Tensor]:
    """Per block, (N x T) booleans: the tokens at least as close to the source concept as the image's mean token."""
    with torch.no_grad():
        masks = []
        for view in _views(model, x, cfg):
            sim = F.normalize(view, dim=-1) @ source.unsqueeze(-1)
            sim = sim.squeeze(-1)
            masks.append(sim >= sim.mean(dim=1, keepdim=True))
        return masks


def objective(model: VisionLanguageModel, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
              masks: Sequence[torch.Tensor], cfg: VAttackConfig) -> torch.Tensor:
    """Per image: mean over masked tokens and blocks of cos(V', target) - cos(V', source)."""
    total = torch.zeros(len(x), device=x.device)
    for view, mask in zip(_views(model, x, cfg), masks):
        unit = F.normalize(view, dim=-1)
        gain = (unit @ target.unsqueeze(-1) - unit @ source.unsqueeze(-1)).squeeze(-1)
        total = total + (gain * mask).sum(1) / mask.sum(1).clamp(min=1)
    return total / len(masks)


def _attack_batch(model: VisionLanguageModel, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
                  cfg: VAttackConfig) -> torch.Tensor:
    masks = source_masks(model, x, source, cfg)
    x_adv = x.clone()
    for _ in range(cfg.steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(objective(model, x_adv, source, target, masks, cfg).sum(), x_adv)
        with torch.no_grad():
            x_adv = x_adv + cfg.step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - cfg.eps), x + cfg.eps).clamp(0, 1)
    return x_adv.detach()


def v_attack(model: VisionLanguageModel, images: torch.Tensor, source_words: Sequence[str],
             target_words: Sequence[str], cfg: VAttackConfig = VAttackConfig(), progress: bool = False) -> torch.Tensor:
    """Adversarial [0, 1] images: image i's `source_words[i]` object pushed toward `target_words[i]`."""
    from tqdm import tqdm

    check_config(cfg)
    if not (len(images) == len(source_words) == len(target_words)):
        raise ValueError(f"V-Attack needs one source and one target word per image, got {len(images)} images, "
                         f"{len(source_words)} sources, {len(target_words)} targets")
    if any(s == t for s, t in zip(source_words, target_words)):
        raise ValueError("V-Attack's target concept must differ from the source object")
    x = images.detach()
    words = sorted(set(source_words) | set(target_words))
    with torch.no_grad():
        table = model.concept_embeddings(words)
    row = {w: i for i, w in enumerate(words)}
    source = table[[row[w] for w in source_words]]
    target = table[[row[w] for w in target_words]]
    out = []
    for lo in tqdm(range(0, len(x), cfg.batch_size), desc="V-Attack", unit="batch", disable=not progress, leave=False):
        hi = lo + cfg.batch_size
        out.append(_attack_batch(model, x[lo:hi], source[lo:hi], target[lo:hi], cfg))
    x_adv = torch.cat(out) if out else x.clone()
    attacks.check_perturbation(x, x_adv, cfg.eps)
    return x_adv
