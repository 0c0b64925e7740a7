"""Datasets: CIFAR-10 (decoded once into a cached uint8 tensor), the mini splits, and the paper's 16.

Where CIFAR-10 comes from, in order: $RADAPT_DATA/cifar10 (ImageFolder of JPEGs), then
data_cache/cifar10 (same layout), then torchvision's download into data_cache/torchvision.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import cache, config
from .classnames import paper_classnames

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VEHICLES = ("airplane", "automobile", "ship", "truck")
ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")
# CLIP's published CIFAR prompt set (Radford et al. 2021), used for captions and zero-shot heads.
CIFAR_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
    "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
    "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
    "a photo of the small {}.", "a photo of the big {}.",
)


class DataNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 N x 3 x H x W, integer labels into classnames, and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    classnames: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.labels.numel())

    def floats(self) -> torch.Tensor:
        return self.images.float().div(255.0)

    def first(self, n: int) -> "ImageSet":
        """The first n images (a seeded sample's prefix is itself a seeded sample)."""
        if not 1 <= n <= len(self):
            raise ValueError(f"first(n) needs 1 <= n <= {len(self)}, got {n}")
        return ImageSet(self.images[:n], self.labels[:n], self.classnames, self.source)


def _read_image_folder(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        files = sorted((root / name).glob("*.jpg")) + sorted((root / name).glob("*.png"))
        if not files:
            raise DataNotFoundError(f"{root / name} has no images: expected the ImageFolder layout cifar10/<split>/<class>/*.jpg")
        for path in files:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    array = np.stack(images).transpose(0, 3, 1, 2).copy()
    return torch.from_numpy(array), torch.tensor(labels, dtype=torch.long)


def _read_torchvision(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(root=str(root), train=(split == "train"), download=True)
    return torch.from_numpy(ds.data.transpose(0, 3, 1, 2).copy()), torch.tensor(ds.targets, dtype=torch.long)


def _cifar10_sources(split: str) -> list[tuple[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]]]:
    sources = []
    env_root = config.data_root()
    if env_root is not None and (env_root / "cifar10" / split).is_dir():
        sources.append(("jpeg-folder", lambda: _read_image_folder(env_root / "cifar10" / split)))
    local = config.cache_dir() / "cifar10" / split
    if local.is_dir():
        sources.append(("jpeg-folder", lambda: _read_image_folder(local)))
    sources.append(("torchvision", lambda: _read_torchvision(config.cache_dir() / "torchvision", split)))
    return sources


def load_cifar10(split: str = "test") -> ImageSet:
    """All of CIFAR-10's train or test split, decoded once and cached as a uint8 tensor."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown CIFAR-10 split {split!r}: use 'train' or 'test'")
    errors = []
    for source, read in _cifar10_sources(split):
        try:
            images, labels = cache.cached("datasets", {"dataset": "cifar10", "split": split, "source": source,
                                                             **cache.code_spec("data")}, read)
            return ImageSet(images, labels, CIFAR10_CLASSES, source)
        except Exception as exc:  # try the next source, but remember why this one failed
            errors.append(f"{source}: {type(exc).__name__}: {str(exc)[:120]}")
    raise DataNotFoundError(
        "CIFAR-10 not found. Provide it one of three ways: set RADAPT_DATA to a folder holding "
        "cifar10/{train,test}/<class>/*.jpg (CI uses ../shared/data); put that folder at "
        f"{config.cache_dir() / 'cifar10'}; or go online so torchvision can download it. Tried: " + "; ".join(errors)
    )


# --- the mini profile's "datasets": class subsets and shifted copies of CIFAR-10 -------------

def _gray(x: torch.Tensor) -> torch.Tensor:
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    return luma.expand(-1, 3, -1, -1).contiguous()


def _blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    # Radius 2 up to sigma 1 (cifar10-blur's kernel); beyond, it would truncate the Gaussian: 3 sigma then.
    radius = 2 if sigma <= 1.0 else math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    kernel = (k[:, None] * k[None, :]).expand(3, 1, -1, -1).contiguous()
    return F.conv2d(F.pad(x, (radius,) * 4, mode="reflect"), kernel, groups=3)


def _noise(x: torch.Tensor, std: float = 0.08, seed: int = 1234) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def _jpeg(x: torch.Tensor, quality: int = 15) -> torch.Tensor:
    out = []
    for img in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255)


def _lowres(x: torch.Tensor, size: int = 12) -> torch.Tensor:
    small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)


SHIFTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gray": _gray, "blur": _blur, "noise": _noise, "jpeg": _jpeg, "lowres": _lowres,
}


@dataclass(frozen=True)
class MiniDataset:
    """A mini "dataset": a class subset of CIFAR-10 (optionally shifted) with a role in the study."""

    name: str
    classes: tuple[str, ...]
    shift: str | None
    role: str  # "source" (the fine-tunes' training distribution), "ood-classes", "shifted", "all"
    description: str


MINI_DATASETS: dict[str, MiniDataset] = {
    "animals": MiniDataset("animals", ANIMALS, None, "source",
                           "the 6 animal classes: the fine-tunes' source distribution (ImageNet's role)"),
    "vehicles": MiniDataset("vehicles", VEHICLES, None, "ood-classes",
                            "the 4 vehicle classes: never seen by the fine-tunes (unseen categories)"),
    "cifar10": MiniDataset("cifar10", CIFAR10_CLASSES, None, "all", "all 10 classes, as mini-clip was pre-trained"),
    **{
        f"cifar10-{s}": MiniDataset(f"cifar10-{s}", CIFAR10_CLASSES, s, "shifted", f"all 10 classes, {s} shift")
        for s in SHIFTS
    },
}
FINETUNE_SOURCE = "animals"


def check_dataset(name: str, profile: str = "mini") -> str:
    names = MINI_DATASETS if profile == "mini" else PAPER_DATASETS
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"unknown {profile} dataset {name!r}: use one of {sorted(names)}")
    return name


def check_n(n: int | None) -> int | None:
    """A number of images: a whole number >= 1, or None for all of them (0 and negatives are refused)."""
    if n is None:
        return None
    if isinstance(n, bool) or not float(n).is_integer() or n < 1:
        raise ValueError(f"n={n!r} images: use a whole number >= 1 (or None for all)")
    return int(n)


def seeded_subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a seeded shuffle (the folders are sorted by class: never take a prefix)."""
    n = check_n(n)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_total, generator=gen)
    return perm if n is None else perm[: min(n, n_total)]


def mini_dataset(name: str, split: str = "test", n: int | None = None, seed: int = 0) -> ImageSet:
    """A mini dataset as float-ready uint8 images with labels re-indexed into its own classes."""
    spec = MINI_DATASETS[check_dataset(name, "mini")]
    base = load_cifar10(split)
    class_ids = torch.tensor([CIFAR10_CLASSES.index(c) for c in spec.classes])
    keep = torch.isin(base.labels, class_ids).nonzero().squeeze(1)
    keep = keep[seeded_subset(keep.numel(), n, seed)]
    images = base.images[keep]
    remap = torch.full((len(CIFAR10_CLASSES),), -1, dtype=torch.long)
    remap[class_ids] = torch.arange(len(class_ids))
    labels = remap[base.labels[keep]]
    if spec.shift is not None:
        images = (SHIFTS[spec.shift](images.float().div(255)) * 255).round().clamp(0, 255).to(torch.uint8)
    return ImageSet(images, labels, spec.classes, f"{base.source}:{name}")


# --- the paper profile: the 16 datasets of Table 1 -----------------------------------------

@dataclass(frozen=True)
class PaperDataset:
    name: str
    torchvision_class: str
    test: dict  # torchvision keyword arguments of the split the tables test on
    train: dict | None  # ... of a training split; None: one pool of images (see `paper_imageset`)


PAPER_DATASETS: dict[str, PaperDataset] = {d.name: d for d in (
    PaperDataset("ImageNet", "ImageNet", {"split": "val"}, {"split": "train"}),
    PaperDataset("CIFAR10", "CIFAR10", {"train": False}, {"train": True}),
    PaperDataset("CIFAR100", "CIFAR100", {"train": False}, {"train": True}),
    PaperDataset("STL10", "STL10", {"split": "test"}, {"split": "train"}),
    PaperDataset("Caltech101", "Caltech101", {}, None),
    PaperDataset("Caltech256", "Caltech256", {}, None),
    PaperDataset("OxfordPets", "OxfordIIITPet", {"split": "test"}, {"split": "trainval"}),
    PaperDataset("Flowers102", "Flowers102", {"split": "test"}, {"split": "train"}),
    PaperDataset("Food101", "Food101", {"split": "test"}, {"split": "train"}),
    PaperDataset("StanfordCars", "StanfordCars", {"split": "test"}, {"split": "train"}),
    PaperDataset("SUN397", "SUN397", {}, None),
    PaperDataset("Country211", "Country211", {"split": "test"}, {"split": "train"}),
    PaperDataset("FGVCA", "FGVCAircraft", {"split": "test"}, {"split": "train"}),
    PaperDataset("EuroSAT", "EuroSAT", {}, None),
    PaperDataset("DTD", "DTD", {"split": "test"}, {"split": "train"}),
    PaperDataset("PCAM", "PCAM", {"split": "test"}, {"split": "train"}),
)}
SPLITS = ("test", "train")
# torchvision cannot download these (licence; StanfordCars' URL is dead): what to put in the folder instead.
NOT_DOWNLOADABLE = {
    "ImageNet": "ILSVRC2012_devkit_t12.tar.gz and ILSVRC2012_img_val.tar (train: ILSVRC2012_img_train.tar), or what "
                "torchvision unpacks from them: meta.bin and val/<wnid>/*.JPEG",
    "StanfordCars": "stanford_cars/ with devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, "
                    "cars_test_annos_withlabels.mat and cars_test/ (the original URL is dead; mirrors keep this layout)",
}


def paper_root(name: str) -> Path:
    """Where a Table 1 dataset is read from (and downloaded to): $RADAPT_DATA/paper/<name>, else data_cache/paper/<name>."""
    return (config.data_root() or config.cache_dir()) / "paper" / name


def paper_dataset(name: str, transform=None, root: Path | None = None, split: str = "test", download: bool = True):
    """The torchvision dataset behind a Table 1 column, read from its folder (downloaded there if missing and online).

    ImageNet and StanfordCars are never downloaded (NOT_DOWNLOADABLE). A dataset that is neither there nor
    downloadable is a DataNotFoundError naming the folder and what to put in it.
    """
    import torchvision.datasets as tvd

    spec = PAPER_DATASETS[check_dataset(name, "paper")]
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: use one of {SPLITS}")
    root = Path(root or paper_root(name))
    kwargs = dict((spec.train if split == "train" and spec.train is not None else spec.test), transform=transform)
    if spec.torchvision_class not in NOT_DOWNLOADABLE:
        kwargs["download"] = download
    try:
        return getattr(tvd, spec.torchvision_class)(root=str(root), **kwargs)
    except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found or corrupted", failed downloads
        what = NOT_DOWNLOADABLE.get(spec.torchvision_class) or \
            f"the files torchvision.datasets.{spec.torchvision_class} downloads (run once online to fetch them)"
        raise DataNotFoundError(f"{name} ({split}) could not be read from {root}: put {what} there "
                                f"(RADAPT_DATA=/path/to/datasets reads <RADAPT_DATA>/paper/{name}). torchvision said: "
                                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def paper_indices(spec: PaperDataset, size: int, n: int | None, seed: int, split: str) -> torch.Tensor:
    """n seeded indices of the split. A one-pool dataset is halved by a fixed permutation: tests draw from the
    first half, training and validation from the second, so the two never share an image."""
    if spec.train is not None:
        return seeded_subset(size, n, seed)
    pool = torch.randperm(size, generator=torch.Generator().manual_seed(0))
    half = pool[: size // 2] if split == "test" else pool[size // 2:]
    return half[seeded_subset(len(half), n, seed)]


def paper_transform(image_size: int = 224):
    """PIL image -> uint8 tensor resized (bicubic) and centre-cropped to the encoder's size: every paper image's path."""
    import torchvision.transforms as T

    return T.Compose([T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(image_size),
                      T.PILToTensor()])


def paper_imageset(name: str, n: int | None, seed: int = 0, image_size: int = 224, split: str = "test") -> ImageSet:
    """A seeded subset of a Table 1 dataset's split, resized and centre-cropped to the encoder's size."""
    dataset = paper_dataset(name, transform=paper_transform(image_size), split=split)
    idx = paper_indices(PAPER_DATASETS[name], len(dataset), n, seed, split)
    pairs = [dataset[int(i)] for i in idx]
    images = torch.stack([p[0] if p[0].shape[0] == 3 else p[0].expand(3, -1, -1) for p in pairs])
    labels = torch.tensor([int(p[1]) for p in pairs])
    return ImageSet(images, labels, tuple(paper_classnames(dataset)), f"torchvision:{name}:{split}")


def load_images(profile: str, name: str, n: int | None, seed: int = 0, split: str = "test") -> ImageSet:
    """n seeded images of a dataset in either profile: a mini split, or a paper dataset at 224 px."""
    config.check_profile(profile)
    check_dataset(name, profile)
    if profile == "mini":
        return mini_dataset(name, split, n=n, seed=seed)
    return paper_imageset(name, n, seed, split=split)


def mini_datasets_frame():
    """The mini datasets, their roles and sizes, for the book's design table."""
    import pandas as pd

    test = load_cifar10("test")
    rows = []
    for spec in MINI_DATASETS.values():
        ids = [CIFAR10_CLASSES.index(c) for c in spec.classes]
        rows.append({"dataset": spec.name, "role": spec.role, "classes": len(spec.classes),
                     "test images": int(torch.isin(test.labels, torch.tensor(ids)).sum()),
                     "chance (%)": round(100 / len(spec.classes), 1), "what it is": spec.description})
    return pd.DataFrame(rows)


def datasets_frame(profile: str):
    """The profile's datasets for the zoo page: the mini splits with their roles, or where each paper dataset is read."""
    import pandas as pd

    if config.check_profile(profile) == "mini":
        return mini_datasets_frame()
    return pd.DataFrame([{"dataset": d.name, "torchvision class": d.torchvision_class, "folder": str(paper_root(d.name)),
                          "test split": d.test or "first half of one pool", "train split": d.train or "second half"}
                         for d in PAPER_DATASETS.values()])
