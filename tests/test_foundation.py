"""Unit tests of the foundation modules, on tiny configurations with real computations."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from radapt_lib import attacks, cache, config, data, evaluation, models, stats, training, zeroshot


# --- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [-0.01, 1.01, 4.0])
def test_eps_outside_unit_interval_is_refused(eps):
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*4/255"):
        config.check_eps(eps)


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="mini"):
        config.check_profile("huge")


# --- cache ----------------------------------------------------------------------------------
def test_cache_computes_once_and_reuses(tmp_cache):
    calls = []
    spec = {"what": "square", "x": 3}
    first = cache.cached("unit", spec, lambda: calls.append(1) or torch.tensor(9))
    second = cache.cached("unit", spec, lambda: calls.append(1) or torch.tensor(-1))
    assert calls == [1] and int(first) == int(second) == 9


def test_truncated_cache_file_is_detected_and_recomputed(tmp_cache, capsys):
    spec = {"what": "big"}
    cache.cached("unit", spec, lambda: torch.arange(10_000))
    path = cache.path_for("unit", spec)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(cache.CorruptCacheError, match="delete it to recompute"):
        cache.load_checked(path)
    value = cache.cached("unit", spec, lambda: torch.arange(5))
    assert value.tolist() == list(range(5)) and "corrupt" in capsys.readouterr().out
    assert cache.load_checked(path)["value"].tolist() == list(range(5))


def test_failed_compute_leaves_nothing_behind(tmp_cache):
    def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cache.cached("unit", {"x": 1}, boom)
    assert not list(tmp_cache.rglob("*.pt")) and not list(tmp_cache.rglob("*.tmp"))


def test_cache_key_depends_on_every_field():
    assert cache.key_of({"a": 1, "b": 2}) == cache.key_of({"b": 2, "a": 1})
    assert cache.key_of({"a": 1}) != cache.key_of({"a": 2})


# --- data -----------------------------------------------------------------------------------
def test_cifar10_test_split_from_shared_folder():
    ds = data.load_cifar10("test")
    assert ds.images.shape == (10000, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.bincount().tolist() == [1000] * 10 and ds.source == "jpeg-folder"


def test_missing_data_offline_names_the_three_ways(tmp_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("RADAPT_DATA", str(tmp_path / "nothing-here"))

    def offline(root, split):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_read_torchvision", offline)
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_cifar10("test")
    message = str(err.value)
    assert "RADAPT_DATA" in message and "data_cache" in message.replace(str(tmp_cache), "data_cache") and "download" in message


def test_subsets_are_seeded_shuffles_not_prefixes():
    a = data.mini_dataset("cifar10", n=200, seed=0)
    b = data.mini_dataset("cifar10", n=200, seed=0)
    c = data.mini_dataset("cifar10", n=200, seed=1)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert len(a.labels.unique()) == 10  # a prefix of the class-sorted folders would hold one class


def test_class_subsets_relabel_into_their_own_classes():
    vehicles = data.mini_dataset("vehicles", n=300)
    assert vehicles.classnames == data.VEHICLES and set(vehicles.labels.tolist()) == {0, 1, 2, 3}
    train = data.mini_dataset("animals", "train")
    assert len(train) == 30000 and train.classnames == data.ANIMALS


def test_shifts_do_what_they_say():
    x = data.mini_dataset("cifar10", n=16).floats()
    gray = data.SHIFTS["gray"](x)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    high = lambda z: (z[..., 1:] - z[..., :-1]).abs().mean()  # noqa: E731
    assert high(data.SHIFTS["blur"](x)) < 0.7 * high(x)
    assert data.mini_dataset("cifar10-noise", n=16).images.float().sub(data.mini_dataset("cifar10", n=16).images.float()).abs().mean() > 3


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown mini dataset 'imagenet'.*animals"):
        data.mini_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown paper dataset"):
        data.check_dataset("cifar-11", "paper")


def test_paper_registry_names_the_sixteen_table1_datasets():
    from radapt_lib import reference

    assert list(data.PAPER_DATASETS) == list(reference.TABLE1_DATASETS)
    import torchvision.datasets as tvd

    for spec in data.PAPER_DATASETS.values():
        assert hasattr(tvd, spec.torchvision_class), spec


# --- models ---------------------------------------------------------------------------------
def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'gpt-4v'.*mini-clip"):
        models.load_model("gpt-4v")


@pytest.mark.parametrize("name,expected", [
    ("clip-vit-b-32", ("ViT-B-32-quickgelu", {"pretrained": "openai"})),
    ("clip-vit-l-14", ("ViT-L-14-quickgelu", {"pretrained": "openai"})),
    ("fare4-vit-l-14", ("hf-hub:chs20/fare4-clip", {})),
    ("fare2-vit-l-14", ("hf-hub:chs20/fare2-clip", {})),
    ("tecoa4-vit-l-14", ("hf-hub:chs20/tecoa4-clip", {})),
    ("tecoa2-vit-l-14", ("hf-hub:chs20/tecoa2-clip", {})),
])
def test_paper_names_resolve_to_the_right_open_clip_call(name, expected):
    assert models.open_clip_call(name) == expected
    arch, kwargs = models.open_clip_call(name, pretrained=False)
    assert arch == models.PAPER_MODELS[name].arch and kwargs == {"pretrained": None}


def test_tga_without_checkpoint_says_how_to_provide_it(monkeypatch):
    monkeypatch.delenv("RADAPT_TGA_CHECKPOINT", raising=False)
    with pytest.raises(FileNotFoundError, match="RADAPT_TGA_CHECKPOINT"):
        models.open_clip_call("tga4-vit-l-14")


@pytest.mark.parametrize("name", ["clip-vit-b-32", "clip-vit-l-14"])
def test_real_architectures_classify_at_224px_offline(name):
    loaded = models.load_model(name, pretrained=False, device=torch.device("cpu"))
    clf = models.classifier(loaded, ["cat", "dog", "ship"], templates=["a photo of a {}."])
    assert clf.image_size == 224
    logits = clf(torch.rand(1, 3, 224, 224))
    assert logits.shape == (1, 3) and logits.abs().max() <= 100.0 + 1e-3


# --- zero-shot ------------------------------------------------------------------------------
def test_zero_shot_logits_are_100_times_cosine(tiny_clip):
    cfg, clip = tiny_clip
    tok = training.mini_tokenizer(cfg)
    head = zeroshot.text_head(clip, tok, data.VEHICLES, data.CIFAR_TEMPLATES[:3])
    assert torch.allclose(head.norm(dim=0), torch.ones(4), atol=1e-5)
    clf = zeroshot.ZeroShotClassifier(clip.visual, head, training.CIFAR_MEAN, training.CIFAR_STD, data.VEHICLES)
    x = torch.rand(5, 3, 32, 32)
    emb = F.normalize(clip.visual((x - clf.mean) / clf.std), dim=-1)
    assert torch.allclose(clf(x), 100 * emb @ head, atol=1e-4)
    assert zeroshot.top_class_share([1, 1, 1, 2]) == 75.0


# --- attacks --------------------------------------------------------------------------------
@pytest.fixture
def tiny_classifier(tiny_clip):
    cfg, clip = tiny_clip
    head = zeroshot.text_head(clip, training.mini_tokenizer(cfg), data.CIFAR10_CLASSES, data.CIFAR_TEMPLATES[:2])
    clf = zeroshot.ZeroShotClassifier(clip.visual, head, training.CIFAR_MEAN, training.CIFAR_STD, data.CIFAR10_CLASSES)
    return clf.eval()


@pytest.mark.parametrize("name", ["pgd", "cw", "apgd-ce", "square"])
def test_attacks_stay_in_the_eps_ball_and_raise_the_loss(tiny_classifier, name):
    ds = data.mini_dataset("cifar10", n=8)
    x, y = ds.floats(), ds.labels
    eps = 8 / 255
    result = attacks.attack(tiny_classifier, x, y, name, eps, n_iter=5, n_queries=20)
    attacks.check_perturbation(x, result.x_adv, eps)
    with torch.no_grad():
        clean = F.cross_entropy(tiny_classifier(x), y)
        adv = F.cross_entropy(tiny_classifier(result.x_adv), y)
    assert adv >= clean - 1e-4


def test_out_of_ball_perturbation_is_caught():
    x = torch.full((1, 3, 4, 4), 0.5)
    with pytest.raises(attacks.PerturbationError, match="exceeds eps"):
        attacks.check_perturbation(x, x + 0.1, 0.05)
    with pytest.raises(attacks.PerturbationError, match=r"leave \[0, 1\]"):
        attacks.check_perturbation(torch.ones(1, 3, 2, 2), torch.ones(1, 3, 2, 2) + 0.01, 0.05)


def test_bad_attack_inputs_are_refused(tiny_classifier):
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="unknown attack 'fgsm'"):
        attacks.attack(tiny_classifier, x, y, "fgsm", 0.01)
    with pytest.raises(ValueError, match="outside"):
        attacks.attack(tiny_classifier, x, y, "pgd", 2.0)


# --- evaluation -----------------------------------------------------------------------------
def test_evaluation_is_cached_by_content(tmp_cache, tiny_classifier):
    ds = data.mini_dataset("cifar10", n=10)
    first = evaluation.evaluate(tiny_classifier, ds, "pgd", 2 / 255, n_iter=2, batch_size=5)
    second = evaluation.evaluate(tiny_classifier, ds, "pgd", 2 / 255, n_iter=2, batch_size=5)
    assert first.seconds == second.seconds and len(list((tmp_cache / "evaluations").glob("*.pt"))) == 1
    with torch.no_grad():  # the clean predictions are the model's own, image by image, in order (same batches)
        own = torch.cat([tiny_classifier(ds.floats()[lo:lo + 5]).argmax(1) for lo in (0, 5)])
    assert first.clean_pred.tolist() == own.tolist()
    assert first.labels.tolist() == ds.labels.tolist() and second.adv_pred.tolist() == first.adv_pred.tolist()
    before = evaluation.fingerprint(tiny_classifier)
    changed = __import__("copy").deepcopy(tiny_classifier)
    with torch.no_grad():
        changed.head.mul_(-1)
    assert evaluation.fingerprint(changed) != before


def test_only_clean_correct_images_are_attacked(tmp_cache, tiny_classifier):
    ds = data.mini_dataset("cifar10", n=30)
    res = evaluation.evaluate(tiny_classifier, ds, "pgd", 8 / 255, n_iter=3, keep_adv=True)
    wrong = torch.from_numpy(res.clean_pred != res.labels)
    assert 0 < int(wrong.sum()) < len(ds)  # both kinds present, or the test proves nothing
    assert torch.equal(res.x_adv[wrong], ds.floats()[wrong])  # misclassified clean: left as they are (AutoAttack's rule)
    assert not torch.equal(res.x_adv[~wrong], ds.floats()[~wrong])
    assert (res.adv_pred[wrong.numpy()] == res.clean_pred[wrong.numpy()]).all()
    assert res.robust().mean == 100.0 * float(res.correct("robust").mean())


# --- stats ----------------------------------------------------------------------------------
def test_bootstrap_interval_brackets_the_mean_and_narrows_with_n():
    small = stats.accuracy([1, 0] * 10)
    large = stats.accuracy([1, 0] * 500)
    assert small.low < 50 < small.high and large.low < 50 < large.high
    assert (large.high - large.low) < (small.high - small.low) / 3


# --- training -------------------------------------------------------------------------------
def test_tiny_pretraining_is_bit_reproducible(tiny_clip):
    cfg, _ = tiny_clip
    cfg = training.MiniClipConfig(**{**cfg.__dict__, "steps": 3, "eval_every": 3})
    a, log_a = training.train_mini_clip(cfg)
    b, log_b = training.train_mini_clip(cfg)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert log_a.checkpoints[-1]["step"] == 3
    assert log_a.final["zero_shot_top1_cifar10_test"] == log_b.final["zero_shot_top1_cifar10_test"]


@pytest.mark.parametrize("method", ["fare", "tecoa", "tga", "clean"])
def test_tiny_finetunes_change_only_the_vision_tower(tiny_clip, method):
    cfg, clip = tiny_clip
    ft = training.FinetuneConfig(method, steps=2, batch_size=8, eval_every=2, eval_n=20, warmup=1)
    state, log = training.finetune(clip.state_dict(), cfg, ft, f"tiny-{method}")
    assert set(state) == set(clip.visual.state_dict())
    assert any(not torch.equal(state[k], clip.visual.state_dict()[k]) for k in state)
    assert torch.isfinite(torch.tensor(log.checkpoints[-1]["loss"]))


def test_the_clean_control_never_attacks(tiny_clip, monkeypatch):
    cfg, clip = tiny_clip

    def no_attack(*args, **kwargs):
        raise AssertionError("the clean fine-tune must not run the inner attack")

    monkeypatch.setattr(training.attacks, "pgd_maximize", no_attack)
    ft = training.FinetuneConfig("clean", eps=0.0, pgd_steps=0, steps=2, batch_size=8, eval_every=2, eval_n=20, warmup=1)
    state, _ = training.finetune(clip.state_dict(), cfg, ft, "tiny-clean")
    assert any(not torch.equal(state[k], clip.visual.state_dict()[k]) for k in state)
    with pytest.raises(AssertionError, match="inner attack"):
        training.finetune(clip.state_dict(), cfg, dataclasses.replace(ft, method="tecoa"), "tiny-tecoa")


def test_unknown_finetune_method_is_refused(tiny_clip):
    cfg, clip = tiny_clip
    with pytest.raises(ValueError, match="unknown fine-tuning method"):
        training.finetune(clip.state_dict(), cfg, training.FinetuneConfig("madry"), "x")
