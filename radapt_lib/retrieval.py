"""Image -> text retrieval (Table 4): Recall@k, clean and under an attack that pushes each image's embedding away
from its own captions, end to end through the (defended) vision tower.

A retrieval model is a `ZeroShotClassifier` whose "classes" are the test images, each represented by the mean of its
captions' unit text embeddings: its cross-entropy at the true image falls as the image embedding moves toward its
own captions and away from the others', so the library's PGD (`attacks.attack(..., "pgd")`: cross-entropy, fixed
steps, random start, step eps/4, the final iterate) pushes it away from them, through the GIF and the anchor when
the model is defended. Every image is attacked, not only those retrieved at rank 1 (an R@10 under attack needs the
others attacked too). Ranks are then read against every caption of the set.

`mini`: `mosaics.test_mosaics` (one caption per mosaic). `paper`: Flickr30k's 1k Karpathy test images with 5 captions
each, in the layout CLIP_benchmark reads (`FLICKR_ANNOTATIONS` beside the JPEGs).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import attacks, cache, config, data, models, mosaics
from .evaluation import EVALUATION_CODE, fingerprint
from .models import LoadedModel
from .stats import Estimate, accuracy
from .zeroshot import ZeroShotClassifier

FLICKR_ANNOTATIONS = "flickr30k_test_karpathy.txt"  # "image,caption" lines after a header; 5 lines per image
RECALL_K = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalSet:
    """Test images (uint8 N x 3 x H x W), every caption, and for each caption the index of its image."""

    images: torch.Tensor
    captions: tuple[str, ...]
    caption_image: torch.Tensor
    source: str

    def __len__(self) -> int:
        return int(self.images.shape[0])


def mini_set(n: int, seed: int = 0) -> RetrievalSet:
    images, _, captions = mosaics.test_mosaics(n, seed)
    return RetrievalSet(images, tuple(captions), torch.arange(len(captions)), f"cifar10-mosaics:test:seed{seed}")


def read_flickr_annotations(path: Path) -> dict[str, list[str]]:
    """CLIP_benchmark's Flickr30k annotation file: a header, then 'image.jpg,caption' lines; split at the first
    '.jpg,' as CLIP_benchmark does (captions may hold commas and quotes)."""
    captions: dict[str, list[str]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        if ".jpg," not in line:
            raise data.DataNotFoundError(f"{path}, line {number}: expected 'image.jpg,caption', got {line[:60]!r}")
        image, text = line.strip().split(".jpg,", 1)
        captions.setdefault(image + ".jpg", []).append(text.strip())
    return captions


def paper_set(n: int, seed: int = 0, image_size: int = 224) -> RetrievalSet:
    """n seeded Flickr30k test images (resized and centre-cropped as the Table 1 datasets) with their captions."""
    from PIL import Image

    root = data.paper_root("Flickr30k")
    annotations = root / FLICKR_ANNOTATIONS
    if not annotations.exists():
        raise data.DataNotFoundError(
            f"Flickr30k could not be read from {root}: put the test images (<id>.jpg) and {FLICKR_ANNOTATIONS} (Karpathy "
            f"test split, as CLIP_benchmark downloads it) there (RADAPT_DATA=/path/to/datasets reads <RADAPT_DATA>/paper/Flickr30k)")
    by_image = read_flickr_annotations(annotations)
    names = sorted(by_image)
    chosen = [names[int(i)] for i in data.seeded_subset(len(names), n, seed)]
    missing = [name for name in chosen if not (root / name).exists()]
    if missing:
        raise data.DataNotFoundError(f"Flickr30k: {len(missing)} test images are missing in {root} (e.g. {missing[0]}): "
                                     f"put the Flickr30k JPEGs there")
    transform = data.paper_transform(image_size)
    images = torch.stack([transform(Image.open(root / name).convert("RGB")) for name in chosen])
    captions = [c for name in chosen for c in by_image[name]]
    owner = torch.tensor([i for i, name in enumerate(chosen) for _ in by_image[name]])
    return RetrievalSet(images, tuple(captions), owner, f"Flickr30k:test-karpathy:seed{seed}")


def load_set(profile: str, n: int, seed: int = 0) -> RetrievalSet:
    return mini_set(n, seed) if config.check_profile(profile) == "mini" else paper_set(n, seed)


@torch.no_grad()
def caption_embeddings(loaded: LoadedModel, captions: tuple[str, ...], batch_size: int = 500) -> torch.Tensor:
    """Unit text embeddings (captions x dim) from a model's text tower."""
    device = next(loaded.clip.parameters()).device
    loaded.clip.eval()
    chunks = [loaded.clip.encode_text(loaded.tokenizer(list(captions[i:i + batch_size])).to(device))
              for i in range(0, len(captions), batch_size)]
    return F.normalize(torch.cat(chunks), dim=-1)


def image_head(text: torch.Tensor, caption_image: torch.Tensor, n_images: int) -> torch.Tensor:
    """dim x images: each image's captions' mean embedding, renormalised (the attack's target classes)."""
    sums = torch.zeros(n_images, text.shape[1], dtype=text.dtype, device=text.device)
    sums.index_add_(0, caption_image.to(text.device), text)
    return F.normalize(sums, dim=-1).T.contiguous()


def retrieval_classifier(loaded: LoadedModel, text: torch.Tensor, rset: RetrievalSet,
                         visual: torch.nn.Module | None = None) -> ZeroShotClassifier:
    """The retrieval model of one vision tower (default the CLIP's own): logits over the set's images."""
    return models.head_classifier(loaded, image_head(text, rset.caption_image, len(rset)),
                                  [f"image {i}" for i in range(len(rset))], visual)


@dataclass
class RetrievalResult:
    """Per image, the rank of its best-ranked own caption among all captions (0 = retrieved first), clean and attacked."""

    label: str
    attack: str
    eps: float
    clean_rank: np.ndarray
    adv_rank: np.ndarray
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def hits(self, k: int, which: str = "robust") -> np.ndarray:
        if which not in ("clean", "robust"):
            raise ValueError(f"which={which!r}: use 'clean' or 'robust'")
        return (self.clean_rank if which == "clean" else self.adv_rank) < k

    def recall(self, k: int, which: str = "robust") -> Estimate:
        """Recall@k (%) with its bootstrap interval over images."""
        return accuracy(self.hits(k, which))


def ranks(embeddings: torch.Tensor, text: torch.Tensor, owner: torch.Tensor, first: int) -> torch.Tensor:
    """Rank of each image's best own caption: how many captions score strictly higher than it."""
    sims = embeddings @ text.T
    ids = torch.arange(first, first + embeddings.shape[0], device=sims.device)
    own = owner.to(sims.device)[None, :] == ids[:, None]
    best = sims.masked_fill(~own, float("-inf")).amax(1, keepdim=True)
    return (sims > best).sum(1)


def evaluate_retrieval(model: ZeroShotClassifier, rset: RetrievalSet, text: torch.Tensor, eps: float, *,
                       attack: str = "pgd", n_iter: int = 10, seed: int = 0, batch_size: int = 100,
                       label: str = "") -> RetrievalResult:
    """Clean and attacked ranks of every image, cached by content (model, images, captions, attack, code)."""
    eps = config.check_eps(eps)
    settings = {"attack": attack, "eps": round(eps, 8), "n_iter": n_iter, "batch_size": batch_size, "seed": seed}
    spec = {"model": fingerprint(model), "images": fingerprint(rset.images), "text": fingerprint(text),
            "owner": fingerprint(rset.caption_image), **settings, **cache.code_spec(*EVALUATION_CODE, "retrieval")}

    def compute() -> RetrievalResult:
        return _run(model, rset, text, eps, attack, n_iter, seed, batch_size, label, settings)

    result = cache.cached("retrieval", spec, compute)
    result.label = label or result.label
    return result


def _run(model, rset, text, eps, attack, n_iter, seed, batch_size, label, settings) -> RetrievalResult:
    device = next(model.parameters()).device
    clean, adv = [], []
    start = time.perf_counter()
    for b, lo in enumerate(tqdm(range(0, len(rset), batch_size), desc=f"{label or 'model'}: retrieval {attack} "
                                f"eps={eps * 255:.1f}/255", unit="batch", leave=False)):
        x = rset.images[lo:lo + batch_size].float().div(255).to(device)
        y = torch.arange(lo, lo + x.shape[0], device=device)
        x_adv = attacks.attack(model, x, y, attack, eps, n_iter=n_iter, seed=seed + b).x_adv
        attacks.check_perturbation(x, x_adv, eps)
        with torch.no_grad():
            clean.append(ranks(model.embed(x), text, rset.caption_image, lo).cpu())
            adv.append(ranks(model.embed(x_adv), text, rset.caption_image, lo).cpu())
    return RetrievalResult(label, attack, eps, torch.cat(clean).numpy(), torch.cat(adv).numpy(), settings,
                           time.perf_counter() - start)
