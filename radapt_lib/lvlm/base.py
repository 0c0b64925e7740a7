"""The one interface that V-Attack, the LVLM anchor training and the CAP / VQA protocol use.

Images are always [0, 1] tensors (N x 3 x S x S, S = `image_size`); everything that turns them into what a
vision encoder sees (the defense's Gaussian input filter, resizing, normalisation, patchifying) happens inside
the model, so an attack's gradient runs end-to-end through the defended encoder.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class VisionLanguageModel(Protocol):
    name: str
    image_size: int  # side of the square [0, 1] images the model takes

    def answer(self, images: torch.Tensor, prompts: Sequence[str], max_new_tokens: int = 12) -> list[str]:
        """Greedy answers, one per (image, prompt) pair (len(prompts) == len(images))."""

    def encoder_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, tokens, dim): the vision features the language model reads (after its projector), differentiable."""

    def value_readout(self, images: torch.Tensor, blocks: int) -> list[torch.Tensor]:
        """V-Attack's view: the value features of the encoder's last `blocks` blocks, each (N, tokens, D) in the
        space of `concept_embeddings` (not normalised), differentiable w.r.t. `images`."""

    def concept_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        """(len(words), D) unit rows: each word's embedding in the value readout's space."""

    def white_anchor(self) -> torch.Tensor:
        """The encoder's first-block attention output for a uniform white image (the FRA's initial value)."""

    def defended(self, anchor: torch.Tensor | None, alpha: float, beta: float,
                 d0_224: float | None) -> "VisionLanguageModel":
        """A deep copy with R-Adapt in the encoder: the Gaussian input filter (D0 given at 224 px, rescaled to the
        encoder's input resolution; None: no filter) and the fixed anchor at the first block's attention output
        (alpha * A + beta * h; None: no anchor). The original is untouched; every weight frozen."""

    def anchor_buffer(self) -> torch.Tensor:
        """The anchor tensor inside a defended model (what R-Adapt+ optimises); KeyError when there is none."""


def check_images(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (size, size):
        raise ValueError(f"expected [0, 1] images of shape N x 3 x {size} x {size}, got {tuple(images.shape)}")
    if images.numel() and (float(images.detach().min()) < 0 or float(images.detach().max()) > 1):
        raise ValueError("images must be in [0, 1] (divide uint8 pixels by 255)")
    return images
