"""The paper profile's datasets, read through torchvision from folders in its real layouts (tests/local_data.py)."""
from __future__ import annotations

import pytest
import torch

from local_data import (caltech101, caltech256, country211, dtd, eurosat, fgvc_aircraft, food101, imagenet, oxford_pets,
                        pcam, stanford_cars, sun397)
from radapt_lib import classnames, data


@pytest.fixture
def paper_data(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAPT_DATA", str(tmp_path))
    return tmp_path / "paper"


def test_imagenet_val_and_train_read_through_torchvision(paper_data):
    imagenet(paper_data / "ImageNet", splits=("val", "train"))
    val = data.paper_imageset("ImageNet", n=3, seed=0)
    assert val.images.shape == (3, 3, 224, 224) and val.images.dtype == torch.uint8
    assert len(val.classnames) == 1000 and val.classnames[0] == "tench" and val.source.endswith(":test")
    train = data.paper_imageset("ImageNet", n=3, seed=0, split="train")
    assert train.source.endswith(":train") and not torch.equal(train.images, val.images)


def test_imagenet_with_a_few_classes_is_refused(paper_data):
    # open_clip's names are indexed by position among the 1000 wnids: a partial copy would mislabel every class.
    imagenet(paper_data / "ImageNet", classes=3)
    with pytest.raises(data.DataNotFoundError, match="3 class folders, not 1000"):
        data.paper_imageset("ImageNet", n=2)


def test_a_one_pool_dataset_splits_into_disjoint_halves(paper_data):
    eurosat(paper_data / "EuroSAT")
    test = data.paper_imageset("EuroSAT", n=None, image_size=32)
    train = data.paper_imageset("EuroSAT", n=None, image_size=32, split="train")
    assert len(test) == len(train) == 6 and test.classnames == ("AnnualCrop", "Forest", "River")
    spec = data.PAPER_DATASETS["EuroSAT"]
    a, b = data.paper_indices(spec, 12, None, 0, "test"), data.paper_indices(spec, 12, None, 3, "train")
    assert set(a.tolist()).isdisjoint(b.tolist()) and len(set(a.tolist()) | set(b.tolist())) == 12


@pytest.mark.parametrize("name, expected", [("ImageNet", "ILSVRC2012_devkit_t12.tar.gz"), ("EuroSAT", "EuroSAT downloads"),
                                            ("StanfordCars", "cars_test_annos_withlabels.mat")])
def test_a_missing_dataset_names_its_folder_and_what_to_put_there(paper_data, name, expected):
    with pytest.raises(data.DataNotFoundError) as err:
        data.paper_dataset(name, download=False)
    assert str(paper_data / name) in str(err.value) and expected in str(err.value)


def test_caltech256_class_names_lose_their_folder_numbers(paper_data):
    # the folders are "001.ak47", ...: a prompt "a photo of a 001.ak47." is not what CLIP was evaluated with
    caltech256(paper_data / "Caltech256")
    images = data.paper_imageset("Caltech256", n=None, image_size=32)
    assert images.classnames == ("ak47", "american flag", "backpack") and len(images) == 4  # the test half of 9


def test_dtd_reads_its_test_and_train_split_files(paper_data):
    dtd(paper_data / "DTD")
    test, train = data.paper_imageset("DTD", n=None, image_size=32), data.paper_imageset("DTD", n=None, image_size=32, split="train")
    assert len(test) == len(train) == 6 and test.classnames == ("banded", "blotchy", "braided")
    assert not torch.equal(test.images, train.images)


# name, builder, folder under paper/, class names the prompts will read, images in (test, train)
LAYOUTS = [
    ("Caltech101", caltech101, ("centered face", "accordion", "airplane"), (6, 6)),  # one pool of 12 halved
    ("OxfordPets", oxford_pets, ("Abyssinian", "American Bulldog", "Bengal"), (6, 6)),
    ("Food101", food101, ("apple pie", "baby back ribs", "baklava"), (6, 6)),
    ("SUN397", sun397, ("abbey", "apartment building outdoor", "bakery shop"), (6, 6)),
    ("Country211", country211, ("Andorra", "South Korea", "Kosovo"), (6, 6)),
    ("FGVCA", fgvc_aircraft, ("707-320", "A300B4", "Cessna 172"), (6, 6)),
    ("PCAM", pcam, ("lymph node", "lymph node containing metastatic tumor tissue"), (6, 6)),
    ("StanfordCars", stanford_cars, ("AM General Hummer SUV 2000", "Acura RL Sedan 2012"), (4, 4)),
]


@pytest.mark.parametrize("name, build, classnames, sizes", LAYOUTS, ids=[row[0] for row in LAYOUTS])
def test_each_loader_reads_its_real_layout_with_prompt_ready_class_names(paper_data, name, build, classnames, sizes):
    build(paper_data / name)
    test = data.paper_imageset(name, n=None, image_size=32)
    train = data.paper_imageset(name, n=None, image_size=32, split="train")
    assert (len(test), len(train)) == sizes and test.classnames == classnames
    assert test.images.shape[1:] == (3, 32, 32) and test.images.dtype == torch.uint8
    assert int(test.labels.max()) < len(classnames) and not torch.equal(test.images, train.images)


def test_an_unknown_country_code_names_the_table_to_extend():
    assert classnames.country_name("KR") == "South Korea" and classnames.country_name("XK") == "Kosovo"
    with pytest.raises(ValueError, match="COUNTRY_NAMES_NOT_IN_ISO"):
        classnames.country_name("QQ")
