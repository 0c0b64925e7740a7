"""COCO val2017 for the LVLM experiments (Sec. 5, App. E): images, their main object, a caption prompt, 3 questions.

The paper follows V-Attack's protocol: 300 randomly sampled COCO images, each with 3 VQA pairs; CAP and VQA
accuracy is the share of responses that name the image's original object. V-Attack's own question file and its
LLM judge are not public, so (our choices, listed in the book):
* the image's object is the category of its largest non-crowd annotation (COCO's `area`, the segmentation
  area; ties: the lower annotation id); images without a non-crowd annotation are never drawn;
* the caption prompt is V-Attack's evaluation prompt; the 3 questions are fixed templates whose correct answer
  names the main object (`VQA_TEMPLATES`);
* "names the object" is a whole-word, case-insensitive match of any of `accepted_words(category)`: the
  category name and its plural, or a small explicit synonym table (`SYNONYMS`) where COCO's name is not what
  people say (person -> man, woman, ...; dining table -> table; tv -> television).

Files: $RADAPT_DATA/paper/coco/annotations/instances_val2017.json and $RADAPT_DATA/paper/coco/val2017/*.jpg
(without RADAPT_DATA: data_cache/paper/coco), as cocodataset.org's annotations_trainval2017.zip and val2017.zip unpack.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .. import data

ANNOTATIONS = Path("annotations") / "instances_val2017.json"
IMAGES = "val2017"
CAPTION_PROMPT = "Describe the image briefly in one sentence."  # V-Attack's evaluation prompt (Eval/llava.ipynb)
VQA_TEMPLATES = (
    "What is the main object in this image?",
    "What object is shown in this picture? Answer briefly.",
    "Which object is the largest in this image?",
)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("person", "persons", "people", "man", "men", "woman", "women", "boy", "boys", "girl", "girls", "child",
               "children", "kid", "kids", "baby", "babies", "lady", "ladies", "guy", "guys", "player", "players",
               "skier", "skiers", "surfer", "surfers", "skateboarder", "skateboarders", "snowboarder", "snowboarders"),
    "bicycle": ("bicycle", "bicycles", "bike", "bikes"),
    "motorcycle": ("motorcycle", "motorcycles", "motorbike", "motorbikes"),
    "airplane": ("airplane", "airplanes", "plane", "planes", "aircraft", "jet", "jets", "airliner", "airliners"),
    "boat": ("boat", "boats", "ship", "ships"),
    "fire hydrant": ("fire hydrant", "fire hydrants", "hydrant", "hydrants"),
    "parking meter": ("parking meter", "parking meters"),
    "sheep": ("sheep", "lamb", "lambs"),
    "sports ball": ("ball", "balls", "football", "soccer ball", "baseball", "tennis ball", "basketball", "volleyball"),
    "baseball bat": ("baseball bat", "baseball bats", "bat", "bats"),
    "baseball glove": ("baseball glove", "baseball gloves", "glove", "gloves", "mitt", "mitts"),
    "tennis racket": ("tennis racket", "tennis rackets", "racket", "rackets", "racquet", "racquets"),
    "wine glass": ("wine glass", "wine glasses", "glass", "glasses"),
    "cup": ("cup", "cups", "mug", "mugs"),
    "knife": ("knife", "knives"),
    "hot dog": ("hot dog", "hot dogs", "hotdog", "hotdogs"),
    "donut": ("donut", "donuts", "doughnut", "doughnuts"),
    "couch": ("couch", "couches", "sofa", "sofas"),
    "potted plant": ("potted plant", "potted plants", "plant", "plants", "houseplant", "houseplants"),
    "dining table": ("dining table", "dining tables", "table", "tables"),
    "tv": ("tv", "tvs", "television", "televisions"),
    "laptop": ("laptop", "laptops", "computer", "computers"),
    "mouse": ("mouse", "mice"),
    "remote": ("remote", "remotes", "remote control", "remote controls"),
    "cell phone": ("cell phone", "cell phones", "cellphone", "cellphones", "phone", "phones", "smartphone", "smartphones"),
    "teddy bear": ("teddy bear", "teddy bears", "teddy", "teddies"),
    "hair drier": ("hair drier", "hair driers", "hair dryer", "hair dryers", "blow dryer"),
    "skis": ("skis", "ski"),
    "scissors": ("scissors",),
}


def plural(name: str) -> str:
    """The English plural of a (possibly multi-word) name: its last word's regular plural."""
    head, _, last = name.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def accepted_words(category: str) -> tuple[str, ...]:
    """The words that count as naming a COCO category in a response (lower case)."""
    category = category.lower()
    return SYNONYMS.get(category, (category, plural(category)))


def names_object(text: str, category: str) -> bool:
    """Whether `text` names `category`: any accepted word as a whole word (multi-word: any spacing), any case."""
    words = sorted(accepted_words(category), key=len, reverse=True)
    pattern = r"\b(" + "|".join(r"\s+".join(map(re.escape, w.split())) for w in words) + r")\b"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


@dataclass(frozen=True)
class CocoVqaSet:
    """uint8 images (N x 3 x S x S), each image's main object, the caption prompt and the 3 questions (templates:
    the same for every image, as `protocol.screened_set` takes them)."""

    images: torch.Tensor
    image_ids: tuple[int, ...]
    file_names: tuple[str, ...]
    objects: tuple[str, ...]  # COCO category name of each image's largest non-crowd annotation
    caption_prompt: str
    questions: tuple[str, ...]  # the 3 VQA questions asked of every image; the correct answer names its object
    vocabulary: tuple[str, ...]  # all COCO category names (the concepts V-Attack's targets are drawn from)
    source: str

    def __len__(self) -> int:
        return len(self.image_ids)

    def floats(self) -> torch.Tensor:
        return self.images.float().div(255.0)

    def accepted(self, i: int) -> tuple[str, ...]:
        return accepted_words(self.objects[i])


def coco_root() -> Path:
    """$RADAPT_DATA/paper/coco, else data_cache/paper/coco."""
    return data.paper_root("coco")


def _missing(root: Path, what: str) -> data.DataNotFoundError:
    return data.DataNotFoundError(
        f"COCO val2017 could not be read from {root}: {what}. Put annotations/instances_val2017.json and val2017/*.jpg "
        "there (cocodataset.org: annotations_trainval2017.zip and val2017.zip, unpacked) "
        "(RADAPT_DATA=/path/to/datasets reads <RADAPT_DATA>/paper/coco)")


def main_objects(instances: dict) -> dict[int, str]:
    """image id -> category name of its largest non-crowd annotation (images without one are left out)."""
    names = {c["id"]: c["name"] for c in instances["categories"]}
    best: dict[int, tuple[float, int, int]] = {}  # image id -> (-area, annotation id, category id): min wins
    for ann in instances["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        key = (-float(ann["area"]), int(ann["id"]), int(ann["category_id"]))
        best[ann["image_id"]] = min(best.get(ann["image_id"], key), key)
    return {image_id: names[key[2]] for image_id, key in best.items()}


def coco_vqa_set(n_images: int = 300, seed: int = 0, image_size: int = 336, root: Path | None = None) -> CocoVqaSet:
    """n seeded COCO val2017 images with a main object, resized (bicubic, shortest side) and centre-cropped to
    `image_size` as every paper image (`data.paper_transform`); the order is the seeded draw's (a prefix of a
    draw is the smaller draw)."""
    root = Path(root or coco_root())
    if not (root / ANNOTATIONS).is_file():
        raise _missing(root, f"{ANNOTATIONS} is missing")
    with open(root / ANNOTATIONS) as f:
        instances = json.load(f)
    objects = main_objects(instances)
    files = {im["id"]: im["file_name"] for im in instances["images"]}
    ids = sorted(i for i in objects if i in files)
    if not ids:
        raise _missing(root, "no image has a non-crowd annotation")
    pick = [ids[int(k)] for k in data.seeded_subset(len(ids), n_images, seed)]
    transform = data.paper_transform(image_size)
    images = []
    for image_id in pick:
        path = root / IMAGES / files[image_id]
        if not path.is_file():
            raise _missing(root, f"{IMAGES}/{files[image_id]} is missing")
        with Image.open(path) as img:
            images.append(transform(img.convert("RGB")))
    return CocoVqaSet(torch.stack(images), tuple(pick), tuple(files[i] for i in pick), tuple(objects[i] for i in pick),
                      CAPTION_PROMPT, VQA_TEMPLATES, tuple(c["name"] for c in instances["categories"]),
                      f"COCO:val2017:seed{seed}")
