"""LLaVA-1.5 (`llava-hf/llava-1.5-7b-hf`, Sec. 5 and Table 10) as a `VisionLanguageModel`, R-Adapt in its CLIP tower.

The vision tower is CLIP-L/14 at 336 px; the language model reads the patch tokens (CLS dropped, strategy
"default") of the hidden state `vision_feature_layer` = -2, i.e. the output of the second-to-last encoder layer,
through the two-layer `multi_modal_projector`.

V-Attack's view (`value_readout`): the values V = v_proj(layer_norm1(x)) of the last `blocks` encoder layers the
language model reads (the last one is the layer whose output is `vision_feature_layer`), read out into CLIP's
joint image-text space through that layer's out_proj, the tower's post_layernorm and CLIP's visual_projection,
patch tokens only. `concept_embeddings` are CLIP's unit text embeddings of "a photo of a {word}." from the CLIP
model whose vision weights are LLaVA's tower (`openai/clip-vit-large-patch14-336`).
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .hf_anchor import capture_inputs, unwrap
from .paper_vlm import PaperVLM, default_dtype, from_pretrained, left_pad, resolve_device

LLAVA_REPO = "llava-hf/llava-1.5-7b-hf"
CLIP_REPO = "openai/clip-vit-large-patch14-336"
PROMPT = "USER: <image>\n{prompt} ASSISTANT:"  # LLaVA-1.5's conversation format, as its model card writes it
CONCEPT_TEMPLATE = "a photo of a {}."
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class LlavaVLM(PaperVLM):
    """LLaVA-1.5 around `transformers.LlavaForConditionalGeneration`, plus the CLIP text side for V-Attack."""

    def __init__(self, hf: nn.Module, tokenizer: Any, clip: nn.Module, clip_tokenizer: Any, name: str = "llava-1.5-7b",
                 mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD,
                 image_token: str = "<image>"):
        cfg = hf.config
        super().__init__(hf, tokenizer, cfg.vision_config.image_size, mean, std, name)
        if not isinstance(cfg.vision_feature_layer, int) or cfg.vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(f"LlavaVLM reads one vision_feature_layer (an int) with strategy 'default' or 'full', got "
                             f"{cfg.vision_feature_layer!r} / {cfg.vision_feature_select_strategy!r}")
        width = cfg.vision_config.hidden_size
        if clip.visual_projection.in_features != width:
            raise ValueError(f"the CLIP model's visual_projection takes width {clip.visual_projection.in_features} but "
                             f"LLaVA's tower is {width} wide: give the CLIP model LLaVA's tower comes from ({CLIP_REPO})")
        self.clip = clip.requires_grad_(False).eval()
        self.clip_tokenizer = clip_tokenizer
        self.image_token = image_token
        self.last_read_layer = self._last_read_layer()

    # --- where things are ----------------------------------------------------------------------------
    @property
    def tower(self) -> nn.Module:
        return self.hf.model.vision_tower

    def _last_read_layer(self) -> int:
        """0-based index of the encoder layer whose output the LM reads (hidden_states[0] is the embeddings)."""
        layers = self.hf.config.vision_config.num_hidden_layers
        index = self.hf.config.vision_feature_layer % (layers + 1)
        if index < 1:
            raise ValueError("vision_feature_layer selects the embeddings: the LM would read no encoder layer")
        return index - 1

    def attention_slot(self) -> tuple[nn.Module, str]:
        return self.tower.encoder.layers[0], "self_attn"

    def grid(self) -> int:
        return self.image_size // self.hf.config.vision_config.patch_size

    def anchor_shape(self) -> tuple[int, int]:
        return self.grid() ** 2 + 1, self.hf.config.vision_config.hidden_size  # patches + CLS

    def shared_objects(self) -> list[object]:
        return [self.tokenizer, self.clip_tokenizer]

    def run_encoder(self, pixels: torch.Tensor) -> object:
        return self.tower(pixels.to(self.dtype))

    # --- the protocol --------------------------------------------------------------------------------
    def encoder_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, patches, LM width): the projected image tokens LLaVA's language model reads, float32."""
        pixels = self.encoder_pixels(images).to(self.dtype)
        out = self.hf.model.get_image_features(pixel_values=pixels, return_dict=True)
        return torch.stack(list(out.pooler_output)).float()

    def value_readout(self, images: torch.Tensor, blocks: int) -> list[torch.Tensor]:
        last = self.last_read_layer
        if not 1 <= blocks <= last + 1:
            raise ValueError(f"blocks={blocks}: the LM reads {last + 1} encoder layers of {self.name}")
        layers = list(self.tower.encoder.layers[last - blocks + 1:last + 1])
        pixels = self.encoder_pixels(images).to(self.dtype)
        views = []
        for layer, x in zip(layers, capture_inputs(layers, lambda: self.tower(pixels))):
            attention = unwrap(layer.self_attn)
            values = attention.v_proj(layer.layer_norm1(x))
            joint = self.clip.visual_projection(self.tower.post_layernorm(attention.out_proj(values)))
            views.append(joint[:, 1:].float())  # patch tokens only
        return views

    @torch.no_grad()
    def concept_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        texts = [CONCEPT_TEMPLATE.format(w) for w in words]
        tok = self.clip_tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
        out = self.clip.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return F.normalize(out.pooler_output.float(), dim=-1)

    def image_tokens(self) -> int:
        """Placeholders per image, as LlavaProcessor expands <image>: patches, + CLS with strategy 'full'."""
        return self.grid() ** 2 + (1 if self.hf.config.vision_feature_select_strategy == "full" else 0)

    def prompt_ids(self, prompt: str) -> list[int]:
        """The tokens LlavaProcessor makes of PROMPT: <image> expanded in the text, then tokenized (with BOS)."""
        text = PROMPT.format(prompt=prompt).replace("<image>", self.image_token * self.image_tokens(), 1)
        return list(self.tokenizer(text)["input_ids"])

    def generation_inputs(self, pixels: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([self.prompt_ids(p) for p in prompts], self.pad_id(), self.device)
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels.to(self.dtype)}


def load_llava(repo: str = LLAVA_REPO, clip_repo: str = CLIP_REPO, dtype: torch.dtype | None = None,
               device: str | torch.device | None = None, attn_implementation: str | None = None) -> LlavaVLM:
    """LLaVA-1.5 and its processor from `repo`, CLIP's text side from `clip_repo` (hub ids or save_pretrained folders).

    dtype None: float16 on a GPU (as LLaVA is released and V-Attack evaluates it), float32 on a CPU.
    """
    from transformers import AutoProcessor, AutoTokenizer, CLIPModel, LlavaForConditionalGeneration

    device = resolve_device(device)
    dtype = dtype or default_dtype(device, torch.float16)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    hf = from_pretrained(LlavaForConditionalGeneration, repo, dtype=dtype, **extra).to(device)
    processor = from_pretrained(AutoProcessor, repo)
    clip = from_pretrained(CLIPModel, clip_repo, dtype=dtype, **extra).to(device)
    clip_tokenizer = from_pretrained(AutoTokenizer, clip_repo)
    images = processor.image_processor
    model = LlavaVLM(hf, processor.tokenizer, clip, clip_tokenizer, name=str(repo).rstrip("/").split("/")[-1],
                     mean=images.image_mean, std=images.image_std, image_token=processor.image_token)
    check_processor(model, processor)
    check_tower(model)
    return model


def check_processor(model: LlavaVLM, processor: Any) -> None:
    """Our <image> expansion must give as many placeholders as the repository's LlavaProcessor would."""
    count = getattr(processor, "_get_num_multimodal_tokens", None)
    if count is None:  # a private transformers helper: nothing to compare against in versions without it
        return
    theirs = count(image_sizes=[[model.image_size, model.image_size]]).num_image_tokens[0]
    if theirs != model.image_tokens():
        raise ValueError(f"{model.name}'s processor expands <image> into {theirs} tokens, LlavaVLM into "
                         f"{model.image_tokens()}: its patch_size / vision_feature_select_strategy / "
                         "num_additional_image_tokens disagree with the model config")


def check_tower(model: LlavaVLM) -> None:
    """Warn when the CLIP model's vision weights are not LLaVA's tower: V-Attack's readout projection assumes they are."""
    ours = model.tower.embeddings.patch_embedding.weight
    theirs = model.clip.vision_model.embeddings.patch_embedding.weight
    if ours.shape != theirs.shape or not torch.equal(ours, theirs.to(ours.device, ours.dtype)):
        warnings.warn(f"the CLIP model's vision weights differ from {model.name}'s tower: value_readout projects with "
                      f"a visual_projection trained for another tower (use {CLIP_REPO} for LLaVA-1.5)", stacklevel=3)
