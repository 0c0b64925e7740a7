"""The class names that zero-shot prompts read, for the paper profile's torchvision datasets.

torchvision names classes after folders or codes ("001.ak47", "Faces_easy", "AD"); CLIP's prompts need words.
Where CLIP published a curated list (ImageNet through open_clip, Caltech101's irregular folders, PCAM) we use
it; elsewhere a mechanical clean-up. FGVCAircraft's variant names ("707-320") are already CLIP's.
"""
from __future__ import annotations

PCAM_CLASSNAMES = ("lymph node", "lymph node containing metastatic tumor tissue")  # CLIP's; label 1: metastatic tissue
COUNTRY_NAMES_NOT_IN_ISO = {"XK": "Kosovo"}  # a user-assigned code that Country211 uses
# Caltech101 folders whose name is not CLIP's class name with "_" read as " " (CLIP's curated Caltech101 list).
CALTECH101_NAMES = {
    "Faces": "off-center face", "Faces_easy": "centered face", "Leopards": "leopard", "Motorbikes": "motorbike",
    "airplanes": "airplane", "car_side": "side of a car", "cougar_body": "body of a cougar cat",
    "cougar_face": "face of a cougar cat", "crocodile_head": "head of a crocodile", "flamingo_head": "head of a flamingo",
    "snoopy": "snoopy (cartoon beagle)", "yin_yang": "yin and yang symbol",
}


def paper_classnames(dataset) -> list[str]:
    """Readable class names of a torchvision dataset (ImageNet uses open_clip's curated list)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from .data import DataNotFoundError

    kind = type(dataset).__name__
    if kind == "ImageNet":
        if len(dataset.wnids) != len(IMAGENET_CLASSNAMES):
            raise DataNotFoundError(f"ImageNet at {dataset.root} has {len(dataset.wnids)} class folders, not "
                                    f"{len(IMAGENET_CLASSNAMES)}: labels index open_clip's class names by wnid order")
        return list(IMAGENET_CLASSNAMES)
    if kind == "PCAM":  # torchvision gives no names
        return list(PCAM_CLASSNAMES)
    names = getattr(dataset, "classes", None) or getattr(dataset, "categories", None)
    if names is None:
        raise ValueError(f"{kind} exposes no class names; supply them explicitly")
    names = [str(n) for n in names]
    if kind == "Caltech101":
        names = [CALTECH101_NAMES.get(n, n) for n in names]
    if kind == "Caltech256":  # folders are "001.ak47", "002.american-flag", ...
        names = [n.split(".", 1)[-1].replace("-", " ") for n in names]
    if kind == "Country211":  # folders are ISO 3166 alpha-2 codes: "AD", "AE", ...
        names = [country_name(n) for n in names]
    if kind == "SUN397":  # "apartment_building/outdoor"
        names = [n.replace("/", " ") for n in names]
    return [n.replace("_", " ") for n in names]


def country_name(code: str) -> str:
    """A country's common English name from its ISO 3166 alpha-2 code (pycountry), e.g. "KR" -> "South Korea"."""
    import pycountry

    if code in COUNTRY_NAMES_NOT_IN_ISO:
        return COUNTRY_NAMES_NOT_IN_ISO[code]
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        raise ValueError(f"Country211 class folder {code!r} is not an ISO 3166 alpha-2 code: add its name to "
                         "classnames.COUNTRY_NAMES_NOT_IN_ISO")
    return getattr(country, "common_name", None) or country.name
