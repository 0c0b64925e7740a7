"""MAA adapters, corruptions and feature-set distances on a tiny open_clip tower (fast: a few seconds)."""
import copy
import dataclasses
import itertools

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from radapt_lib import corruptions, data, featstats, maa, training
from radapt_lib.training import CIFAR_MEAN, CIFAR_STD
from radapt_lib.zeroshot import Normalize, ZeroShotClassifier

TINY = training.MiniClipConfig(width=32, layers=2, head_width=16, text_width=32, text_heads=2, text_layers=1,
                               embed_dim=32)


def _visual() -> torch.nn.Module:
    torch.manual_seed(0)
    return training.build_mini_clip(TINY).visual.eval()


def _smooth_images(n: int = 8, seed: int = 0) -> torch.Tensor:
    """Random smooth [0, 1] images: upsampled coarse noise, so blur and down-sampling have something to remove."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=gen)
    fine = 0.15 * torch.rand(n, 3, 32, 32, generator=gen)
    return (F.interpolate(coarse, size=32, mode="bilinear", align_corners=False) * 0.85 + fine).clamp(0, 1)


# --- adapters --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(maa.MAA_VARIANTS))
def test_untrained_adapted_tower_is_the_frozen_tower(variant):
    visual = _visual()
    x = Normalize(CIFAR_MEAN, CIFAR_STD)(_smooth_images(4))
    with torch.no_grad():
        expected = visual(x)
        tower = maa.AdaptedTower(visual, maa.MAA_VARIANTS[variant].adapter()).eval()
        got = tower(x)
    assert torch.equal(got, expected)
    assert not any(p.requires_grad for p in tower.visual.parameters())
    clf = ZeroShotClassifier(tower, F.normalize(torch.randn(32, 3), dim=0), CIFAR_MEAN, CIFAR_STD, ("a", "b", "c"))
    assert clf.image_size == 32 and clf(_smooth_images(2)).shape == (2, 3)


def test_one_gate_step_changes_the_output():
    visual = _visual()
    tower = maa.AdaptedTower(visual, maa.MAA_VARIANTS["maa"].adapter())
    x = Normalize(CIFAR_MEAN, CIFAR_STD)(_smooth_images(4))
    with torch.no_grad():
        before = tower(x)
    gates = [a.alpha[p] for a in tower.adapters for p in a.paths]
    opt = torch.optim.SGD(gates, lr=0.1)
    tower(x).pow(2).sum().backward()
    assert all(g.grad is not None and g.grad.abs() > 0 for g in gates)
    opt.step()
    with torch.no_grad():
        after = tower(x)
    assert not torch.equal(after, before)


def test_bad_adapter_configs_raise():
    with pytest.raises(ValueError, match="paths"):
        maa.Adapter(32, (8, 8), maa.AdapterConfig(paths=("conv",)))
    with pytest.raises(ValueError, match="window"):
        maa.Adapter(32, (8, 8), maa.AdapterConfig(window=3))


# --- corruptions -----------------------------------------------------------------------------

def test_corruptions_shapes_range_and_determinism():
    x = _smooth_images(4)
    for name, s in itertools.product(corruptions.CORRUPTIONS, corruptions.SEVERITIES):
        y = corruptions.corrupt(x, name, s, seed=3)
        assert y.shape == x.shape and y.dtype == torch.float32
        assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
        assert torch.equal(y, corruptions.corrupt(x, name, s, seed=3))
        assert corruptions.describe(name, s)
    assert not torch.equal(corruptions.corrupt(x, "noise", 3, seed=0), corruptions.corrupt(x, "noise", 3, seed=1))


def test_existing_shifts_are_rungs_of_the_ladders():
    x = _smooth_images(4)
    assert torch.equal(corruptions.corrupt(x, "noise", 2, seed=1234), data._noise(x, 0.08))
    assert torch.equal(corruptions.corrupt(x, "blur", 3), data._blur(x, 1.0).clamp(0, 1))
    assert torch.equal(corruptions.corrupt(x, "jpeg", 3), data._jpeg(x, 15))
    assert torch.equal(corruptions.corrupt(x, "lowres", 3), data._lowres(x, 12))


@pytest.mark.parametrize("name", ["noise", "blur", "lowres", "lowlight", "jpeg"])
def test_severity_is_monotone(name):
    x = _smooth_images(8)
    change = [float((corruptions.corrupt(x, name, s) - x).abs().mean()) for s in corruptions.SEVERITIES]
    if name == "jpeg":  # quantisation error is not strictly ordered image by image: ends of the ladder only
        assert change[0] < change[-1]
    else:
        assert all(a < b for a, b in zip(change, change[1:])), change


def test_bad_corruption_arguments_raise():
    x = _smooth_images(1)
    with pytest.raises(ValueError, match="noise"):
        corruptions.corrupt(x, "fog", 1)
    for bad in (0, 6, True):
        with pytest.raises(ValueError, match="severity"):
            corruptions.corrupt(x, "blur", bad)
    with pytest.raises(ValueError, match="float"):
        corruptions.corrupt((x * 255).to(torch.uint8), "blur", 1)


def test_random_corruption_batch_is_seeded():
    x = _smooth_images(12)
    a = corruptions.random_corruption_batch(x, torch.Generator().manual_seed(5))
    b = corruptions.random_corruption_batch(x, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2])
    assert a[0].shape == x.shape and len(a[1]) == 12 and set(a[1]) <= set(corruptions.CORRUPTIONS)


# --- feature-set distances -------------------------------------------------------------------

def _unbiased_mmd2_loops(x, y, k):
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_and_kid_match_explicit_double_loops():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(6, 3)) + 0.7
    h = 1.3
    rbf = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * h * h))  # noqa: E731
    poly = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    assert featstats.mmd2_rbf(x, y, bandwidth=h) == pytest.approx(_unbiased_mmd2_loops(x, y, rbf), rel=1e-10)
    assert featstats.kid(torch.tensor(x), torch.tensor(y)) == pytest.approx(_unbiased_mmd2_loops(x, y, poly), rel=1e-10)
    z = np.concatenate([x, y])
    d = [np.linalg.norm(z[i] - z[j]) for i in range(len(z)) for j in range(i + 1, len(z))]
    assert featstats.median_bandwidth(x, y) == pytest.approx(np.median(d), rel=1e-10)
    assert featstats.mmd2_rbf(x, y) > 0.0


def test_same_distribution_gives_near_zero_distances():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    for stat in (featstats.mmd2_rbf, featstats.kid, featstats.energy_distance):
        assert abs(stat(x, y)) < 0.1 * stat(x, y + 0.5), stat.__name__
    # The very same points are not two independent samples: the unbiased estimator drops the diagonal within
    # sets but not across them, so it is 2 A / (n (n - 1)) - 2 (A + D) / n^2 <= 0 (A: off-diagonal sum, D: trace).
    k = (x @ x.T / 8 + 1) ** 3
    n, diag = len(x), np.trace(k)
    off = k.sum() - diag
    assert featstats.kid(x, x) == pytest.approx(2 * off / (n * (n - 1)) - 2 * (off + diag) / n**2, rel=1e-10)
    assert featstats.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_is_scipys_squared_in_1d():
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=30), rng.normal(size=20) + 0.5
    # scipy: sqrt(2) * L2 distance of the CDFs = sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)
    assert featstats.energy_distance(u[:, None], v[:, None]) == pytest.approx(scipy.stats.energy_distance(u, v) ** 2,
                                                                              rel=1e-9)


def test_linear_cka_is_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert featstats.linear_cka(x, 2.5 * x @ q) == pytest.approx(1.0, abs=1e-12)
    c = featstats.linear_cka(x, rng.normal(size=(30, 4)))
    assert 0.0 <= c <= 1.0 and c < 0.9


def test_bootstrap_distances():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(24, 5))
    y = x + 0.3 * rng.normal(size=(24, 5))
    paired = featstats.bootstrap_distances(torch.tensor(x), y, paired=True, n_boot=30)
    assert set(paired) == set(featstats.DISTANCES)
    assert paired["linear_cka"].mean == pytest.approx(featstats.linear_cka(x, y))
    assert all(e.low <= e.high for e in paired.values())
    unpaired = featstats.bootstrap_distances(x, y[:20], paired=False, n_boot=30)
    assert "linear_cka" not in unpaired and unpaired["energy"].n == 44
    assert featstats.bootstrap_distances(x, y, True, n_boot=30) == paired


# --- training --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["mse-only", "maa"])
def test_train_maa_is_deterministic_and_returns_adapters_only(variant):
    images = torch.randint(0, 256, (16, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cfg = maa.variant(variant, steps=3, batch_size=8, warmup=1, eval_every=2)
    visual = _visual()
    runs = [maa.train_maa(visual, cfg, images, CIFAR_MEAN, CIFAR_STD, variant) for _ in range(2)]
    (state, log), (state2, _) = runs
    assert state.keys() == state2.keys() and all(torch.equal(state[k], state2[k]) for k in state)
    assert all(k.split(".")[0].isdigit() for k in state) and not any("net." in k for k in state)
    assert len(log.losses) == 3 and [c["step"] for c in log.checkpoints] == [2, 3]
    assert ("adv" in log.checkpoints[0]) == maa.MAA_VARIANTS[variant].adv
    assert any(p.requires_grad for p in visual.parameters())  # the caller's tower is left as it was
    tower = maa.load_adapted(visual, cfg, state)
    assert maa.adapter_parameters(state) == sum(p.numel() for p in tower.adapters.parameters())
    assert any(float(tower.adapters[0].alpha[p].detach()) != 0.0 for p in tower.adapters[0].paths)


# --- the released adapters (zoo/maa-adapters.safetensors, the manifest's `maa` section) ---------------------------

def test_every_released_variant_loads_and_matches_the_current_spec():
    from radapt_lib import maa_release, zoo

    visual = zoo.build(maa_release.TOWER).visual
    for name in maa.MAA_VARIANTS:
        tower = maa_release.load_adapted(name, copy.deepcopy(visual))
        assert maa_release.entry(name)["parameters"] == maa.adapter_parameters(tower.adapter_state())
        assert any(torch.tanh(a).abs().max() > 0 for a in tower.adapters[0].alpha.values()), f"{name} left its gates at 0"


def test_a_stale_maa_release_names_the_retrain_command(monkeypatch):
    from radapt_lib import maa_release, zoo

    monkeypatch.setitem(maa.MAA_VARIANTS, "maa", dataclasses.replace(maa.MAA_VARIANTS["maa"], lambda_adv=0.1))
    with pytest.raises(zoo.ZooError, match="train_zoo.sh --maa"):
        maa_release.entry("maa")
    with pytest.raises(zoo.ZooError, match="train_zoo.sh --maa"):
        maa_release.entry("not-a-variant")


def test_bootstrap_intervals_hold_their_point_estimates():
    """A resample's repeated image is not a pair at distance 0: every interval must contain its point estimate
    (the V-statistic resampled naively put the energy distance's whole interval above it)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 8))
    y = x + 0.2 * rng.normal(size=(120, 8)) + 0.1
    for paired in (True, False):
        for name, est in featstats.bootstrap_distances(x, y, paired=paired, n_boot=100).items():
            assert est.low <= est.mean <= est.high, (paired, name, est)
    point = featstats.bootstrap_distances(x, y, paired=False, n_boot=10)
    assert point["mmd2_rbf"].mean == pytest.approx(featstats.mmd2_rbf(x, y))
    assert point["kid"].mean == pytest.approx(featstats.kid(x, y))
    assert point["energy"].mean < featstats.energy_distance(x, y)  # U-form: the within-set zeros left out
