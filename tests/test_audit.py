"""The adaptive-attack audit: the passband attack, the masking flags and the verdict, on known answers."""
import numpy as np
import pytest
import torch
from torch import nn

from radapt_lib import data, defense, training, zeroshot
from radapt_lib.rtables import audit


@pytest.fixture
def tiny_classifier(tiny_clip):
    cfg, clip = tiny_clip
    head = zeroshot.text_head(clip, training.mini_tokenizer(cfg), data.CIFAR10_CLASSES, data.CIFAR_TEMPLATES[:2])
    clf = zeroshot.ZeroShotClassifier(clip.visual, head, training.CIFAR_MEAN, training.CIFAR_STD, data.CIFAR10_CLASSES)
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf.eval()


def _high_share(delta: torch.Tensor) -> float:
    """Share of the perturbation's spectral energy outside the lowest frequencies (|f| > 4 cycles per image)."""
    power = torch.fft.fft2(delta).abs() ** 2
    f = torch.fft.fftfreq(delta.shape[-1], d=1 / delta.shape[-1]).abs()
    high = (f[:, None] > 4) | (f[None, :] > 4)
    return float(power[..., high].sum() / power.sum())


def test_the_passband_attack_stays_in_the_ball_and_in_the_filters_passband(tiny_classifier):
    torch.manual_seed(0)
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6)
    eps = 8 / 255
    x_adv = audit.passband_pgd(tiny_classifier, x, y, eps, steps=5, d0=2.0)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(tiny_classifier(x_adv), y) > loss(tiny_classifier(x), y)
    plain = torch.rand(6, 3, 32, 32) * 2 - 1  # a perturbation with a flat spectrum, for scale
    assert _high_share(x_adv - x) < 0.2 * _high_share(plain)


def _audit(table, square=None, ladder=None, top=None, zero=0.0):
    n = len(table)
    table = np.asarray(table, bool)
    suite = {k: table.copy() for k in (*audit.SUITE, *audit.ON_SURVIVORS)}
    if square is not None:
        suite[audit.SQUARE] = np.asarray(square, bool)
    ladder = ladder or {10: table.copy(), 20: table.copy()}
    sweep = {4: table.copy(), 64: np.asarray(top if top is not None else [False] * n, bool)}
    return audit.Audit("m", n, np.ones(n, bool), table, suite, ladder, sweep, {}, {}, zero)


def test_no_flag_and_the_table_stands_when_every_attack_agrees():
    a = _audit([True] * 10 + [False] * 90)
    assert audit.flags(a) == {}
    assert audit.verdict(a).startswith("stands")


def test_each_masking_sign_is_flagged():
    t = [True] * 10 + [False] * 90
    assert "black-box beats white-box" in audit.flags(_audit(t, square=[False] + t[1:]))
    falling = {10: np.array(t), 20: np.array([False] + t[1:])}
    assert "not converged" in audit.flags(_audit(t, ladder=falling))
    assert "sweep does not reach 0" in audit.flags(_audit(t, top=[True] + [False] * 99))
    assert "zero gradients" in audit.flags(_audit(t, zero=5.0))


def test_a_table_number_far_above_the_worst_case_is_overstated():
    t = np.array([True] * 50 + [False] * 50)
    a = _audit(t)
    a.suite["APGD-DLR-100"] = np.array([True] * 10 + [False] * 90)
    assert a.worst().sum() == 10
    assert audit.verdict(a).startswith("overstated by 40.0")


def test_a_constant_model_has_only_zero_gradients():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 3) + 0 * x.sum()

    images = data.ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ("a", "b", "c"), "toy")
    assert audit.zero_gradient_share(Constant(), images, np.ones(4, bool)) == 100.0


def test_lowpass_is_the_defenses_filter():
    z = torch.rand(2, 3, 32, 32)
    assert torch.equal(audit.lowpass(z, 3.0), defense.GaussianInputFilter(3.0)(z))


def test_the_restarts_curve_is_the_worst_case_over_the_first_k_starts():
    a = _audit([True] * 20 + [False] * 80)
    a.suite["PGD-50 (start 2)"] = np.array([False] * 5 + [True] * 15 + [False] * 80)
    restarts = audit.curves([a]).query("curve == 'restarts'")
    assert restarts["x"].tolist() == [1, 2]
    assert restarts["robust"].tolist() == [20.0, 15.0]


def test_the_verdict_paragraph_counts_what_stands_and_names_the_flags():
    stands = _audit([True] * 10 + [False] * 90)
    stands.method = "FARE"
    over = _audit([True] * 50 + [False] * 50, square=[False] * 100)
    over.method = "R-Adapt+"
    values = audit.glue_values([stands, over])
    assert values["au_n"] == "2" and values["au_stand"] == "1 (FARE)" and values["au_over"] == "R-Adapt+"
    assert values["au_flagged"].startswith("R-Adapt+ (black-box beats white-box")
    assert values["au_plus"].startswith("overstated by 50.0") and values["au_fare"].startswith("stands")


def test_the_papers_numbers_come_from_tables_1_and_6():
    from radapt_lib import reference

    assert audit.paper_robust("R-Adapt+") == reference.TABLE1_AUTOATTACK["R-Adapt+"]["Avg"]
    assert audit.paper_robust("GIF only") == round((57.5 + 30.3 + 27.9 + 16.8) / 4, 1)
    assert audit.paper_robust("FRA only (white anchor)") is None


def test_paper_smoke_size_cuts_every_budget_to_two(monkeypatch):
    monkeypatch.delenv("RADAPT_PAPER_SMOKE", raising=False)
    assert audit.budget(5000) == 5000 and "Square-5000 (survivors): square, 5000 queries, 1 restart(s)" in audit.describe()
    monkeypatch.setenv("RADAPT_PAPER_SMOKE", "1")
    assert audit.budget(5000) == 2 and audit.budget(1) == 1
    assert "PGD ladder 1/2 iterations, doubled until no further image breaks" in audit.describe()
    assert "filtered models: passband PGD-2, PGD-2 without the filter" in audit.describe()
    assert "APGD-CE-100: apgd-ce, 2 iterations, 1 restart(s)" in audit.describe()


def test_an_unknown_model_to_audit_is_a_parameter_error():
    from radapt_lib import page

    assert page.EXTRA_PARAMETERS["audited"]("audited", "FARE,GIF only") == ["FARE", "GIF only"]
    assert page.EXTRA_PARAMETERS["audited"]("audited", None) is None
    with pytest.raises(page.ParameterError, match="unknown model.*to audit.*-p audited"):
        page.EXTRA_PARAMETERS["audited"]("audited", ["FARE", "R-Adapt++"])
