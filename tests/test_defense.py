"""R-Adapt's defense on tiny random towers: filter, anchor, defend(), R-Adapt+ training."""
import dataclasses
import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from radapt_lib import defense, plus
from radapt_lib.data import ImageSet
from radapt_lib.training import MiniClipConfig, build_mini_clip
from radapt_lib.zeroshot import ZeroShotClassifier

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def tiny_classifier(seed=0, image_size=16, patch=4, width=32, classes=3):
    torch.manual_seed(seed)
    cfg = MiniClipConfig(width=width, layers=2, head_width=16, patch_size=patch, image_size=image_size,
                         text_width=32, text_heads=2, text_layers=1, embed_dim=16)
    clip = build_mini_clip(cfg).eval()
    head = F.normalize(torch.randn(cfg.embed_dim, classes), dim=0)
    model = ZeroShotClassifier(clip.visual, head, MEAN, STD, [f"c{i}" for i in range(classes)]).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_filter_with_infinite_cutoff_is_identity():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(defense.GaussianInputFilter(math.inf)(x), x)
    assert torch.allclose(defense.GaussianInputFilter(1e6)(x), x, atol=1e-6)


def test_filter_attenuates_checkerboard_and_keeps_constant():
    board = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float().expand(1, 3, 16, 16)
    out = defense.GaussianInputFilter(defense.d0_at(16, 40))(board)
    assert (out - out.mean()).abs().max() < 0.05 * (board - board.mean()).abs().max()
    flat = torch.full((1, 3, 16, 16), 0.7)
    assert torch.allclose(defense.GaussianInputFilter(2.0)(flat), flat, atol=1e-6)


def test_d0_scales_with_resolution():
    assert defense.d0_at(224, 40) == 40
    assert abs(defense.d0_at(32, 40) - 40 * 32 / 224) < 1e-12


def test_alpha0_beta1_unfiltered_is_bit_identical_and_original_untouched():
    model = tiny_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 3, 16, 16)
    anchor = defense.white_anchor(model)
    defended = defense.defend(model, anchor, alpha=0.0, beta=1.0, d0_224=None)
    assert isinstance(defended.visual.transformer.resblocks[0].attn, defense.FixedAnchorAttention)
    with torch.no_grad():
        assert torch.equal(defended(x), model(x))
    assert not isinstance(model.visual.transformer.resblocks[0].attn, defense.FixedAnchorAttention)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_anchor_shape_check_fails_clearly():
    anchor = defense.white_anchor(tiny_classifier())  # 17 tokens x 32
    other = tiny_classifier(image_size=16, patch=8, width=32)  # 5 tokens x 32
    with pytest.raises(defense.AnchorShapeError, match="expects 5 tokens x 32 width"):
        defense.defend(other, anchor, 1.2, 0.0)


def test_gradients_flow_to_input():
    model = defense.defend(tiny_classifier(), defense.white_anchor(tiny_classifier()), 0.8, 0.2, 40)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    F.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_defense_state_is_in_buffers():
    model = tiny_classifier()
    a = defense.defend(model, defense.white_anchor(model), 1.2, -0.8, 40).state_dict()
    b = defense.defend(model, defense.white_anchor(model), 1.2, 0.0, 40).state_dict()
    assert any(k.endswith("attn.anchor") for k in a) and any(k.endswith("input_filter.d0") for k in a)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_white_anchor_equals_block_attention_output_on_white():
    model = tiny_classifier()
    seen = {}
    attn = model.visual.transformer.resblocks[0].attn
    handle = attn.register_forward_hook(lambda m, i, o: seen.setdefault("out", o[0].detach()))
    with torch.no_grad():
        model(torch.ones(1, 3, 16, 16))
    handle.remove()
    anchor = defense.white_anchor(model)
    assert anchor.shape == (17, 32)
    assert torch.allclose(anchor, seen["out"][0], atol=1e-6)
    tower_anchor = defense.white_anchor(model.visual, MEAN, STD)
    assert torch.allclose(anchor, tower_anchor)


def _synthetic(n=24):
    gen = torch.Generator().manual_seed(1)
    return ImageSet((torch.rand(n, 3, 16, 16, generator=gen) * 255).to(torch.uint8),
                    torch.randint(0, 3, (n,), generator=gen), ("c0", "c1", "c2"), "synthetic")


def test_train_anchor_reduces_its_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAPT_CACHE", str(tmp_path))
    model, images = tiny_classifier(), _synthetic()
    cfg = plus.AnchorTrainConfig(n_images=24, epochs=4, pgd_steps=1, batch_size=8, lr=5e-2)
    run = plus.train_anchor(model, images, cfg, progress=False)
    start = plus.anchor_loss(model, defense.white_anchor(model), images, cfg)
    end = plus.anchor_loss(model, run.anchor, images, cfg)
    assert end < start
    assert len(run.losses) == 4 and run.images_seen == 96
    # resuming: a 4-epoch run from a cached 2-epoch run equals a straight 4-epoch run
    monkeypatch.setenv("RADAPT_CACHE", str(tmp_path / "resume"))
    plus.train_anchor(model, images, dataclasses.replace(cfg, epochs=2), progress=False)
    resumed = plus.train_anchor(model, images, cfg, progress=False)
    assert torch.equal(resumed.anchor, run.anchor)
    # every intermediate epoch is cached: a shorter run after a longer one is a hit, equal to its snapshot
    shorter = plus.train_anchor(model, images, dataclasses.replace(cfg, epochs=3), progress=False)
    assert shorter.losses == run.losses[:3]


def test_fixed_examples_are_made_once_against_the_undefended_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAPT_CACHE", str(tmp_path))
    model, images = tiny_classifier(), _synthetic()
    cfg = plus.AnchorTrainConfig(n_images=24, epochs=3, pgd_steps=2, batch_size=8, lr=5e-2, examples="fixed")
    fixed = plus.fixed_examples(model, images, cfg)
    x = images.images.float().div(255)
    assert fixed.shape == x.shape and (fixed - x).abs().max() <= cfg.eps + 1e-6 and not torch.equal(fixed, x)
    assert torch.equal(fixed, plus.fixed_examples(model, images, cfg))  # deterministic: a resumed run sees the same set
    run = plus.train_anchor(model, images, cfg, progress=False)
    minmax = plus.train_anchor(model, images, dataclasses.replace(cfg, examples="minmax"), progress=False)
    assert run.losses[-1] < run.losses[0] and not torch.equal(run.anchor, minmax.anchor)
    with pytest.raises(ValueError, match="unknown anchor examples"):
        plus.train_anchor(model, images, dataclasses.replace(cfg, examples="both"), progress=False)


def test_defend_vit_b32_forward_at_224():
    import open_clip

    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    head = F.normalize(torch.randn(clip.visual.output_dim, 3), dim=0)
    model = ZeroShotClassifier(clip.visual, head, MEAN, STD, ("a", "b", "c")).eval()
    anchor = defense.white_anchor(model)
    assert anchor.shape == (50, 768)
    defended = defense.defend(model, anchor, **{k: v for k, v in vars(defense.PRESETS["R-Adapt+"]).items()
                                                if k in ("alpha", "beta", "d0_224")})
    assert float(defended.input_filter.d0) == 40.0
    with torch.no_grad():
        assert defended(torch.rand(1, 3, 224, 224)).shape == (1, 3)


def _result(labels, clean_pred, adv_pred):
    from radapt_lib.evaluation import EvalResult

    return EvalResult("m", "pgd", 4 / 255, np.array(labels), np.array(clean_pred), np.array(adv_pred), None)


def test_collapse_rule_is_one_predicate_for_every_table():
    from radapt_lib import results, rtables

    healthy = _result([0, 1, 2, 3] * 25, [0, 1, 2, 3] * 25, [0, 1, 2, 0] * 25)
    one_class = _result([0, 1, 2, 3] * 25, [0] * 80 + [1, 2, 3, 3] * 5, [0] * 100)
    near_chance = _result([0, 1, 2, 3] * 25, [1, 2, 3, 0] * 22 + [0, 1, 2, 3] * 3, [1, 2, 3, 0] * 25)
    assert results.collapse_flag(healthy, 4) == ""
    assert "one class" in results.collapse_flag(one_class, 4)
    assert "near chance" in results.collapse_flag(near_chance, 4)
    for res, flagged in ((healthy, False), (one_class, True), (near_chance, True)):
        assert rtables.study._row("m", "d", "pgd", 4, res, 4)["collapse"] is flagged


# --- the two D0 rules ---------------------------------------------------------------------------

def test_paper_gif_cost_is_read_from_table6():
    from radapt_lib import reference, rtables
    rows = {(r["gif"], r["fra"]): r for r in reference.TABLE6}
    costs = [rows[(False, False)][d]["clean"] - rows[(True, False)][d]["clean"] for d in reference.TABLE6_DATASETS]
    assert rtables.paper_gif_clean_cost() == pytest.approx(sum(costs) / len(costs), abs=0.05)


def test_calibration_measures_a_gentler_filter_on_held_out_images():
    from radapt_lib import data, rtables
    from radapt_lib.rtables import d0rules
    study = rtables.Study.create("mini", None, 10, 0, methods=["CLIP"], presets=False)
    val = d0rules.validation_images(study, "animals", 40)
    anchor_images = study.train_images(500)
    seen = {bytes(x.numpy().tobytes()) for x in anchor_images.images}
    assert not any(bytes(x.numpy().tobytes()) in seen for x in val.images)  # never the anchor's training images
    tested = {bytes(x.numpy().tobytes()) for x in study.images["animals"].images}
    assert not any(bytes(x.numpy().tobytes()) in tested for x in val.images)  # never the tables' test images
    test_split = {bytes(x.numpy().tobytes()) for x in data.mini_dataset("animals", "test").images}
    assert all(bytes(x.numpy().tobytes()) in test_split for x in val.images)  # the test split: mini-clip never trained on it
    with pytest.raises(ValueError, match="overlap"):
        d0rules.validation_images(study, "animals", 5995)  # 5995 + 10 test images > the 6000 animal test images
    cal = rtables.calibrate_d0(study, grid=(40.0, 320.0), n_val=40)
    cost = dict(zip(cal.frame["D0 at 224 px"], cal.frame["clean cost (pp)"]))
    assert cost[40.0] > cost[320.0]  # the paper-scaled filter at 32 px costs more than a nearly transparent one
    assert cal.d0_224 == min(cost, key=lambda d: (abs(cost[d] - cal.target_pp), d))
    table = rtables.calibration_table(cal)
    assert "calibrated" in table.loc[cal.d0_224, "chosen"] and "paper scaling" in table.loc[40.0, "chosen"]
