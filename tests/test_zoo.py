"""The released zoo: manifest <-> files, stale or corrupt weights refused, and training reproducing its prefix."""
import dataclasses
import json
import shutil

import pytest
import torch

from radapt_lib import models, training, zoo


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    """A writable copy of the released zoo, so tests may break it."""
    target = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_dir(), target)
    monkeypatch.setenv("RADAPT_ZOO", str(target))
    return target


def test_manifest_matches_the_released_files():
    manifest = zoo.read_manifest()["models"]
    assert list(manifest) == list(zoo.ORDER)
    clip_sha = manifest["mini-clip"]["sha256"]
    for name, record in manifest.items():
        path = zoo.zoo_dir() / record["file"]
        assert zoo.file_sha256(path) == record["sha256"], name
        assert record["spec_hash"] == zoo.spec_hash(name), name
        state = zoo.load_state(name)
        assert sum(t.numel() for t in state.values() if t.is_floating_point()) == record["parameters"], name
        assert record["parent_sha256"] == (None if name == "mini-clip" else clip_sha), name
        assert record["final"] or name != "mini-clip"
    tower_keys = set(training.build_mini_clip(training.MiniClipConfig()).visual.state_dict())
    assert set(zoo.load_state("mini-fare")) == tower_keys  # fine-tunes release the vision tower only


def test_a_changed_training_default_refuses_to_load(monkeypatch):
    changed = dataclasses.replace(training.MINI_FINETUNES["mini-fare"], lr=1e-3)
    monkeypatch.setitem(training.MINI_FINETUNES, "mini-fare", changed)
    with pytest.raises(zoo.ZooError, match="a training default changed.*scripts/train_zoo.sh"):
        models.load_model("mini-fare")
    models.load_model("mini-tecoa")  # the others are untouched


def test_a_changed_pretraining_default_invalidates_every_model(monkeypatch):
    original = training.MiniClipConfig
    monkeypatch.setattr(training, "MiniClipConfig", lambda: original(steps=original().steps + 1))
    for name in ("mini-clip", "mini-tga"):
        with pytest.raises(zoo.ZooError, match="scripts/train_zoo.sh"):
            zoo.entry(name)


def test_a_corrupt_weight_file_is_a_clear_error(zoo_copy):
    path = zoo_copy / "mini-fare.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(zoo.ZooError, match="corrupt or was edited.*git checkout -- zoo/"):
        zoo.load_state("mini-fare")


def test_missing_weights_or_manifest_name_the_fix(zoo_copy):
    (zoo_copy / "mini-tga.safetensors").unlink()
    with pytest.raises(zoo.ZooError, match="mini-tga.safetensors is missing"):
        zoo.build("mini-tga")
    (zoo_copy / "manifest.json").write_text("{not json")
    with pytest.raises(zoo.ZooError, match="not valid JSON"):
        zoo.entry("mini-clip")
    (zoo_copy / "manifest.json").unlink()
    with pytest.raises(zoo.ZooError, match="no zoo manifest.*scripts/train_zoo.sh"):
        zoo.entry("mini-clip")


def test_a_fine_tune_of_another_mini_clip_is_refused(zoo_copy):
    manifest = json.loads((zoo_copy / "manifest.json").read_text())
    manifest["models"]["mini-tecoa"]["parent_sha256"] = "0" * 64
    (zoo_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(zoo.ZooError, match="another mini-clip"):
        zoo.load_state("mini-tecoa")


@pytest.mark.parametrize("name", sorted(zoo.PREFIX_STEPS))
def test_training_reproduces_the_released_prefix(name):
    """CI's reproducibility check: the first steps of training match what the release recorded."""
    recorded = zoo.entry(name)["prefix"]
    new = zoo.prefix_record(name, recorded["steps"])
    assert zoo.compare_prefix(recorded, new) in ("bit-identical", "within float tolerance")


def test_the_prefix_check_fails_when_training_changes(monkeypatch):
    cosine = training._cosine_lr
    monkeypatch.setattr(training, "_cosine_lr", lambda *a: 1.05 * cosine(*a))  # an edit to the schedule's code
    recorded = zoo.entry("mini-fare")["prefix"]
    with pytest.raises(zoo.ZooError, match="training changed"):
        zoo.compare_prefix(recorded, zoo.prefix_record("mini-fare", recorded["steps"]))


def test_compare_prefix_tolerates_float_noise_only():
    recorded = {"steps": 2, "losses": [1.0, 0.5], "sha256": "a"}
    assert zoo.compare_prefix(recorded, {**recorded}) == "bit-identical"
    assert zoo.compare_prefix(recorded, {"steps": 2, "losses": [1.0 + 1e-7, 0.5], "sha256": "b"}) == "within float tolerance"
    with pytest.raises(zoo.ZooError):
        zoo.compare_prefix(recorded, {"steps": 2, "losses": [1.0, 0.501], "sha256": "b"})


def test_stop_after_is_checked():
    with pytest.raises(ValueError, match="stop_after=0"):
        training._n_steps(10, 0)
    assert training._n_steps(10, None) == 10 and training._n_steps(10, 3) == 3


def test_state_sha256_sees_one_bit():
    state = {"w": torch.zeros(3)}
    flipped = {"w": torch.tensor([0.0, -0.0, 0.0])}
    assert zoo.state_sha256(state) != zoo.state_sha256(flipped)
