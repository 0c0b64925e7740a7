"""Tiny synthetic datasets in the on-disk layouts that torchvision's loaders read (for the paper profile's tests).

Random pixels, the real folder and file names: `paper_dataset` reads them through torchvision, unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGENET_CLASSES = 1000


def _jpeg(path: Path, rng: np.random.Generator, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)


def imagenet(root: Path, per_class: int = 1, classes: int = IMAGENET_CLASSES, splits=("val",)) -> Path:
    """torchvision.datasets.ImageNet after it has unpacked the archives: meta.bin and <split>/<wnid>/*.JPEG."""
    rng = np.random.default_rng(0)
    wnids = [f"n{i:08d}" for i in range(classes)]
    root.mkdir(parents=True, exist_ok=True)
    torch.save(({w: (f"class {i}",) for i, w in enumerate(wnids)}, wnids), root / "meta.bin")
    for split in splits:
        for w in wnids:
            for k in range(per_class):
                _jpeg(root / split / w / f"ILSVRC2012_{split}_{w}_{k}.JPEG", rng)
    return root


def eurosat(root: Path, per_class: int = 4, classes=("AnnualCrop", "Forest", "River")) -> Path:
    """torchvision.datasets.EuroSAT: eurosat/2750/<class>/<class>_<k>.jpg (one pool of images, no splits)."""
    rng = np.random.default_rng(1)
    for c in classes:
        for k in range(per_class):
            _jpeg(root / "eurosat" / "2750" / c / f"{c}_{k}.jpg", rng, size=64)
    return root


def caltech256(root: Path, per_class: int = 3, classes=("001.ak47", "002.american-flag", "003.backpack")) -> Path:
    """torchvision.datasets.Caltech256: caltech256/256_ObjectCategories/<NNN.name>/<NNN>_<kkkk>.jpg (one pool)."""
    rng = np.random.default_rng(2)
    for c in classes:
        for k in range(1, per_class + 1):
            _jpeg(root / "caltech256" / "256_ObjectCategories" / c / f"{c[:3]}_{k:04d}.jpg", rng, size=48)
    return root


def dtd(root: Path, per_class: int = 2, classes=("banded", "blotchy", "braided")) -> Path:
    """torchvision.datasets.DTD: dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train,val,test}1.txt."""
    rng = np.random.default_rng(3)
    base = root / "dtd" / "dtd"
    lines = {"train": [], "val": [], "test": []}
    for c in classes:
        for split in lines:
            for k in range(per_class):
                name = f"{c}_{split}_{k:04d}.jpg"
                _jpeg(base / "images" / c / name, rng, size=48)
                lines[split].append(f"{c}/{name}")
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (base / "labels" / f"{split}1.txt").write_text("\n".join(rows) + "\n")
    return root


def caltech101(root: Path, per_class: int = 4, classes=("BACKGROUND_Google", "Faces_easy", "accordion", "airplanes")) -> Path:
    """torchvision.datasets.Caltech101: caltech101/101_ObjectCategories/<class>/image_<kkkk>.jpg (one pool; the
    BACKGROUND_Google folder is not a class)."""
    rng = np.random.default_rng(4)
    for c in classes:
        for k in range(1, per_class + 1):
            _jpeg(root / "caltech101" / "101_ObjectCategories" / c / f"image_{k:04d}.jpg", rng, size=48)
    return root


def oxford_pets(root: Path, per_class: int = 2, breeds=(("Abyssinian", 1), ("american_bulldog", 2), ("Bengal", 1))) -> Path:
    """torchvision.datasets.OxfordIIITPet: oxford-iiit-pet/images/<Breed>_<k>.jpg and annotations/{trainval,test}.txt
    ("<image id> <class, 1-based> <species: 1 cat, 2 dog> <breed id>")."""
    rng = np.random.default_rng(5)
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for offset, split in enumerate(("trainval", "test")):
        rows = []
        for label, (breed, species) in enumerate(breeds, start=1):
            for k in range(per_class):
                image_id = f"{breed}_{1 + k + offset * per_class}"
                _jpeg(base / "images" / f"{image_id}.jpg", rng, size=48)
                rows.append(f"{image_id} {label} {species} {label}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def food101(root: Path, per_class: int = 2, classes=("apple_pie", "baby_back_ribs", "baklava")) -> Path:
    """torchvision.datasets.Food101: food-101/images/<class>/<id>.jpg and meta/{train,test}.json ({class: ["<class>/<id>"]})."""
    rng = np.random.default_rng(6)
    base = root / "food-101"
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for offset, split in enumerate(("train", "test")):
        meta = {}
        for c in classes:
            ids = [f"{c}/{100000 * (offset + 1) + k}" for k in range(per_class)]
            for rel in ids:
                _jpeg(base / "images" / f"{rel}.jpg", rng, size=48)
            meta[c] = ids
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
    return root


def sun397(root: Path, per_class: int = 4, classes=("/a/abbey", "/a/apartment_building/outdoor", "/b/bakery/shop")) -> Path:
    """torchvision.datasets.SUN397: SUN397/ClassName.txt ("/a/abbey" per line) and SUN397/<class>/sun_<id>.jpg (one pool)."""
    rng = np.random.default_rng(7)
    base = root / "SUN397"
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("\n".join(classes) + "\n")
    for i, c in enumerate(classes):
        for k in range(per_class):
            _jpeg(base / c.strip("/") / f"sun_a{i}{k:03d}.jpg", rng, size=48)
    return root


def country211(root: Path, per_class: int = 2, codes=("AD", "KR", "XK")) -> Path:
    """torchvision.datasets.Country211: country211/{train,valid,test}/<ISO 3166 alpha-2 code>/<id>.jpg."""
    rng = np.random.default_rng(8)
    for split in ("train", "valid", "test"):
        for code in codes:
            for k in range(per_class):
                _jpeg(root / "country211" / split / code / f"{split}{k}.jpg", rng, size=48)
    return root


def fgvc_aircraft(root: Path, per_class: int = 2, variants=("707-320", "A300B4", "Cessna 172")) -> Path:
    """torchvision.datasets.FGVCAircraft: fgvc-aircraft-2013b/data/variants.txt, images/<id>.jpg and
    images_variant_{train,test}.txt ("<id> <variant>")."""
    rng = np.random.default_rng(9)
    base = root / "fgvc-aircraft-2013b" / "data"
    base.mkdir(parents=True, exist_ok=True)
    (base / "variants.txt").write_text("\n".join(variants) + "\n")
    for offset, split in enumerate(("train", "test")):
        rows = []
        for i, v in enumerate(variants):
            for k in range(per_class):
                image_id = f"{1000000 + offset * 1000 + i * 10 + k}"
                _jpeg(base / "images" / f"{image_id}.jpg", rng, size=48)
                rows.append(f"{image_id} {v}")
        (base / f"images_variant_{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def pcam(root: Path, n: int = 6) -> Path:
    """torchvision.datasets.PCAM: pcam/camelyonpatch_level_2_split_<split>_{x,y}.h5 ("x": N x 96 x 96 x 3 uint8,
    "y": N x 1 x 1 x 1 labels, 1 = metastatic tissue)."""
    import h5py

    rng = np.random.default_rng(10)
    base = root / "pcam"
    base.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        with h5py.File(base / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
            f["x"] = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        with h5py.File(base / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
            f["y"] = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1)
    return root


def stanford_cars(root: Path, per_class: int = 2, classes=("AM General Hummer SUV 2000", "Acura RL Sedan 2012")) -> Path:
    """torchvision.datasets.StanfordCars: stanford_cars/devkit/{cars_meta,cars_train_annos}.mat, cars_train/,
    cars_test_annos_withlabels.mat and cars_test/ (annotations: struct arrays with fname and a 1-based class)."""
    import scipy.io

    rng = np.random.default_rng(11)
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(classes, dtype=object)})
    for split, mat in (("train", base / "devkit" / "cars_train_annos.mat"), ("test", base / "cars_test_annos_withlabels.mat")):
        rows = []
        for label in range(1, len(classes) + 1):
            for k in range(per_class):
                fname = f"{split}{label:03d}{k:02d}.jpg"
                _jpeg(base / f"cars_{split}" / fname, rng, size=48)
                rows.append((fname, label))
        scipy.io.savemat(mat, {"annotations": np.array(rows, dtype=[("fname", object), ("class", object)])})
    return root


def flickr30k(root: Path, n_images: int = 4, per_image: int = 5) -> Path:
    """CLIP_benchmark's Flickr30k: <id>.jpg beside flickr30k_test_karpathy.txt ('image,caption' lines after a header,
    five per image; captions may hold commas)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["image,caption"]
    for i in range(n_images):
        name = f"{1000092795 + i}.jpg"
        _jpeg(root / name, rng, size=40)
        lines += [f"{name},A person number {i}, seen from angle {k}, walks a dog ." for k in range(per_image)]
    (root / "flickr30k_test_karpathy.txt").write_text("\n".join(lines) + "\n")
    return root


def coco(root: Path) -> dict[int, str]:
    """COCO val2017 as cocodataset.org's zips unpack: annotations/instances_val2017.json and val2017/<id:012d>.jpg.

    Five images of different sizes; image 4 has a crowd annotation larger than its largest non-crowd one, image 5
    has only a crowd annotation and image 6 none (neither is ever drawn). Returns image id -> expected main object
    (the category of the largest non-crowd annotation).
    """
    rng = np.random.default_rng(12)
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 3, "name": "car", "supercategory": "vehicle"},
                  {"id": 18, "name": "dog", "supercategory": "animal"},
                  {"id": 67, "name": "dining table", "supercategory": "furniture"}]
    sizes = {1: (40, 30), 2: (32, 48), 3: (36, 36), 4: (50, 28), 5: (30, 30), 6: (28, 44)}
    # (image id, category id, area, iscrowd)
    boxes = [(1, 18, 300.0, 0), (1, 1, 120.0, 0), (2, 1, 500.0, 0), (2, 3, 80.0, 0), (3, 67, 900.0, 0),
             (4, 1, 2000.0, 1), (4, 3, 400.0, 0), (4, 18, 10.0, 0), (5, 18, 700.0, 1)]
    images = []
    for image_id, (w, h) in sizes.items():
        name = f"{image_id:012d}.jpg"
        _jpeg_wh(root / "val2017" / name, rng, w, h)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
    annotations = [{"id": 100 + k, "image_id": i, "category_id": c, "area": a, "iscrowd": crowd,
                    "bbox": [0.0, 0.0, 5.0, 5.0], "segmentation": [[0, 0, 5, 0, 5, 5]]}
                   for k, (i, c, a, crowd) in enumerate(boxes)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return {1: "dog", 2: "person", 3: "dining table", 4: "car"}


def _jpeg_wh(path: Path, rng: np.random.Generator, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)
