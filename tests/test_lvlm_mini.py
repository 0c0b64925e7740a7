"""The mini LVLMs (Tables 5 / 11's mini profile): vocabulary, the defense inside the encoder, V-Attack on the released
model, the release's checks, the protocol's scoring and the Wilson interval on known answers."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from radapt_lib import data, stats, zoo
from radapt_lib.lvlm import protocol, release
from radapt_lib.lvlm.base import VisionLanguageModel
from radapt_lib.lvlm.mini_vlm import CAPTION_PROMPT, QUESTIONS, MINI_VLMS, WordTokenizer, target_text
from radapt_lib.lvlm.vattack import VAttackConfig, enhance, v_attack
from radapt_lib.rtables import table5


@pytest.fixture(scope="module")
def llava():
    return release.load_mini_vlm("mini-llava")


def test_vocabulary_round_trips_and_refuses_unknown_words():
    tok = WordTokenizer.for_tasks()
    for text in (CAPTION_PROMPT, *QUESTIONS, target_text(3, "airplane"), target_text(0, "dog", 4)):
        assert tok.decode(tok.encode(text)) == text
    assert target_text(3, "airplane") == "it is a vehicle: an airplane."
    with pytest.raises(ValueError, match="vocabulary has no \\['zebra'\\]"):
        tok.encode("a zebra.")


def test_names_object_reads_whole_words():
    assert protocol.names_object("a photo of a dog.", ("dog", "dogs"))
    assert not protocol.names_object("a photo of a hotdog.", ("dog", "dogs"))
    assert protocol.names_object("Two Dogs.", ("dog", "dogs"))


def test_wilson_interval_known_answers():
    assert stats.wilson(0, 10).high == pytest.approx(27.75, abs=0.01)  # textbook: 0/10 -> [0, 0.2775]
    est = stats.wilson(10, 10)
    assert (est.mean, est.high) == (100.0, 100.0) and est.low == pytest.approx(72.25, abs=0.01)
    assert stats.wilson(50, 100).low == pytest.approx(40.38, abs=0.01)
    with pytest.raises(ValueError):
        stats.wilson(3, 2)


def test_self_value_enhancement_is_a_convex_mix_of_the_images_own_values():
    v = torch.randn(2, 5, 4)
    out = enhance(v, 0.1)
    assert out.shape == v.shape
    assert torch.all(out.amax(1) <= v.amax(1) + 1e-5) and torch.all(out.amin(1) >= v.amin(1) - 1e-5)


def test_released_mini_lvlm_implements_the_protocol_and_its_anchor_is_in_place(llava):
    assert isinstance(llava, VisionLanguageModel)
    x = data.mini_dataset("cifar10", "test", n=6, seed=0).images.float().div(255)
    white = llava.white_anchor()
    assert white.shape == (65, 128)
    with pytest.raises(KeyError, match="no fixed robustness anchor"):
        llava.anchor_buffer()
    only_anchor = llava.defended(white, 1.0, 0.0, None)  # beta 0: block 1's attention is replaced, not evaluated
    inner = only_anchor.visual.transformer.resblocks[0].attn.inner
    with torch.no_grad():
        before = only_anchor.encoder_features(x)
        inner.out_proj.weight.mul_(3.0)
        assert torch.equal(before, only_anchor.encoder_features(x))
    same = llava.defended(None, 0.8, 0.2, None)
    assert torch.equal(same.encoder_features(x), llava.encoder_features(x))
    filtered = llava.defended(None, 0.8, 0.2, 40.0)
    assert not torch.allclose(filtered.encoder_features(x), llava.encoder_features(x))
    assert not any(p.requires_grad for p in filtered.parameters())


def test_v_attack_stays_in_the_ball_and_lowers_the_undefended_models_accuracy(llava):
    test = data.mini_dataset("cifar10", "test", n=200, seed=5)
    objects = tuple(data.CIFAR10_CLASSES[y] for y in test.labels.tolist())
    vqa = protocol.screened_set(llava, test.images, objects, data.CIFAR10_CLASSES, CAPTION_PROMPT, QUESTIONS, 12, "test")
    x = vqa.images.float().div(255)
    cfg = VAttackConfig(steps=40, step_size=1 / 255)
    x_adv = v_attack(llava, x, vqa.objects, vqa.targets, cfg)
    assert float((x_adv - x).abs().max()) <= cfg.eps + 1e-6 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    prompts = protocol.prompts_of(vqa.caption_prompt, vqa.questions)
    clean = protocol.correctness(protocol.answer_all(llava, x, prompts), vqa.objects)
    attacked = protocol.correctness(protocol.answer_all(llava, x_adv, prompts), vqa.objects)
    assert clean.all()  # the screened set: every clean answer names the object
    assert attacked.mean() < 0.5, attacked.mean()
    with pytest.raises(ValueError, match="must differ"):
        v_attack(llava, x[:1], ["dog"], ["dog"], cfg)


def test_release_refuses_a_corrupt_lvlm_file(tmp_path, monkeypatch):
    shutil.copytree(zoo.zoo_dir(), tmp_path / "zoo", ignore=shutil.ignore_patterns("mini-*-*.safetensors"))
    monkeypatch.setenv("RADAPT_ZOO", str(tmp_path / "zoo"))
    path = tmp_path / "zoo" / release.entry("mini-llava")["file"]
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(zoo.ZooError, match="corrupt or was edited.*train_lvlms"):
        release.load_mini_vlm("mini-llava")
    with pytest.raises(ValueError, match="unknown mini LVLM"):
        release.load_mini_vlm("llava")
    with pytest.raises(ValueError, match="Table 5's settings"):
        release.anchor_config(2)


def test_every_released_anchor_matches_the_current_code():
    for name in MINI_VLMS:
        for eps in release.SETTINGS:
            anchor = release.load_anchor(name, eps)
            assert anchor.ndim == 2 and torch.isfinite(anchor).all()


def test_claims_on_a_synthetic_study_read_intervals():
    n = 400  # 100 % of 100 answers has a Wilson interval down to 96.3 %: the 98 % floor needs more to be met
    rng = np.random.default_rng(0)
    ones = np.ones((4, n), dtype=bool)
    results = {None: protocol.LvlmResult("none", ones, rng.random((4, n)) < 0.2, {}),
               4: protocol.LvlmResult("4", ones, rng.random((4, n)) < 0.3, {}),
               8: protocol.LvlmResult("8", ones, rng.random((4, n)) < 0.6, {}),
               16: protocol.LvlmResult("16", ones, rng.random((4, n)) < 0.85, {})}
    vqa = protocol.VqaSet(torch.zeros(n, 3, 2, 2, dtype=torch.uint8), ("dog",) * n, ("cat",) * n, CAPTION_PROMPT,
                          QUESTIONS, "synthetic", n)
    study = table5.LvlmStudy("mini-llava", None, vqa, VAttackConfig(), results)
    claims = table5.claims(study)
    assert claims.loc["rise_cap", "verdict"].startswith("same sign")
    assert claims.loc["gain_vqa", "verdict"].startswith("same sign")
    assert claims.loc["clean_cap", "verdict"].startswith("met")
    few = table5.LvlmStudy("mini-llava", None, vqa, VAttackConfig(), {k: protocol.LvlmResult(
        r.label, r.clean[:, :100], r.robust[:, :100], {}) for k, r in results.items()})
    assert table5.claims(few).loc["clean_cap", "verdict"].startswith("cannot decide")
    assert table5.reading(study, claims)["t5_reading"].startswith("R-Adapt+ restores part")
    one = table5.LvlmStudy("mini-llava", None, vqa, VAttackConfig(), {k: results[k] for k in (None, 4)})
    verdict = table5.claims(one).loc["rise_vqa", "verdict"]
    from radapt_lib import claims as ledger
    assert verdict.startswith("cannot decide") and ledger.category(verdict) == "undecided"
    assert "not resolved" in table5.reading(one, table5.claims(one))["t5_reading"]
    assert list(table5.table(study).columns[:2]) == ["CAP Clean", "CAP Clean (paper)"]
