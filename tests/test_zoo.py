"""The released zoo: manifest <-> files, stale or corrupt weights refused, and training reproducing its prefix."""
import dataclasses
import json
import shutil

import pytest
import torch

from radapt_lib import anchor_zoo, models, training, zoo


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
    for name, record in manifest.items():
        path = zoo.zoo_dir() / record["file"]
        assert zoo.file_sha256(path) == record["sha256"], name
        assert record["spec_hash"] == zoo.spec_hash(name), name
        state = zoo.load_state(name)
        assert sum(t.numel() for t in state.values() if t.is_floating_point()) == record["parameters"], name
        parent = zoo.parent(name)
        assert record["parent_sha256"] == (None if parent is None else manifest[parent]["sha256"]), name
        assert record["final"] or not zoo.is_clip(name)
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
    lr_factor = 1.01  # a 1 % change of the schedule: smaller than any edit a default would make
    cosine = training.cosine_lr
    monkeypatch.setattr(training, "cosine_lr", lambda *a: lr_factor * cosine(*a))  # an edit to the schedule's code
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
        training.n_steps(10, 0)
    assert training.n_steps(10, None) == 10 and training.n_steps(10, 3) == 3


def test_state_sha256_sees_one_bit():
    state = {"w": torch.zeros(3)}
    flipped = {"w": torch.tensor([0.0, -0.0, 0.0])}
    assert zoo.state_sha256(state) != zoo.state_sha256(flipped)


# --- released R-Adapt+ anchors ---------------------------------------------------------------------

def _default_anchor():
    from radapt_lib.rtables import PLUS_DEFAULT

    return anchor_zoo.mini_origin(), PLUS_DEFAULT["mini"]


def test_released_anchors_match_their_file_and_the_current_code(monkeypatch):
    manifest = zoo.read_manifest()
    assert zoo.file_sha256(zoo.zoo_dir() / anchor_zoo.ANCHOR_FILE) == manifest["anchor_file"]["sha256"]
    from safetensors.torch import load_file

    tensors = load_file(str(zoo.zoo_dir() / anchor_zoo.ANCHOR_FILE))
    assert set(tensors) == set(manifest["anchors"])
    for key, record in manifest["anchors"].items():
        assert zoo.state_sha256({"anchor": tensors[key]}) == record["sha256"], key
    # the pages' default anchor is released for today's code, model and images: loading it trains nothing
    monkeypatch.setenv("RADAPT_NO_TRAINING", "1")
    origin, cfg = _default_anchor()
    run = anchor_zoo.load_or_train(origin, cfg, progress=False)
    assert torch.equal(run.anchor, tensors[next(k for k, r in manifest["anchors"].items()
                                                if r["identity"] == anchor_zoo.identity(origin, cfg))])


def test_a_released_anchor_loads_no_model(monkeypatch):
    """A release hit needs only the training images for its key: no frozen model is loaded or fingerprinted."""
    def refuse(*args, **kwargs):
        raise AssertionError("load_or_train loaded a model for a released anchor")

    monkeypatch.setattr(anchor_zoo.models, "load_model", refuse)
    monkeypatch.setattr(anchor_zoo.models, "classifier", refuse)
    monkeypatch.setenv("RADAPT_NO_TRAINING", "1")
    run = anchor_zoo.load_or_train(*_default_anchor(), progress=False)
    assert run.anchor.ndim >= 1


def test_a_stale_or_unreleased_anchor_is_refused(zoo_copy, monkeypatch):
    origin, cfg = _default_anchor()
    manifest = json.loads((zoo_copy / "manifest.json").read_text())
    key = next(k for k, r in manifest["anchors"].items() if r["identity"] == anchor_zoo.identity(origin, cfg))
    manifest["anchors"]["0" * 16] = manifest["anchors"].pop(key)  # as if code or weights had changed the key
    (zoo_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(zoo.ZooError, match="re-release the anchors with `scripts/train_zoo.sh --anchors`"):
        anchor_zoo.load_or_train(origin, cfg, progress=False)
    monkeypatch.setenv("RADAPT_NO_TRAINING", "1")
    with pytest.raises(zoo.ZooError, match="not released and RADAPT_NO_TRAINING=1"):
        anchor_zoo.load_or_train(origin, dataclasses.replace(cfg, lr=0.123), progress=False)


def test_a_corrupt_anchor_file_is_a_clear_error(zoo_copy):
    path = zoo_copy / anchor_zoo.ANCHOR_FILE
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    anchor_zoo._released_tensors.cache_clear()
    with pytest.raises(zoo.ZooError, match="corrupt or was edited"):
        anchor_zoo.load_or_train(*_default_anchor(), progress=False)
    anchor_zoo._released_tensors.cache_clear()


def test_seed_replicas_differ_only_in_their_seed():
    for name in training.SEEDED:
        for s in training.EXTRA_SEEDS:
            replica = models.seeded_name(name, s)
            assert replica == f"{name}-s{s}" and replica in zoo.ORDER
            spec, base = zoo.training_spec(replica)["finetune"], zoo.training_spec(name)["finetune"]
            assert {k for k in spec if spec[k] != base[k]} == {"seed"}
    assert models.seeded_name("mini-clip", 1) == "mini-clip"  # one pre-training run
    assert models.seeded_name("mini-fare", 0) == "mini-fare"
    with pytest.raises(ValueError, match="no seed-7 replicas"):
        models.seeded_name("mini-fare", 7)
    a, b = zoo.load_state("mini-fare"), zoo.load_state("mini-fare-s1")
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])


# --- the trend's intermediate CLIPs: released without the token rows no prompt uses ------------------------

def test_a_pruned_token_embedding_gives_the_same_zero_shot_heads():
    """The pruned release format loses nothing a page reads: every mini dataset's head is bit-identical."""
    from radapt_lib import data
    from radapt_lib.zeroshot import text_head

    full = zoo.build("mini-clip")
    pruned = training.build_mini_clip(training.MiniClipConfig())
    state, rows = zoo.unprune_tokens(zoo.prune_tokens(zoo.load_state("mini-clip"), zoo.kept_token_ids("mini-clip-120")))
    assert len(rows) < 100 and not torch.equal(state[zoo.EMBEDDING_KEY], full.state_dict()[zoo.EMBEDDING_KEY])
    pruned.load_state_dict(state)
    zoo.guard_tokens(pruned.eval(), rows, "pruned mini-clip")
    tokenizer = training.mini_tokenizer(training.MiniClipConfig())
    for name, spec in data.MINI_DATASETS.items():
        a = text_head(full, tokenizer, spec.classes, data.CIFAR_TEMPLATES)
        b = text_head(pruned, tokenizer, spec.classes, data.CIFAR_TEMPLATES)
        assert torch.equal(a, b), name
    with pytest.raises(zoo.ZooError, match="token embeddings of the mini datasets' prompts only.*train_zoo.sh"):
        text_head(pruned, tokenizer, ["zeppelin"], data.CIFAR_TEMPLATES)


def test_the_trend_models_are_released_pruned_and_chained():
    manifest = zoo.read_manifest()["models"]
    for name in training.PRETRAIN_PREFIXES:
        assert manifest[name]["steps"] == training.PRETRAIN_PREFIXES[name] and "token embedding cut" in manifest[name]["tensors"]
        assert (zoo.zoo_dir() / manifest[name]["file"]).stat().st_size < 10 * 2**20  # not the whole 35 MB CLIP
    for name, parent in training.FINETUNE_PARENTS.items():
        assert zoo.training_spec(name)["parent"] == zoo.spec_hash(parent)
        assert manifest[name]["parent_sha256"] == manifest[parent]["sha256"]
    clip = zoo.build("mini-fare-p120")
    assert torch.equal(clip.token_embedding.weight, zoo.build("mini-clip-120").token_embedding.weight)
    assert manifest["mini-tecoa-1000"]["steps"] == manifest["mini-tga-1000"]["steps"] == 1000
    for name, parent in training.CLIP_PARENTS.items():  # the retrieval page's CLIP: fine-tuned from mini-clip
        assert zoo.training_spec(name)["parent"] == zoo.spec_hash(parent)
        assert manifest[name]["parent_sha256"] == manifest[parent]["sha256"] and "mosaic captions" in manifest[name]["tensors"]


def test_the_second_architecture_is_pretrained_like_mini_clip_and_differs_from_it():
    record = zoo.read_manifest()["models"]["mini-clip-p8"]
    cfg = training.clip_config("mini-clip-p8")
    assert dataclasses.replace(cfg, patch_size=4, width=128, layers=8, head_width=32) == training.MiniClipConfig()
    assert zoo.parent("mini-clip-p8") is None and "token embedding cut" in record["tensors"]
    clip = zoo.build("mini-clip-p8")
    assert tuple(clip.visual.grid_size) == (4, 4) and len(clip.visual.transformer.resblocks) == 6
    assert clip.visual.class_embedding.shape == (192,)
    assert record["final"]["zero_shot_top1_cifar10_test"] > 40  # far above chance (10 %): not a collapsed model
    assert models.load_model("mini-clip-p8").clip.visual.grid_size == clip.visual.grid_size
