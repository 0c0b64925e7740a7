"""The paper profile's LVLMs (Sec. 5, App. E, Table 10) through transformers, with R-Adapt inside their vision encoders.

* `llava.LlavaVLM` / `llava.load_llava`: LLaVA-1.5 (`llava-hf/llava-1.5-7b-hf`; CLIP-L/14 at 336 px);
* `qwen_vl.QwenVLVLM` / `qwen_vl.load_qwen3_vl`: Qwen3-VL (`Qwen/Qwen3-VL-8B-Instruct`; a ViT with DeepStack).

Both are re-exported here. This module holds what they share (`PaperVLM`): the [0, 1] image path (the optional
Gaussian input filter, then the model's normalisation, all in torch, so attacks differentiate end to end),
`defended`, `anchor_buffer`, `white_anchor`, greedy `answer`, and loading with errors that name the fix.

Choices common to both (the book lists them):
* every weight is frozen when the wrapper is built: nothing in this project trains an LVLM's weights, and
  attacks need only input gradients;
* `defended` copies the module tree but shares the frozen weight tensors with the original (a 7-8 B model is
  never duplicated on the GPU); R-Adapt's own modules (filter, anchor) are new and belong to the copy only;
* filter and normalisation run in float32; the encoder runs in the model's dtype; every tensor the protocol
  returns (features, value readouts, concept embeddings, anchors) is float32.
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

import torch
from torch import nn

from .. import config
from ..defense import GaussianInputFilter, d0_at
from .base import check_images
from .hf_anchor import AnchoredAttention, capture_call, check_anchor_shape, copy_sharing_weights, unwrap

ANSWER_BATCH = 16  # prompts generated together in `answer` (left-padded)


class ModelUnavailableError(OSError):
    """A paper LVLM (or its processor) is neither in the Hugging Face cache nor reachable."""


def from_pretrained(loader: Any, repo: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(repo, **kwargs)`, or a ModelUnavailableError that says how to provide `repo`."""
    try:
        return loader.from_pretrained(repo, **kwargs)
    except OSError as exc:  # transformers reports missing files, offline mode and network failures as OSError
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(
            f"{repo} could not be loaded ({first}). Download it once online (`hf download {repo}`), or point "
            f"HF_HUB_CACHE at a Hugging Face cache that holds it (with HF_HUB_OFFLINE=1 offline); a folder written by "
            f"save_pretrained also works: pass its path as the repo") from exc


def default_dtype(device: torch.device, gpu_dtype: torch.dtype) -> torch.dtype:
    """The paper's half precision on a GPU; float32 on a CPU (half-precision matmuls are slow or missing there)."""
    return gpu_dtype if torch.device(device).type == "cuda" else torch.float32


def resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else config.device()


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows left-padded to one length (generation continues every row at the right end) and their mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


class PaperVLM(nn.Module):
    """Shared machinery of the transformers-backed `VisionLanguageModel`s; subclasses say where things are."""

    packed_attention = False  # Qwen3-VL packs all images' tokens into one sequence
    attention_returns_tuple = True  # CLIPAttention returns (output, weights); Qwen3VLVisionAttention a tensor

    def __init__(self, hf: nn.Module, tokenizer: Any, image_size: int, mean: Sequence[float], std: Sequence[float],
                 name: str):
        super().__init__()
        self.name = name
        self.image_size = int(image_size)
        self.hf = hf
        self.tokenizer = tokenizer
        self.input_filter: nn.Module = nn.Identity()
        device = next(hf.parameters()).device
        self.register_buffer("mean", torch.tensor([float(m) for m in mean], device=device).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std], device=device).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    # --- what a subclass provides ------------------------------------------------------------------
    def attention_slot(self) -> tuple[nn.Module, str]:
        """(the first encoder block, the attribute name of its attention sub-layer)."""
        raise NotImplementedError

    def anchor_shape(self) -> tuple[int, int]:
        """(tokens, width) of the first block's attention output for one image."""
        raise NotImplementedError

    def run_encoder(self, pixels: torch.Tensor) -> object:
        """Run the vision encoder on normalised pixels (N x 3 x S x S, float32)."""
        raise NotImplementedError

    def generation_inputs(self, pixels: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """`generate`'s keyword arguments for normalised pixels and their prompts (input_ids left-padded)."""
        raise NotImplementedError

    def shared_objects(self) -> list[object]:
        """Non-module attributes a defended copy shares instead of copying (tokenizers, processors)."""
        return [self.tokenizer]

    # --- the image path ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    def encoder_pixels(self, images: torch.Tensor, filtered: bool = True) -> torch.Tensor:
        """[0, 1] images -> (Gaussian input filter) -> the model's normalisation, float32, differentiable."""
        check_images(images.detach(), self.image_size)  # detached: its range check reads values, not gradients
        x = images.to(self.device, torch.float32)
        if filtered:
            x = self.input_filter(x)
        return (x - self.mean) / self.std

    # --- R-Adapt -------------------------------------------------------------------------------------
    def defended(self, anchor: torch.Tensor | None, alpha: float, beta: float, d0_224: float | None) -> "PaperVLM":
        """A copy with R-Adapt in the encoder (see base.VisionLanguageModel.defended); the original is untouched.

        The copy shares the original's frozen weight tensors; it replaces any filter or anchor the original had.
        """
        model = copy_sharing_weights(self, shared=self.shared_objects())
        model.input_filter = (nn.Identity() if d0_224 is None
                              else GaussianInputFilter(d0_at(self.image_size, d0_224)).to(self.device))
        block, attr = model.attention_slot()
        original = unwrap(getattr(block, attr))
        if anchor is None:
            setattr(block, attr, original)
        else:
            check_anchor_shape(anchor, self.anchor_shape(), self.name, self.image_size)
            setattr(block, attr, AnchoredAttention(original, anchor, alpha, beta, packed=self.packed_attention,
                                                   returns_tuple=self.attention_returns_tuple))
        model.requires_grad_(False)
        return model.eval()

    def anchor_buffer(self) -> torch.Tensor:
        block, attr = self.attention_slot()
        attention = getattr(block, attr)
        if not isinstance(attention, AnchoredAttention):
            raise KeyError(f"{self.name} has no anchor: make a defended copy first, defended(anchor, alpha, beta, d0_224)")
        return attention.anchor

    @torch.no_grad()
    def white_anchor(self) -> torch.Tensor:
        """The original first-block attention output for a uniform white image (no filter), (tokens x width).

        Captures what the first attention sub-layer is called with and evaluates the original attention on it,
        so the result is the same on a defended copy; the rest of the encoder never runs.
        """
        white = torch.ones(1, 3, self.image_size, self.image_size, device=self.device)
        pixels = self.encoder_pixels(white, filtered=False)
        block, attr = self.attention_slot()
        args, kwargs = capture_call(getattr(block, attr), lambda: self.run_encoder(pixels))
        out = unwrap(getattr(block, attr))(*args, **kwargs)
        out = out[0] if self.attention_returns_tuple else out
        return out.reshape(self.anchor_shape()).float().clone()

    # --- language --------------------------------------------------------------------------------------
    def pad_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise ValueError(f"{self.name}'s tokenizer has neither a pad nor an eos token to left-pad prompts with")
        return int(pad)

    def _generation_config(self, max_new_tokens: int):
        """Greedy decoding with the model's own stop tokens (the hub configs of chat models enable sampling)."""
        from transformers import GenerationConfig

        own = self.hf.generation_config
        eos = own.eos_token_id if own.eos_token_id is not None else self.tokenizer.eos_token_id
        return GenerationConfig(max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                                eos_token_id=eos, pad_token_id=self.pad_id(), bos_token_id=own.bos_token_id)

    @torch.no_grad()
    def answer(self, images: torch.Tensor, prompts: Sequence[str], max_new_tokens: int = 12) -> list[str]:
        """Greedy answers, one per (image, prompt) pair, decoded without special tokens and stripped."""
        if len(prompts) != len(images):
            raise ValueError(f"answer needs one prompt per image, got {len(images)} images and {len(prompts)} prompts")
        out: list[str] = []
        for lo in range(0, len(prompts), ANSWER_BATCH):
            pixels = self.encoder_pixels(images[lo:lo + ANSWER_BATCH])
            inputs = self.generation_inputs(pixels, list(prompts[lo:lo + ANSWER_BATCH]))
            ids = self.hf.generate(**inputs, generation_config=self._generation_config(max_new_tokens))
            new = ids[:, inputs["input_ids"].shape[1]:]
            out += [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return out


# Re-exports, resolved on first use: llava and qwen_vl import this module, so importing them here would be circular.
_EXPORTS = {"LlavaVLM": "llava", "load_llava": "llava", "QwenVLVLM": "qwen_vl", "load_qwen3_vl": "qwen_vl"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
