"""The CAP / VQA protocol of Tables 5 and 11 on any `base.VisionLanguageModel`, with a cached, released record.

Paper (following V-Attack): 300 COCO images, each with a caption prompt and 3 VQA pairs; V-Attack (single-object
manipulation, eps 16/255, 300 steps) moves the image's object toward another concept; CAP and VQA accuracy =
share of responses that name the *original* object. The undefended model's clean accuracy is 100.0 in both
tables, so the images are ones it gets right: our set keeps the first test images (seeded order) whose clean
caption and three answers all name the object (`screened_set`), and reports how many it screened.

The attack is white-box and end to end: V-Attack runs against each row's own model, R-Adapt's filter and anchor
included. Its target concept is the nearest other class in the value readout's concept space (`nearest_targets`).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .. import cache, config, stats
from ..evaluation import fingerprint
from .base import VisionLanguageModel
from .vattack import VAttackConfig, v_attack

N_EXAMPLES = 4  # images whose answers and adversarial images a record keeps (Fig. 6)


@dataclass(frozen=True)
class VqaSet:
    images: torch.Tensor  # uint8, N x 3 x S x S
    objects: tuple[str, ...]
    targets: tuple[str, ...]  # V-Attack's target concept per image
    caption_prompt: str
    questions: tuple[str, ...]
    source: str
    screened: int  # candidates looked at to find these

    def __len__(self) -> int:
        return len(self.objects)


def default_words(obj: str) -> tuple[str, ...]:
    return (obj, f"{obj}s")


def names_object(answer: str, words: Sequence[str]) -> bool:
    """Does the answer name the object (any of its accepted words, as a whole word)?"""
    text = answer.lower()
    return any(re.search(rf"\b{re.escape(w.lower())}\b", text) for w in words)


def prompts_of(vqa_caption: str, questions: Sequence[str]) -> tuple[str, ...]:
    return (vqa_caption, *questions)


def answer_all(model: VisionLanguageModel, images: torch.Tensor, prompts: Sequence[str]) -> list[list[str]]:
    """answers[p][i]: the model's answer to prompt p on image i."""
    return [model.answer(images, [p] * len(images)) for p in prompts]


def correctness(answers: list[list[str]], objects: Sequence[str],
                words_of: Callable[[str], Sequence[str]] = default_words) -> np.ndarray:
    """(prompts x images) booleans: does answer p on image i name image i's object?"""
    return np.array([[names_object(a, words_of(o)) for a, o in zip(row, objects)] for row in answers], dtype=bool)


def nearest_targets(model: VisionLanguageModel, objects: Sequence[str], vocabulary: Sequence[str]) -> tuple[str, ...]:
    """Each object's nearest other concept (cosine of concept embeddings): V-Attack's target."""
    table = model.concept_embeddings(vocabulary)
    sim = table @ table.T
    sim.fill_diagonal_(-2.0)
    nearest = {w: vocabulary[int(sim[i].argmax())] for i, w in enumerate(vocabulary)}
    return tuple(nearest[o] for o in objects)


def screened_set(model: VisionLanguageModel, images: torch.Tensor, objects: Sequence[str], vocabulary: Sequence[str],
                 caption_prompt: str, questions: Sequence[str], n_images: int, source: str,
                 words_of: Callable[[str], Sequence[str]] = default_words, batch: int = 200) -> VqaSet:
    """The first n_images of (images, objects) on which `model`'s clean caption and answers all name the object."""
    keep: list[int] = []
    prompts = prompts_of(caption_prompt, questions)
    for lo in range(0, len(images), batch):
        x = images[lo:lo + batch].float().div(255)
        ok = correctness(answer_all(model, x, prompts), objects[lo:lo + batch], words_of).all(0)
        keep += [lo + int(i) for i in np.flatnonzero(ok)][:n_images - len(keep)]
        if len(keep) == n_images:
            break
    if len(keep) < n_images:
        raise ValueError(f"only {len(keep)} of {len(images)} candidates are answered correctly by {model.name}: "
                         f"ask for fewer images (n_images) or give more candidates")
    kept = tuple(objects[i] for i in keep)
    return VqaSet(images[keep].clone(), kept, nearest_targets(model, kept, vocabulary), caption_prompt,
                  tuple(questions), source, keep[-1] + 1)


@dataclass
class LvlmResult:
    """One row of Table 5 / 11: correctness on clean and on V-Attack images, per prompt (0: caption, 1..: VQA)."""

    label: str
    clean: np.ndarray  # prompts x images, bool
    robust: np.ndarray
    attack: dict
    examples: dict = field(default_factory=dict)  # answers and adversarial images of the first N_EXAMPLES images
    seconds: float = 0.0

    def cap(self, which: str) -> stats.Estimate:
        return stats.accuracy(getattr(self, which)[0])

    def vqa(self, which: str) -> stats.Estimate:
        """VQA accuracy over all questions, CI from resampling images (an image's questions move together)."""
        table = getattr(self, which)[1:].T.astype(np.float64)  # images x questions
        return stats.bootstrap(lambda idx: 100.0 * table[idx].mean(), len(table))


def lvlm_spec(identity: dict, vqa: VqaSet, attack: VAttackConfig) -> dict:
    return {"model": identity, "images": fingerprint(vqa.images), "objects": list(vqa.objects),
            "targets": list(vqa.targets), "prompts": list(prompts_of(vqa.caption_prompt, vqa.questions)),
            "attack": asdict(attack), "threads": config.CPU_THREADS,
            **cache.code_spec("lvlm.vattack", "lvlm.protocol", "lvlm.mini_vlm", "defense", "attacks")}


def evaluate_lvlm(model: VisionLanguageModel, label: str, identity: dict, vqa: VqaSet,
                  attack: VAttackConfig = VAttackConfig(), words_of: Callable[[str], Sequence[str]] = default_words,
                  progress: bool = True) -> LvlmResult:
    """Clean and V-Attack correctness of `model` on `vqa` (cached under `identity`: what makes the model, by content)."""

    def compute() -> LvlmResult:
        start = time.perf_counter()
        x = vqa.images.float().div(255)
        prompts = prompts_of(vqa.caption_prompt, vqa.questions)
        clean_answers = answer_all(model, x, prompts)
        x_adv = v_attack(model, x, vqa.objects, vqa.targets, attack, progress=progress)
        adv_answers = answer_all(model, x_adv, prompts)
        k = min(N_EXAMPLES, len(vqa))
        examples = {"clean": [row[:k] for row in clean_answers], "attacked": [row[:k] for row in adv_answers],
                    "adversarial": x_adv[:k].mul(255).round().to(torch.uint8)}
        return LvlmResult(label, correctness(clean_answers, vqa.objects, words_of),
                          correctness(adv_answers, vqa.objects, words_of), asdict(attack), examples,
                          time.perf_counter() - start)

    return cache.cached("lvlm", lvlm_spec(identity, vqa, attack), compute)
