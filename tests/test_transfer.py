"""HPT-GPD's page: the transfer matrix (relations, records, claims) and HPT / GPD training."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radapt_lib import data, hpt, training, transfer, zoo
from radapt_lib.rtables import proxy
from radapt_lib.data import ImageSet
from radapt_lib.zeroshot import ZeroShotClassifier


def test_relations_separate_architecture_from_weights():
    assert transfer.relation("mini-clip", "mini-clip") == "white-box"
    assert transfer.relation("mini-clip", "mini-clip-s1") == "same architecture, other seed"
    assert transfer.relation("mini-clip-p8-s1", "mini-clip-p8") == "same architecture, other seed"
    assert transfer.relation("mini-clip", "mini-clip-p8-s1") == "other architecture"


def test_seed_replicas_are_the_same_recipe_but_the_seed():
    for name, base in (("mini-clip-s1", "mini-clip"), ("mini-clip-p8-s1", "mini-clip-p8")):
        a, b = zoo.training_spec(name)["config"], zoo.training_spec(base)["config"]
        assert a.pop("seed") == 1 and b.pop("seed") == 0 and a == b


def _tiny_classifiers(tiny_clip, n: int = 2) -> dict:
    cfg, clip = tiny_clip
    out = {}
    for i in range(n):
        torch.manual_seed(i)
        visual = training.build_mini_clip(cfg).visual.eval()
        head = F.normalize(torch.randn(cfg.embed_dim, 1) + 0.02 * torch.randn(cfg.embed_dim, 3), dim=0)  # small margins
        out[f"m{i}"] = ZeroShotClassifier(visual, head, training.CIFAR_MEAN, training.CIFAR_STD, ("a", "b", "c"))
    return out


def test_transfer_attacks_every_image_and_reads_every_target(tiny_clip, tmp_cache):
    models = _tiny_classifiers(tiny_clip)
    gen = torch.Generator().manual_seed(0)
    images = ImageSet(torch.randint(0, 256, (12, 3, 32, 32), generator=gen, dtype=torch.uint8),
                      torch.randint(0, 3, (12,), generator=gen), ("a", "b", "c"), "random")
    # a random tower's logits barely depend on the image (margins ~0.3-20 logits), so a large budget is needed to flip any
    rec = transfer.transfer(models, "m0", images, "pgd", 32 / 255, n_iter=5, batch_size=5)
    assert set(rec.clean_pred) == {"m0", "m1"} and rec.labels.shape == (12,)
    # white-box: the source's attacked accuracy cannot exceed its clean accuracy, and the attack moved something
    assert rec.correct("m0").sum() <= (rec.clean_pred["m0"] == rec.labels).sum()
    assert (rec.adv_pred["m0"] != rec.clean_pred["m0"]).any()
    again = transfer.transfer(models, "m0", images, "pgd", 32 / 255, n_iter=5, batch_size=5)
    assert all(np.array_equal(again.adv_pred[t], rec.adv_pred[t]) for t in rec.adv_pred)
    with pytest.raises(ValueError, match="not a pre-trained mini CLIP"):  # m0/m1 have no architecture to compare
        proxy.matrix_frame({("pgd", "m0"): rec})


def _record(source: str, labels, preds: dict) -> transfer.TransferRecord:
    return transfer.TransferRecord(source, "pgd", 4 / 255, {}, np.asarray(labels), {t: np.asarray(labels) for t in preds},
                                   {t: np.asarray(p) for t, p in preds.items()}, 0.0)


def test_claims_read_the_paired_differences():
    n = 200
    y = np.zeros(n, dtype=int)
    right, wrong = y, np.ones(n, dtype=int)
    names = ("mini-clip", "mini-clip-s1", "mini-clip-p8")
    # every target fooled by its own and its architecture's other seed's images, never by the other architecture's
    preds = {s: {t: (right if transfer.relation(s, t) == "other architecture" else wrong) for t in names} for s in names}
    records = {("pgd", s): _record(s, y, preds[s]) for s in names}
    table = proxy.proxy_claims(records, "pgd")
    assert set(table["verdict"]) == {"supports (same sign)"}
    assert proxy.proxy_summary(table, "heterogeneity").startswith("supports")
    # the opposite world: other architectures' images fool it, its own seed's do not
    preds = {s: {t: (wrong if transfer.relation(s, t) == "other architecture" else right) for t in names} for s in names}
    records = {("pgd", s): _record(s, y, preds[s]) for s in names}
    assert proxy.proxy_summary(proxy.proxy_claims(records, "pgd"), "heterogeneity").startswith("contradicts")


def test_distillation_is_zero_only_when_the_outputs_agree():
    a = torch.randn(4, 6)
    assert hpt.distill(a, a, 1.0).abs() < 1e-6
    assert hpt.distill(a, a.flip(1), 1.0) > 0.01


def test_gpd_schedule_warms_up_then_restarts_a_cosine():
    cfg = hpt.HptConfig(gpd=True, steps=100, gpd_warmup=20, lr=1.0)
    lrs = [hpt.learning_rate(cfg, s) for s in range(100)]
    assert [p for _, p in lrs] == [1] * 20 + [2] * 80
    assert lrs[0][0] == pytest.approx(0.05) and lrs[19][0] == pytest.approx(1.0) and lrs[20][0] == pytest.approx(1.0)
    assert all(a >= b for (a, _), (b, _) in zip(lrs[20:], lrs[21:]))
    plain = hpt.HptConfig(steps=100, lr=1.0)
    assert all(p == 2 for _, p in (hpt.learning_rate(plain, s) for s in range(100)))
    with pytest.raises(ValueError, match="gpd_warmup"):
        hpt.check_config(hpt.HptConfig(gpd=True, steps=10, gpd_warmup=10))


@pytest.mark.parametrize("name", list(hpt.HPT_FINETUNES))
def test_hpt_training_starts_deterministically_from_the_released_clip(name):
    """Two steps of each released HPT run from the released mini-clip and proxy: deterministic, and they move it."""
    state, log = zoo.train(name, stop_after=2)
    again, log2 = zoo.train(name, stop_after=2)
    assert log.losses == log2.losses and all(torch.equal(state[k], again[k]) for k in state)
    base = zoo.load_state("mini-clip")
    assert any(not torch.equal(state[k], base[f"visual.{k}"]) for k in state)
    assert all(np.isfinite(log.losses))
    recorded = zoo.entry(name)["checkpoints"]
    assert recorded and recorded[-1]["step"] == hpt.HPT_FINETUNES[name].steps


def test_the_neighbours_pages_refuse_the_paper_profile_and_bad_severities():
    from radapt_lib import page

    with pytest.raises(page.ParameterError, match="-p profile mini"):
        page.setup("proxy", profile="paper", seed=0)
    with pytest.raises(page.ParameterError, match="severities"):
        page.setup("corruptions", profile="mini", seed=0, severity=6)
    assert page.setup("corruptions", profile="mini", seed=0, severity=2).severity == 2
