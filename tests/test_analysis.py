"""Section 3 analyses on tiny towers with known answers, and on a random-weight ViT-B/32 (the paper path)."""
import copy

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transformer import VisionTransformer

from radapt_lib import data, evaluation
from radapt_lib.analysis import attention, cka, replacement, shapley, spectral
from radapt_lib.zeroshot import ZeroShotClassifier

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def tiny_tower(seed: int = 0, heads: int = 4) -> VisionTransformer:
    torch.manual_seed(seed)
    tower = VisionTransformer(image_size=16, patch_size=4, width=32, layers=2, heads=heads, mlp_ratio=2.0,
                              output_dim=16).eval()
    for p in tower.parameters():
        p.requires_grad_(False)
    return tower


def tiny_classifier(tower: torch.nn.Module, n_classes: int = 3, seed: int = 0) -> ZeroShotClassifier:
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.functional.normalize(torch.randn(tower.output_dim, n_classes, generator=gen), dim=0)
    model = ZeroShotClassifier(tower, head, MEAN, STD, [f"c{i}" for i in range(n_classes)]).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def vit_b32():
    torch.manual_seed(0)
    tower = open_clip.create_model("ViT-B-32", pretrained=None).visual.eval()
    for p in tower.parameters():
        p.requires_grad_(False)
    return tower


# --- CKA -------------------------------------------------------------------------------------

def test_cka_identity_orthogonal_and_scale_invariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert cka.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cka.linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert cka.linear_cka(x, 3.7 * x) == pytest.approx(1.0, abs=1e-12)
    assert cka.linear_cka(x, x + 5.0) == pytest.approx(1.0, abs=1e-10)  # centring removes offsets


def test_cka_of_independent_features_is_small():
    rng = np.random.default_rng(1)
    assert cka.linear_cka(rng.normal(size=(400, 4)), rng.normal(size=(400, 4))) < 0.05


def test_gram_matrices_of_a_tower_with_itself_and_multi_pass():
    tower = tiny_tower()
    x = images(12)
    grams = cka.gram_matrices(tower, x, batch_size=5)
    assert grams.shape == (3, 12, 12) and cka.layer_names(tower) == ["Emb", "B1", "B2"]
    emb = attention.embed_tokens(tower, x).flatten(1).double()
    np.testing.assert_allclose(grams[0], (emb @ emb.T).numpy(), rtol=1e-5)
    np.testing.assert_allclose(cka.gram_matrices(tower, x, batch_size=5, max_bytes=1), grams, rtol=1e-10)
    m = cka.cka_matrix(grams, grams)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-10)
    assert cka.diagonal_shift(m) == [0, 1, 2]
    boots = cka.bootstrap_cka(grams, grams, n_boot=5)
    assert boots.shape == (5, 3, 3)
    np.testing.assert_allclose(boots[:, [0, 1, 2], [0, 1, 2]], 1.0, atol=1e-10)  # a resample against itself


# --- spectral shift ----------------------------------------------------------------------------

def test_compare_with_standard_reads_each_robust_tower_against_the_standard_and_is_cached(tmp_cache):
    classifiers = {"CLIP": tiny_classifier(tiny_tower(0)), "A": tiny_classifier(tiny_tower(1)),
                   "B": tiny_classifier(tiny_tower(2))}
    x = images(20, seed=3)
    out = cka.compare_with_standard(classifiers, x, "CLIP", n_boot=20, seed=0)
    grams = {m: cka.gram_matrices(c.visual, c.tower_input(x)) for m, c in classifiers.items()}
    assert out.names == ["Emb", "B1", "B2"] and set(out.matrices) == set(out.summary) == {"A", "B"}
    assert np.allclose(out.matrices["A"], cka.cka_matrix(grams["CLIP"], grams["A"]))
    assert out.b1_boots["B"].shape == (20, 3)
    same = cka.compare_with_standard({"CLIP": classifiers["CLIP"], "A": classifiers["CLIP"]}, x, "CLIP", n_boot=20)
    assert np.allclose(np.diag(same.matrices["A"]), 1.0)  # a tower matches itself layer for layer
    assert len(list((tmp_cache / "analyses").glob("*.pt"))) == 2
    cka.compare_with_standard(classifiers, x, "CLIP", n_boot=20, seed=0)
    assert len(list((tmp_cache / "analyses").glob("*.pt"))) == 2  # the same question is read back


def _kernels(kernel: np.ndarray, c_out: int = 4, c_in: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.broadcast_to(kernel, (c_out, c_in, *kernel.shape)).copy())


def _delta(k: int) -> np.ndarray:
    d = np.zeros((k, k))
    d[k // 2, k // 2] = 1.0
    return d


@pytest.mark.parametrize("k", [4, 7])
def test_blur_is_low_pass_and_laplacian_high_pass(k):
    t = np.arange(k) - k // 2
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / 2.0)
    blur = g / g.sum()
    lap = np.zeros((k, k))
    c = k // 2
    lap[c, c] = 4.0
    lap[c - 1, c] = lap[c + 1, c] = lap[c, c - 1] = lap[c, c + 1] = -1.0
    delta = _kernels(_delta(k))
    np.testing.assert_allclose(spectral.kernel_spectrum(delta).values, 1.0)  # a delta passes all frequencies
    assert spectral.low_pass_index(spectral.spectral_shift(_kernels(blur), delta)) > 0.2
    assert spectral.low_pass_index(spectral.spectral_shift(_kernels(lap), delta)) < -0.2
    assert spectral.low_pass_index(spectral.spectral_shift(delta, delta)) == 0.0
    shift = spectral.spectral_shift(_kernels(blur), delta, pad_to=32)
    assert shift.values.shape == (32, 32) and shift.values[16, 16] == pytest.approx(0.0, abs=1e-12)  # DC centred
    r, prof = spectral.radial_profile(shift)
    assert np.all(np.diff(prof) < 1e-9)  # the blur loses more the higher the frequency
    est = spectral.low_pass_index_ci(_kernels(blur) + 0.01 * torch.randn(4, 3, k, k, dtype=torch.float64), delta,
                                     n_boot=50)
    assert est.low <= est.mean <= est.high and est.mean > 0


# --- progressive replacement --------------------------------------------------------------------

def test_progressive_replacement_endpoints_and_order():
    std, rob = tiny_tower(0), tiny_tower(1)
    x = (images(4) - 0.5) / 0.25
    steps = [(s, copy.deepcopy(t)) for s, t in replacement.progressive_towers(std, rob)]
    assert [s for s, _ in steps] == ["none", "Emb", "B1-Attn", "B1-MLP", "B2-Attn", "B2-MLP", "Head"]
    assert replacement.step_names(std) == [s for s, _ in steps]
    torch.testing.assert_close(steps[0][1](x), std(x), rtol=0, atol=0)
    torch.testing.assert_close(steps[-1][1](x), rob(x), rtol=0, atol=0)
    emb = steps[1][1]
    assert torch.equal(emb.conv1.weight, rob.conv1.weight) and torch.equal(emb.positional_embedding, rob.positional_embedding)
    assert torch.equal(emb.transformer.resblocks[0].attn.in_proj_weight, std.transformer.resblocks[0].attn.in_proj_weight)
    b1a = steps[2][1].transformer.resblocks[0]
    assert torch.equal(b1a.attn.in_proj_weight, rob.transformer.resblocks[0].attn.in_proj_weight)
    assert torch.equal(b1a.mlp.c_fc.weight, std.transformer.resblocks[0].mlp.c_fc.weight)


def test_replacement_curve_runs_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAPT_CACHE", str(tmp_path))
    base = tiny_classifier(tiny_tower(0))
    imgs = data.ImageSet((255 * images(6)).to(torch.uint8), torch.tensor([0, 1, 2, 0, 1, 2]), base.classnames, "random")
    curve = replacement.replacement_curve(base, tiny_tower(1), imgs, robust_model="R", dataset="random",
                                          attack="pgd", n_iter=1, steps=["none", "Emb", "Head"])
    frame = curve.frame().set_index("step")
    assert list(frame.index) == ["none", "Emb", "Head"]
    # the end points are the standard and the robust classifier: their clean accuracy, computed directly
    x = imgs.images.float().div(255)
    with torch.no_grad():
        for step, visual in (("none", base.visual), ("Head", tiny_tower(1))):
            model = ZeroShotClassifier(visual, base.head, MEAN, STD, base.classnames).eval()
            assert frame.loc[step, "clean"] == pytest.approx(100 * (model(x).argmax(1) == imgs.labels).float().mean().item())


# --- attention -----------------------------------------------------------------------------------

def test_cls_attention_rows_sum_to_one_and_embeddings_match_open_clip():
    tower = tiny_tower()
    x = (images(3) - 0.5) / 0.25
    rows = attention.cls_attention(tower, x)
    assert rows.shape == (3, 4, 17)
    torch.testing.assert_close(rows.sum(-1), torch.ones(3, 4))
    assert attention.patch_maps(rows).shape == (3, 4, 4, 4)
    torch.testing.assert_close(attention.embed_tokens_manual(tower, x), tower._embeds(x))


def test_attention_output_matches_the_block():
    tower = tiny_tower()
    x = (images(2) - 0.5) / 0.25
    blk = tower.transformer.resblocks[0]
    z = tower._embeds(x)
    expected = blk(z) - blk.ls_2(blk.mlp(blk.ln_2(z + blk.ls_1(attention.attention_output(tower, x)))))
    torch.testing.assert_close(expected, z + attention.attention_output(tower, x), atol=1e-5, rtol=1e-5)


def test_input_insensitivity_of_a_constant_attention_block():
    normal = tiny_classifier(tiny_tower(0))
    constant = tiny_classifier(tiny_tower(0))
    attn = constant.visual.transformer.resblocks[0].attn
    attn.in_proj_weight.zero_()
    attn.in_proj_bias.zero_()
    attn.out_proj.bias.copy_(torch.linspace(-1, 1, attn.out_proj.bias.numel()))
    res = attention.input_insensitivity({"normal": normal, "constant": constant}, images(10), seed=0)
    assert res["pairs"][("constant", "constant")].mean == pytest.approx(1.0, abs=1e-9)
    assert res["white"][("constant", "constant")].mean == pytest.approx(1.0, abs=1e-9)
    normal_pairs = res["pairs"][("normal", "normal")]
    assert normal_pairs.mean < 0.99 and normal_pairs.low <= normal_pairs.mean <= normal_pairs.high
    frame = attention.similarity_frame(res["pairs"])
    assert frame.shape == (2, 2) and frame.loc["constant", "constant"] == 1.0
    partner = attention.derangement_pairs(10, seed=3)
    assert np.all(partner != np.arange(10)) and sorted(partner) == list(range(10))


# --- Shapley -------------------------------------------------------------------------------------

def _labelled(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def test_masked_attention_with_all_heads_equals_the_model():
    model = tiny_classifier(tiny_tower(0))
    x = images(8)
    masked = shapley.masked_model(model)
    torch.testing.assert_close(masked(x), model(x), atol=1e-5, rtol=1e-5)


def test_exact_shapley_efficiency_and_dummy_head():
    model = tiny_classifier(tiny_tower(0), n_classes=5)
    attn = model.visual.transformer.resblocks[0].attn
    attn.out_proj.weight[:, 8:16] = 0.0  # head 1 (of 4, width 8) cannot change anything
    x = images(40, seed=2)
    noisy = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(0))
    y = torch.where(torch.arange(40) % 2 == 0, _labelled(model, x), noisy)
    res = shapley.head_shapley(model, x, y)
    assert res.method == "exact" and res.mode == "zero" and res.n_evaluations == 16
    assert res.values.sum() == pytest.approx(res.v_all - res.v_none, abs=1e-9)
    assert res.values[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(res.per_image.mean(axis=1), res.values)
    standard = shapley.head_shapley(model, x, y, standard_visual=tiny_tower(1))
    assert standard.mode == "standard"
    assert standard.values.sum() == pytest.approx(standard.v_all - standard.v_none, abs=1e-9)


def test_permutation_shapley_is_efficient_per_permutation():
    model = tiny_classifier(tiny_tower(0), n_classes=5)
    x = images(30, seed=4)
    y = _labelled(model, x)
    res = shapley.head_shapley(model, x, y, max_exact_heads=0, n_permutations=6, seed=0)
    assert res.method == "permutation" and res.se.shape == (4,)
    assert res.values.sum() == pytest.approx(res.v_all - res.v_none, abs=1e-9)


# --- the paper path: a real architecture (ViT-B/32, 224 px) with random weights ----------------

def test_paper_architecture_cka_and_spectral(vit_b32):
    x = torch.randn(2, 3, 224, 224)
    grams = cka.gram_matrices(vit_b32, x, batch_size=2)
    assert grams.shape == (13, 2, 2) and len(cka.layer_names(vit_b32)) == 13
    w = vit_b32.conv1.weight
    shift = spectral.spectral_shift(w + 0.01 * torch.randn_like(w), w)
    assert shift.values.shape == (32, 32) and np.isfinite(spectral.low_pass_index(shift))


def test_paper_architecture_replacement_attention_and_shapley(vit_b32):
    x = torch.randn(2, 3, 224, 224)
    robust = copy.deepcopy(vit_b32)
    with torch.no_grad():
        for p in robust.parameters():
            p.add_(0.01 * torch.randn_like(p))
    names = replacement.step_names(vit_b32)
    assert names[:4] == ["none", "Emb", "B1-Attn", "B1-MLP"] and names[-1] == "Head" and len(names) == 27
    rows = attention.cls_attention(vit_b32, x)
    assert rows.shape == (2, 12, 50) and attention.patch_maps(rows).shape == (2, 12, 7, 7)
    torch.testing.assert_close(rows.sum(-1), torch.ones(2, 12))
    short = copy.deepcopy(vit_b32)  # the real block width, heads and resolution; 2 of 12 blocks, for speed
    short.transformer.resblocks = short.transformer.resblocks[:2]
    model = ZeroShotClassifier(short, torch.nn.functional.normalize(torch.randn(512, 3), dim=0),
                               MEAN, STD, ["a", "b", "c"]).eval()
    img = images(2, 224)
    out = attention.first_block_outputs(model, img)
    assert out.shape == (2, 50 * 768)
    res = shapley.head_shapley(model, img, _labelled(model, img), n_permutations=2, seed=0)
    assert res.method == "permutation" and res.values.shape == (12,)
    assert res.values.sum() == pytest.approx(res.v_all - res.v_none, abs=1e-9)
    towers = replacement.progressive_towers(vit_b32, robust)
    first, tower = next(towers)
    torch.testing.assert_close(tower(x), vit_b32(x), rtol=0, atol=0)
    *_, (last, tower) = towers
    assert first == "none" and last == "Head"
    torch.testing.assert_close(tower(x), robust(x), rtol=0, atol=0)


def test_bright_attention_share_and_near_white():
    model = tiny_classifier(tiny_tower(0))
    x = images(5)
    x[0] = 1.0
    assert attention.near_white_share(x)[0] == 1.0 and attention.near_white_share(x)[1] < 0.2
    share = attention.bright_attention_share(model, x)
    assert share.shape == (5, 4)
    assert torch.allclose(share[0], torch.ones(4))  # a flat image: every patch is "brightest"
    # uniform attention (queries and keys zeroed) puts on the bright patches exactly their share of the patches
    attn = model.visual.transformer.resblocks[0].attn
    width = attn.embed_dim
    with torch.no_grad():
        attn.in_proj_weight[:2 * width] = 0.0
        attn.in_proj_bias[:2 * width] = 0.0
    uniform = attention.bright_attention_share(model, x)
    expected = attention.bright_patch_mask(x, 4).mean(1)
    assert torch.allclose(uniform, expected[:, None].expand(5, 4), atol=1e-6)
    assert not torch.allclose(share[1:], uniform[1:], atol=1e-3)  # the random block is not uniform


def test_first_block_summary_reads_gap_and_shift():
    m = np.array([[0.9, 0.2, 0.5], [0.3, 0.3, 0.95], [0.2, 0.25, 0.8]])  # CLIP B1 best matches robust B2
    boots = np.repeat(m[None, :, 1], 4, axis=0)
    s = cka.first_block_summary(m, boots, ["Emb", "B1", "B2"])
    assert s["gap"] and s["shift"] and s["clip_b1_match"] == "B2"
    assert s["b1_best"].mean == pytest.approx(0.3) and s["b1_diag"].mean == pytest.approx(0.3)


def test_replacement_readings_verdicts():
    import pandas as pd
    rows = []
    for d, rob, clean in (("id", [0, 50, 80, 81, 82], [90, 85, 80, 78, 77]), ("ood", [0, 40, 60, 50, 30], [80, 78, 75, 60, 50])):
        for i, (s, r, c) in enumerate(zip(["none", "Emb", "B1-Attn", "B1-MLP", "Head"], rob, clean)):
            rows.append({"model": "R", "dataset": d, "index": i, "step": s, "clean": c, "clean_low": c - 2, "clean_high": c + 2,
                         "robust": r, "robust_low": r - 2, "robust_high": r + 2})
    r = replacement.readings(pd.DataFrame(rows), source="id")
    assert r["saturation"] == {"R": "B1-Attn"} and r["early_verdict"] == "supports" and r["ood_verdict"] == "supports"


# --- issue 10: interval readings, measure variants, DC and control, re-attacked Shapley ---------

def _curve(robust, half=2.0, dataset="id", clean=None):
    import pandas as pd
    steps = ["none", "Emb", "B1-Attn", "B1-MLP", "B3-MLP", "Head"]
    clean = clean or [80] * len(robust)
    return pd.DataFrame([{"model": "R", "dataset": dataset, "index": i, "step": s, "clean": c, "clean_low": c - half,
                          "clean_high": c + half, "robust": r, "robust_low": r - half, "robust_high": r + half}
                         for i, (s, r, c) in enumerate(zip(steps, robust, clean))])


def test_early_reading_uses_intervals_not_points():
    assert replacement.early_reading(_curve([0, 10, 30, 40, 41, 42])) == "early"
    assert replacement.early_reading(_curve([0, 2, 3, 5, 30, 40])) == "late"
    # the points rise, but every step's interval overlaps "none": nothing is decided
    assert replacement.early_reading(_curve([2, 3, 4, 6, 8, 14], half=7.0)) == "unresolved"
    r = replacement.readings(_curve([2, 3, 4, 6, 8, 14], half=7.0), source="id")
    assert r["early_verdict"] == "cannot decide" and r["unresolved"] == ["R/id"]
    late = replacement.readings(_curve([0, 2, 3, 5, 30, 40]), source="id")
    assert late["early_verdict"] == "contradicts" and late["saturation"] == {"R": "Head"}


def test_ood_reading_needs_both_drops_beyond_the_intervals():
    import pandas as pd
    ood_points_only = _curve([0, 30, 40, 45, 44, 43], dataset="ood", clean=[80, 80, 79, 78, 77, 76])
    frame = pd.concat([_curve([0, 10, 30, 40, 41, 42]), ood_points_only], ignore_index=True)
    assert replacement.readings(frame, source="id")["ood_verdict"] == "cannot decide"
    rise = _curve([0, 30, 40, 45, 50, 60], dataset="ood")
    frame = pd.concat([_curve([0, 10, 30, 40, 41, 42]), rise], ignore_index=True)
    assert replacement.readings(frame, source="id")["ood_verdict"] == "contradicts"


def test_block_feature_measures_agree_with_the_block():
    tower = tiny_tower(0)
    x = images(3)
    blk = tower.transformer.resblocks[0]
    z = attention.block_input(tower, x)
    attn = attention.block_features(tower, x, "attn")
    torch.testing.assert_close(attn, attention.attention_output(tower, x).flatten(1))
    parts = torch.cat([attention.block_features(tower, x, "attn [CLS]").view(3, 1, -1),
                       attention.block_features(tower, x, "attn patches").view(3, -1, 32)], dim=1)
    torch.testing.assert_close(parts.flatten(1), attn)
    torch.testing.assert_close(attention.block_features(tower, x, "block output"), blk(z).flatten(1))
    residual = attention.block_features(tower, x, "after residual")
    torch.testing.assert_close(residual, (z + blk.ls_1(attention.attention_output(tower, x))).flatten(1))
    with pytest.raises(ValueError, match="unknown measure"):
        attention.block_features(tower, x, "mlp")


def test_spectral_dc_is_reported_apart_and_a_tower_matches_itself():
    torch.manual_seed(0)
    standard = torch.randn(32, 3, 4, 4)
    dc_only = standard + 0.05  # a constant added to every kernel changes the DC bin alone
    shift = spectral.spectral_shift(dc_only, standard)
    assert spectral.dc_gain(shift) > 0
    assert spectral.band_gain(shift, 0.0, 0.5) == pytest.approx(0.0, abs=1e-9)  # the other low bins do not move
    assert spectral.low_pass_index(shift) > spectral.low_pass_index(shift, include_dc=False)
    same = spectral.shift_statistic_ci(lambda a, b: spectral.low_pass_index(a) - spectral.low_pass_index(b),
                                       [dc_only, dc_only], standard, n_boot=50)
    assert same.mean == 0.0 and same.low == 0.0 and same.high == 0.0
    ci = spectral.low_pass_index_ci(dc_only, standard, n_boot=50)
    assert ci.mean == pytest.approx(spectral.low_pass_index(shift))


def test_reattacked_shapley_attacks_every_coalition(tmp_cache):
    from radapt_lib.data import ImageSet
    model = tiny_classifier(tiny_tower(0), n_classes=3)
    x = images(12, seed=5)
    y = _labelled(model, x)
    imgs = ImageSet((x * 255).round().to(torch.uint8), y, ("c0", "c1", "c2"), "test")
    res = shapley.head_shapley_reattacked(model, imgs, "pgd", 8 / 255, n_iter=3, seed=0)
    assert res.method == "exact" and res.n_evaluations == 16
    assert res.values.sum() == pytest.approx(res.v_all - res.v_none, abs=1e-9)
    full = evaluation.evaluate(model, imgs, "pgd", 8 / 255, n_iter=3, seed=0)
    assert res.v_all == pytest.approx(full.robust().mean)  # the full coalition is the model itself, attacked as itself
    assert len(list((tmp_cache / "evaluations").glob("*.pt"))) == 17  # 16 coalitions + the full model's own


def test_fixed_example_shapley_is_head_shapley_on_the_attack_s_examples_and_cached(tmp_cache):
    from radapt_lib.data import ImageSet
    model = tiny_classifier(tiny_tower(0), n_classes=3)
    x = images(12, seed=5)
    imgs = ImageSet((x * 255).round().to(torch.uint8), _labelled(model, x), ("c0", "c1", "c2"), "test")
    res, warnings = shapley.head_shapley_fixed_examples(model, imgs, "pgd", 8 / 255, n_iter=3, seed=0)
    adv = evaluation.evaluate(model, imgs, "pgd", 8 / 255, n_iter=3, keep_adv=True, seed=0)
    direct = shapley.head_shapley(model, adv.x_adv, imgs.labels, seed=0)
    assert np.array_equal(res.values, direct.values) and warnings == adv.warnings
    assert len(list((tmp_cache / "analyses").glob("*.pt"))) == 1
    again, _ = shapley.head_shapley_fixed_examples(model, imgs, "pgd", 8 / 255, n_iter=3, seed=0)
    assert np.array_equal(again.values, res.values) and len(list((tmp_cache / "analyses").glob("*.pt"))) == 1
    other, _ = shapley.head_shapley_fixed_examples(model, imgs, "pgd", 4 / 255, n_iter=3, seed=0)  # another eps: its own record
    assert len(list((tmp_cache / "analyses").glob("*.pt"))) == 2


def test_dominance_interval_of_exact_shapley():
    per_image = np.array([[2.0, 4.0, 6.0, 0.0], [-1.0, -1.0, -1.0, -1.0]])  # head 0 helps, head 1 hurts
    res = shapley.ShapleyResult(per_image.mean(axis=1), per_image, None, 0.0, 0.0, "exact", "zero", 4)
    est = shapley.dominance(res)
    assert est.mean == pytest.approx(3.0 - 1.0) and est.low <= est.mean <= est.high


def test_low_high_contrast_is_not_scale_free():
    torch.manual_seed(0)
    standard = torch.randn(32, 3, 4, 4)
    blur = torch.tensor([[1.0, 2.0, 2.0, 1.0]]).T @ torch.tensor([[1.0, 2.0, 2.0, 1.0]]) / 36
    smoothed = standard + 0.5 * blur  # a low-pass addition: low bins gain more than high ones
    big, small = spectral.spectral_shift(smoothed, standard), spectral.spectral_shift(standard + 0.005 * blur, standard)
    assert spectral.low_high_contrast(big) > spectral.low_high_contrast(small) > 0


def test_tradeoff_reading_needs_robust_up_and_clean_down_beyond_the_intervals():
    # in distribution, early swaps: robust 0 -> 40 and clean 80 -> 70 (intervals +-2): the paper's trade-off
    assert replacement.tradeoff_reading(_curve([0, 10, 30, 40, 41, 42], clean=[80, 78, 74, 70, 69, 68])) == "trade-off"
    # robust rises, clean rises clearly: no trade-off
    assert replacement.tradeoff_reading(_curve([0, 10, 30, 40, 41, 42], clean=[80, 82, 84, 86, 86, 86])) == "no trade-off"
    # clean within the intervals: unresolved
    assert replacement.tradeoff_reading(_curve([0, 10, 30, 40, 41, 42], clean=[80, 80, 79, 78, 78, 78])) == "unresolved"
    r = replacement.readings(_curve([0, 10, 30, 40, 41, 42], clean=[80, 78, 74, 70, 69, 68]), source="id")
    assert r["tradeoff"] == {"R": "trade-off"} and r["tradeoff_verdict"] == "supports"
