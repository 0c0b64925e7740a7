"""Qwen3-VL (`Qwen/Qwen3-VL-8B-Instruct`, App. E and Table 10) as a `VisionLanguageModel`, R-Adapt in its ViT.

Qwen3-VL's encoder is a ViT with DeepStack: 16 px patches, each a 2-frame temporal tube (a still image is its
own second frame), packed over all images into one sequence in 2 x 2 merge windows; a patch merger maps each
window to one LM token, and DeepStack mergers feed three intermediate blocks' features into the LM's first layers.

Choices (the book lists them):
* a fixed square `image_size` (448 px: a multiple of patch x merge = 32, 784 patches, 196 LM tokens) instead of
  the processor's aspect-preserving resize, so a batch of [0, 1] images is one tensor; `patchify` lays the pixels
  out exactly as `Qwen2VLImageProcessor` (the Qwen3-VL image processor) does (the tests check it equals it);
* `encoder_features`: the merger's tokens followed by each DeepStack merger's tokens (all that the LM reads of
  an image), concatenated along the token axis: (N, 196 * (1 + 3), 4096) at 448 px for the 8B model;
* `value_readout`: Qwen3-VL has no CLIP text tower, so the values V (the third part of `qkv(norm1(x))`) of the
  last `blocks` blocks are read out through that block's attention output projection `proj` and the final patch
  merger into the LM's input-embedding space, where `concept_embeddings` live: the mean of the LM input
  embeddings of the word's tokens (" word", as it appears mid-sentence), unit-normed;
* `answer` renders the processor's chat template (one user turn: the image, then the prompt) and expands
  <|image_pad|> as Qwen3VLProcessor does (one per merged token).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .hf_anchor import capture_inputs, unwrap
from .paper_vlm import PaperVLM, default_dtype, from_pretrained, left_pad, resolve_device

QWEN_REPO = "Qwen/Qwen3-VL-8B-Instruct"
QWEN_IMAGE_SIZE = 448
QWEN_MEAN = (0.5, 0.5, 0.5)  # Qwen3-VL's preprocessor_config.json
QWEN_STD = (0.5, 0.5, 0.5)
IMAGE_PAD = "<|image_pad|>"
# What Qwen3-VL's chat template renders for one user turn [image, text] with a generation prompt (used when no
# template is given).
FALLBACK_PROMPT = ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\n"
                   "<|im_start|>assistant\n")


class QwenVLVLM(PaperVLM):
    """Qwen3-VL around `transformers.Qwen3VLForConditionalGeneration`, on square images of side `image_size`."""

    packed_attention = True
    attention_returns_tuple = False

    def __init__(self, hf: nn.Module, tokenizer: Any, image_size: int = QWEN_IMAGE_SIZE, name: str = "qwen3-vl-8b",
                 mean: Sequence[float] = QWEN_MEAN, std: Sequence[float] = QWEN_STD, chat_template: str | None = None,
                 image_token: str = IMAGE_PAD):
        vision = hf.config.vision_config
        factor = vision.patch_size * vision.spatial_merge_size
        if image_size % factor:
            raise ValueError(f"image_size={image_size}: Qwen3-VL needs a multiple of patch x merge = {factor} px "
                             f"(e.g. {QWEN_IMAGE_SIZE})")
        super().__init__(hf, tokenizer, image_size, mean, std, name)
        self.chat_template = chat_template
        self.image_token = image_token

    # --- where things are ----------------------------------------------------------------------------
    @property
    def visual(self) -> nn.Module:
        return self.hf.model.visual

    def attention_slot(self) -> tuple[nn.Module, str]:
        return self.visual.blocks[0], "attn"

    def grid(self) -> int:
        return self.image_size // self.hf.config.vision_config.patch_size

    def anchor_shape(self) -> tuple[int, int]:
        return self.grid() ** 2, self.hf.config.vision_config.hidden_size  # no CLS token

    def image_tokens(self) -> int:
        """LM tokens per image: one per merge window (Qwen3VLProcessor: grid_t * grid_h * grid_w / merge^2)."""
        return self.grid() ** 2 // self.hf.config.vision_config.spatial_merge_size ** 2

    def patchify(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised N x 3 x S x S pixels -> (pixel_values, image_grid_thw) in Qwen2VLImageProcessor's layout:
        rows are patches ordered by merge window, each row channel x temporal x patch x patch (a still image
        repeated over the temporal tube)."""
        vision = self.hf.config.vision_config
        p, m, t = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
        n, c, g = pixels.shape[0], pixels.shape[1], self.grid()
        x = pixels.reshape(n, c, g // m, m, p, g // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, t, -1, -1).reshape(n * g * g, c * t * p * p)
        grid_thw = torch.tensor([[1, g, g]] * n, dtype=torch.long, device=pixels.device)
        return x, grid_thw

    def run_encoder(self, pixels: torch.Tensor) -> object:
        values, grid_thw = self.patchify(pixels)
        return self.visual(values.to(self.dtype), grid_thw=grid_thw)

    # --- the protocol --------------------------------------------------------------------------------
    def encoder_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, tokens x (1 + DeepStack levels), LM width): the merger's and the DeepStack mergers' tokens, float32."""
        values, grid_thw = self.patchify(self.encoder_pixels(images))
        out = self.hf.model.get_image_features(values.to(self.dtype), grid_thw, return_dict=True)
        levels = [torch.stack(list(out.pooler_output))] + [torch.stack(list(f)) for f in out.deepstack_features]
        return torch.cat(levels, dim=1).float()

    def value_readout(self, images: torch.Tensor, blocks: int) -> list[torch.Tensor]:
        chosen = list(self.visual.blocks)
        if not 1 <= blocks <= len(chosen):
            raise ValueError(f"blocks={blocks}: {self.name}'s encoder has {len(chosen)} blocks")
        chosen = chosen[len(chosen) - blocks:]
        pixels = self.encoder_pixels(images)
        n, width = len(images), self.hf.config.vision_config.hidden_size
        views = []
        for block, x in zip(chosen, capture_inputs(chosen, lambda: self.run_encoder(pixels))):
            attention = unwrap(block.attn)
            values = attention.qkv(block.norm1(x))[..., 2 * width:]  # qkv is laid out [q | k | v]
            merged = self.visual.merger(attention.proj(values))
            views.append(merged.reshape(n, -1, merged.shape[-1]).float())
        return views

    @torch.no_grad()
    def concept_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        table = self.hf.get_input_embeddings().weight
        rows = []
        for word in words:
            ids = self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"the tokenizer makes no token of {word!r}")
            rows.append(table[torch.tensor(ids, device=table.device)].float().mean(0))
        return F.normalize(torch.stack(rows), dim=-1)

    def prompt_text(self, prompt: str) -> str:
        """The chat-template text of one user turn [image, prompt] with the image placeholder expanded."""
        if self.chat_template is None:
            text = FALLBACK_PROMPT.format(prompt=prompt)
        else:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, tokenize=False,
                                                      add_generation_prompt=True)
        if text.count(self.image_token) != 1:
            raise ValueError(f"the chat template must render exactly one {self.image_token} for one image, got:\n{text}")
        return text.replace(self.image_token, self.image_token * self.image_tokens())

    def generation_inputs(self, pixels: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = [list(self.tokenizer(self.prompt_text(p))["input_ids"]) for p in prompts]
        ids, mask = left_pad(rows, self.pad_id(), self.device)
        values, grid_thw = self.patchify(pixels)
        # mm_token_type_ids (1 at image placeholders) lets transformers build Qwen3-VL's 3-D (M-RoPE) positions
        types = (ids == self.hf.config.image_token_id).int()
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": values.to(self.dtype),
                "image_grid_thw": grid_thw, "mm_token_type_ids": types}


def load_qwen3_vl(repo: str = QWEN_REPO, image_size: int = QWEN_IMAGE_SIZE, dtype: torch.dtype | None = None,
                  device: str | torch.device | None = None, attn_implementation: str | None = None) -> QwenVLVLM:
    """Qwen3-VL and its processor from `repo` (a hub id or a save_pretrained folder).

    dtype None: bfloat16 on a GPU (as Qwen3-VL is released), float32 on a CPU.
    """
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    device = resolve_device(device)
    dtype = dtype or default_dtype(device, torch.bfloat16)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    hf = from_pretrained(Qwen3VLForConditionalGeneration, repo, dtype=dtype, **extra).to(device)
    processor = from_pretrained(AutoProcessor, repo)
    images = processor.image_processor
    check_processor(hf.config.vision_config, images)
    return QwenVLVLM(hf, processor.tokenizer, image_size, name=str(repo).rstrip("/").split("/")[-1],
                     mean=images.image_mean, std=images.image_std,
                     chat_template=getattr(processor, "chat_template", None), image_token=processor.image_token)


def check_processor(vision: Any, images: Any) -> None:
    """`patchify` follows the repository's image processor only if both agree with the encoder on the layout."""
    ours = (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size)
    theirs = (images.patch_size, images.merge_size, images.temporal_patch_size)
    if ours != theirs:
        raise ValueError(f"the image processor's (patch, merge, temporal patch) = {theirs} but the vision encoder's "
                         f"config says {ours}: the repository's preprocessor_config.json does not belong to this model")
