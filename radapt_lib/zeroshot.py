"""Zero-shot classification: a text-derived head on a vision tower, inputs in [0, 1].

Normalisation lives inside the classifier, so attacks and defenses work on [0, 1] pixels.
The head is open_clip's own `build_zero_shot_classifier` (mean of normalised template
embeddings, renormalised); logits are 100 * cosine, as in CLIP.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from open_clip import build_zero_shot_classifier
from torch import nn

LOGIT_SCALE = 100.0


class Normalize(nn.Module):
    """(x - mean) / std per channel: the one place images in [0, 1] become a tower's input."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ZeroShotClassifier(nn.Module):
    """[0, 1] images -> logits over the classes of one dataset, along one readable path:

        image -> input_filter -> normalize -> visual -> unit embedding -> 100 * cos with the text head

    `input_filter` is the identity unless a defense sets it (R-Adapt's Gaussian input filter runs on
    [0, 1] pixels); `visual` is an open_clip VisionTransformer, whose first block's attention a defense
    may replace with the fixed robustness anchor (`defense.defend`). Attacks see the whole path.
    """

    def __init__(self, visual: nn.Module, head: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                 classnames: Sequence[str]):
        super().__init__()
        self.input_filter: nn.Module = nn.Identity()
        self.normalize = Normalize(mean, std)
        self.visual = visual
        self.register_buffer("head", head.detach().clone())
        self.classnames = tuple(classnames)

    @property
    def mean(self) -> torch.Tensor:
        return self.normalize.mean

    @property
    def std(self) -> torch.Tensor:
        return self.normalize.std

    @property
    def image_size(self) -> int:
        size = self.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def tower_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the vision tower sees for [0, 1] images: filtered (if a defense set a filter), then normalised."""
        return self.normalize(self.input_filter(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings of [0, 1] images."""
        return nn.functional.normalize(self.visual(self.tower_input(x)), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LOGIT_SCALE * self.embed(x) @ self.head


def text_head(clip_model: nn.Module, tokenizer, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot weights (embed_dim x classes) from open_clip's builder."""
    device = next(clip_model.parameters()).device
    was_training = clip_model.training
    clip_model.eval()
    head = build_zero_shot_classifier(clip_model, tokenizer, list(classnames), list(templates),
                                      num_classes_per_batch=None, device=device)
    clip_model.train(was_training)
    return head


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels for [0, 1] float or uint8 images, batched, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size]
        x = x.float().div(255) if x.dtype == torch.uint8 else x
        out.append(model(x.to(device)).argmax(dim=1).cpu())
    return torch.cat(out)


def top_class_share(preds) -> float:
    """Share (%) of predictions that fall on the single most frequent class: flags collapse."""
    p = np.asarray(preds).ravel()
    return float(100.0 * np.bincount(p).max() / max(p.size, 1))
