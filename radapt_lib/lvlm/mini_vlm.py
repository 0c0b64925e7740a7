"""The mini LVLMs: LLaVA's recipe at CIFAR-10 scale, built from `transformers` classes.

A frozen mini CLIP vision tower -> an MLP projector (LLaVA-1.5's Linear-GELU-Linear) -> a few-layer
`LlamaForCausalLM` that reads the projected patch tokens as its first input embeddings, then the prompt, and
answers. Two of them play the paper's two LVLMs:

* `mini-llava`: mini-clip's tower (patch 4, 64 patch tokens), final-layer patch tokens (LLaVA reads one layer);
* `mini-qwen-vl`: the other architecture's tower (`mini-clip-p8`: patch 8, wider, shallower) with DeepStack, Qwen3-VL's
  way of feeding the LM: intermediate vision layers' patch tokens, each through its own projector, are added to the
  visual positions of the hidden states entering the LM's second, third, ... layers.

Trained (projector and LM; the tower frozen) on CIFAR-10 train images with generated text: a caption for
"describe the image." and three questions whose answers name the object (`TASKS`). The language is tiny and closed
(a word-level vocabulary, `WordTokenizer`), so at this scale CAP and VQA are classification read out through a
language model: the book says so. The model implements `base.VisionLanguageModel`.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from .. import defense
from ..data import CIFAR10_CLASSES
from ..zeroshot import Normalize
from .base import check_images

VEHICLES = ("airplane", "automobile", "ship", "truck")
CAPTION_PROMPT = "describe the image."
CAPTION_TEMPLATES = ("a photo of {a}.", "a picture of {a}.", "an image showing {a}.", "there is {a} in this picture.",
                     "a small photo of {a}.")
QUESTIONS = ("what is in the image?", "what is the main object?", "is it an animal or a vehicle?")
ANSWER_TEMPLATES = ("{a}.", "the main object is {a}.", "it is {kind}: {a}.")
TASKS = ("caption", *QUESTIONS)
SPECIALS = ("<pad>", "<bos>", "<eos>", "<answer>")
PAD, BOS, EOS, ANSWER = range(4)


def article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def kind_of(word: str) -> str:
    return "a vehicle" if word in VEHICLES else "an animal"


def target_text(task: int, word: str, template: int = 0) -> str:
    """The training answer for task 0 (caption, with template `template`) or question task (1..3)."""
    if task == 0:
        return CAPTION_TEMPLATES[template].format(a=article(word))
    return ANSWER_TEMPLATES[task - 1].format(a=article(word), kind=kind_of(word))


def prompt_text(task: int) -> str:
    return CAPTION_PROMPT if task == 0 else QUESTIONS[task - 1]


class WordTokenizer:
    """A closed word-level vocabulary: lower-case words and the punctuation . , ? : as tokens."""

    PATTERN = re.compile(r"[a-z]+|[.,?:]")

    def __init__(self, words: Sequence[str]):
        self.vocab = list(SPECIALS) + sorted(set(words) - set(SPECIALS))
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def for_tasks(cls) -> "WordTokenizer":
        texts = [prompt_text(t) for t in range(len(TASKS))]
        texts += [target_text(t, w, k) for w in CIFAR10_CLASSES for t in range(len(TASKS))
                  for k in range(len(CAPTION_TEMPLATES) if t == 0 else 1)]
        return cls([w for text in texts for w in cls.PATTERN.findall(text.lower())])

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        words = self.PATTERN.findall(text.lower())
        unknown = [w for w in words if w not in self.index]
        if unknown:
            raise ValueError(f"the mini LVLMs' vocabulary has no {unknown}: it knows {len(self.vocab)} words "
                             f"(their prompts are {TASKS})")
        return [self.index[w] for w in words]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                words.append(self.vocab[i])
        return re.sub(r" ([.,?:])", r"\1", " ".join(words))


@dataclass(frozen=True)
class MiniVLMConfig:
    tower: str = "mini-clip"  # the released CLIP whose vision tower is frozen inside
    lm_width: int = 128
    lm_layers: int = 3
    lm_heads: int = 4
    lm_mlp: int = 256
    deepstack: tuple[int, ...] = ()  # vision blocks (1-based) whose outputs feed LM layers 2, 3, ... (Qwen3-VL)
    n_images: int = 20000  # CIFAR-10 train images (features precomputed once: the tower is frozen)
    steps: int = 800
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    eval_every: int = 200
    eval_n: int = 500
    seed: int = 0


MINI_VLMS: dict[str, MiniVLMConfig] = {
    "mini-llava": MiniVLMConfig(),
    "mini-qwen-vl": MiniVLMConfig(tower="mini-clip-p8", deepstack=(2, 4)),
}


def projector(width: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden))


def _add_deepstack(module: nn.Module, args: tuple, kwargs: dict):
    """Forward pre-hook of an LM layer: add its DeepStack features (set just before the forward) at the visual positions."""
    extra = getattr(module, "deepstack_input", None)
    if extra is None:
        return None
    hidden = args[0] if args else kwargs["hidden_states"]
    hidden = torch.cat([hidden[:, :extra.shape[1]] + extra, hidden[:, extra.shape[1]:]], dim=1)
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


class MiniVLM(nn.Module):
    """[0, 1] images -> input_filter -> normalize -> frozen tower -> projector(s) -> Llama LM -> words."""

    def __init__(self, name: str, visual: nn.Module, mean: Sequence[float], std: Sequence[float],
                 concepts: torch.Tensor, cfg: MiniVLMConfig):
        super().__init__()
        if not getattr(visual.transformer, "batch_first", True):
            raise TypeError("the mini LVLMs need a batch-first open_clip tower")
        self.name, self.cfg = name, cfg
        self.tokenizer = WordTokenizer.for_tasks()
        self.input_filter: nn.Module = nn.Identity()
        self.normalize = Normalize(mean, std)
        self.visual = visual
        width = int(visual.class_embedding.shape[-1])
        self.projector = projector(width, cfg.lm_width)
        self.deepstack = nn.ModuleList([projector(width, cfg.lm_width) for _ in cfg.deepstack])
        self.lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(self.tokenizer), hidden_size=cfg.lm_width, intermediate_size=cfg.lm_mlp,
            num_hidden_layers=cfg.lm_layers, num_attention_heads=cfg.lm_heads, num_key_value_heads=cfg.lm_heads,
            max_position_embeddings=256, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=False,
            attn_implementation="sdpa"))
        if len(cfg.deepstack) >= cfg.lm_layers:
            raise ValueError(f"DeepStack feeds LM layers 2..{len(cfg.deepstack) + 1}, but the LM has {cfg.lm_layers}")
        for layer in self.lm.model.layers[1:1 + len(cfg.deepstack)]:
            layer.register_forward_pre_hook(_add_deepstack, with_kwargs=True)
        self.concept_words = tuple(CIFAR10_CLASSES)
        self.register_buffer("concepts", F.normalize(concepts.detach().float(), dim=-1))
        for p in self.visual.parameters():
            p.requires_grad_(False)

    @property
    def image_size(self) -> int:
        size = self.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    # --- the vision side ---------------------------------------------------------------------
    def tower_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.input_filter(check_images(images, self.image_size)))

    def vision_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(final-layer patch tokens after ln_post, [patch tokens after each DeepStack block])."""
        h = self.visual._embeds(self.tower_input(images))
        taps = []
        for i, block in enumerate(self.visual.transformer.resblocks, start=1):
            h = block(h)
            if i in self.cfg.deepstack:
                taps.append(h[:, 1:])
        return self.visual.ln_post(h)[:, 1:], taps

    def project(self, tokens: torch.Tensor, taps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.projector(tokens), [p(t) for p, t in zip(self.deepstack, taps)]

    def encoder_features(self, images: torch.Tensor) -> torch.Tensor:
        visual, extra = self.project(*self.vision_tokens(images))
        return torch.cat([visual, *extra], dim=1)

    def value_readout(self, images: torch.Tensor, blocks: int) -> list[torch.Tensor]:
        """Values v = W_v ln_1(h) of the last `blocks` blocks through out_proj, ln_post and the CLIP projection."""
        resblocks = self.visual.transformer.resblocks
        if not 1 <= blocks <= len(resblocks):
            raise ValueError(f"value_readout: blocks must be in [1, {len(resblocks)}], got {blocks}")
        h = self.visual._embeds(self.tower_input(images))
        out = []
        for i, block in enumerate(resblocks):
            if i >= len(resblocks) - blocks:
                attn = block.attn.inner if isinstance(block.attn, defense.FixedAnchorAttention) else block.attn
                width = attn.in_proj_weight.shape[1]
                v = F.linear(block.ln_1(h), attn.in_proj_weight[2 * width:], attn.in_proj_bias[2 * width:])
                out.append((self.visual.ln_post(attn.out_proj(v)) @ self.visual.proj)[:, 1:])
            h = block(h)
        return out

    def concept_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        unknown = [w for w in words if w not in self.concept_words]
        if unknown:
            raise ValueError(f"{self.name} has concept embeddings for {self.concept_words}, not {unknown}")
        return self.concepts[[self.concept_words.index(w) for w in words]]

    # --- the language side -------------------------------------------------------------------
    def logits(self, visual: torch.Tensor, extra: Sequence[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        embeds = torch.cat([visual, self.lm.get_input_embeddings()(tokens)], dim=1)
        layers = self.lm.model.layers[1:1 + len(extra)]
        try:
            for layer, e in zip(layers, extra):
                layer.deepstack_input = e
            return self.lm(inputs_embeds=embeds).logits[:, visual.shape[1]:]
        finally:
            for layer in layers:
                layer.deepstack_input = None

    def prompt_ids(self, prompt: str) -> list[int]:
        return [BOS, *self.tokenizer.encode(prompt), ANSWER]

    @torch.no_grad()
    def answer(self, images: torch.Tensor, prompts: Sequence[str], max_new_tokens: int = 12) -> list[str]:
        if len(prompts) != len(images):
            raise ValueError(f"one prompt per image: {len(images)} images, {len(prompts)} prompts")
        visual, extra = self.project(*self.vision_tokens(images))
        out: list[str] = [""] * len(prompts)
        for prompt in dict.fromkeys(prompts):  # one batch per distinct prompt: no padding needed
            idx = [i for i, p in enumerate(prompts) if p == prompt]
            tokens = torch.tensor([self.prompt_ids(prompt)] * len(idx), device=visual.device)
            start = tokens.shape[1]
            for _ in range(max_new_tokens):
                nxt = self.logits(visual[idx], [e[idx] for e in extra], tokens)[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, nxt], dim=1)
                if bool((tokens[:, start:] == EOS).any(1).all()):
                    break
            for row, i in enumerate(idx):
                out[i] = self.tokenizer.decode(tokens[row, start:].tolist())
        return out

    # --- R-Adapt in the encoder --------------------------------------------------------------
    def white_anchor(self) -> torch.Tensor:
        return defense.white_anchor(self.visual, self.normalize.mean.flatten().tolist(),
                                    self.normalize.std.flatten().tolist())

    def defended(self, anchor: torch.Tensor | None, alpha: float, beta: float, d0_224: float | None) -> "MiniVLM":
        model = copy.deepcopy(self)
        if d0_224 is not None:
            model.input_filter = defense.GaussianInputFilter(defense.d0_at(self.image_size, d0_224))
        if anchor is not None:
            defense.check_anchor(model.visual, anchor)
            block = defense.first_block(model.visual)
            block.attn = defense.FixedAnchorAttention(defense.original_attention(model.visual), anchor, alpha, beta)
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def anchor_buffer(self) -> torch.Tensor:
        attn = defense.first_block(self.visual).attn
        if not isinstance(attn, defense.FixedAnchorAttention):
            raise KeyError(f"{self.name} has no fixed robustness anchor: build it with .defended(anchor, ...)")
        return attn.anchor
