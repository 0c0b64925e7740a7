"""The page contract's library side: standard AutoAttack, every pyautoattack part end to end, the
beta = 0 anchor's output, and cache keys that see code changes."""
import shutil

import pytest
import torch
import torch.nn.functional as F

from radapt_lib import attacks, cache, defense, evaluation
from radapt_lib.data import ImageSet
from radapt_lib.training import MiniClipConfig, build_mini_clip
from radapt_lib.zeroshot import ZeroShotClassifier

EPS = 8 / 255


def tiny(classes=10, seed=0):
    torch.manual_seed(seed)
    cfg = MiniClipConfig(width=32, layers=2, head_width=16, patch_size=4, image_size=16, text_width=32, text_heads=2,
                         text_layers=1, embed_dim=16)
    head = F.normalize(torch.randn(cfg.embed_dim, classes), dim=0)
    clf = ZeroShotClassifier(build_mini_clip(cfg).visual, head, (0.5,) * 3, (0.25,) * 3, [f"c{i}" for i in range(classes)])
    return clf.eval().requires_grad_(False)


def correct_batch(model, n=6, seed=0):
    """Images the model classifies right (its own predictions as labels), so attacks have work to do."""
    x = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)


def test_autoattack_is_standard_unless_overridden(monkeypatch):
    """Pins what reaches pyautoattack: 100 iterations, 9 targets, 5000 Square queries, 1 restart."""
    from pyautoattack import AutoAttack

    seen = {}

    def capture(self, x, y, batch_size=None, **kwargs):
        seen.update(version=self.version, runs=list(self.attacks_to_run), apgd=(self.apgd.n_iter, self.apgd.n_restarts),
                    apgd_t=(self.apgd_targeted.n_iter, self.apgd_targeted.n_target_classes),
                    fab=(self.fab.n_iter, self.fab.n_target_classes, self.fab.n_restarts), square=self.square.n_queries)
        return x.clone(), None

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", capture)
    model = tiny()
    x, y = correct_batch(model, 2)
    result = attacks.attack(model, x, y, "autoattack", 4 / 255)
    assert seen == {"version": "standard", "runs": ["apgd-ce", "apgd-t", "fab-t", "square"], "apgd": (100, 1),
                    "apgd_t": (100, 9), "fab": (100, 9, 1), "square": 5000}
    assert not result.warnings
    result = attacks.attack(model, x, y, "autoattack", 4 / 255, n_iter=20, n_queries=5000)
    assert seen["apgd"] == (20, 1) and seen["square"] == 5000
    assert result.warnings == ["non-standard AutoAttack: n_iter=20"]


def test_autoattack_targets_never_exceed_the_other_classes():
    assert attacks.resolve_settings("autoattack", n_classes=4)["n_target_classes"] == 3
    assert attacks.resolve_settings("autoattack", n_classes=100)["n_target_classes"] == 9
    assert attacks.resolve_settings("apgd-ce")["n_iter"] == 10
    with pytest.raises(ValueError, match="n_iter=0"):
        attacks.resolve_settings("pgd", n_iter=0)


@pytest.mark.parametrize("name, settings", [("apgd-dlr", {"n_iter": 5}), ("fab", {"n_iter": 5}),
                                            ("autoattack", {})])
def test_pyautoattack_parts_run_end_to_end_inside_the_ball(name, settings):
    model = tiny()
    x, y = correct_batch(model)
    result = attacks.attack(model, x, y, name, EPS, **settings)
    attacks.check_perturbation(x, result.x_adv, EPS)
    with torch.no_grad():
        flipped = (model(result.x_adv).argmax(1) != y).sum().item()
    assert flipped >= 1  # a random tiny model at 8/255: every part finds some adversarial examples


def test_anchor_with_beta_zero_outputs_alpha_times_anchor():
    model = tiny()
    tower = defense.tower_of(model)
    anchor = torch.randn(*defense.token_shape(tower))
    defended = defense.defend(model, anchor, alpha=1.2, beta=0.0, d0_224=None)
    fra = defense.first_block(defense.tower_of(defended)).attn
    q = torch.randn(3, *anchor.shape)
    out, _ = fra(q, q, q)
    assert torch.allclose(out, (1.2 * anchor).expand(3, -1, -1))
    other, _ = fra(torch.randn_like(q), None, None)
    assert torch.equal(out, other)  # the sublayer ignores its input; the block's residual still carries it
    x, _ = correct_batch(model, 4)
    with torch.no_grad():
        assert not torch.allclose(defended(x), model(x))


def test_code_fingerprint_sees_an_edit_to_its_modules_only(tmp_path, monkeypatch):
    before = {m: cache.code_fingerprint(m) for m in ("attacks", "data")}
    before_eval = cache.code_fingerprint(*evaluation.EVALUATION_CODE)
    copy = tmp_path / "radapt_lib"
    shutil.copytree(cache.LIBRARY_ROOT, copy)
    (copy / "attacks.py").write_text((copy / "attacks.py").read_text() + "\n# an edit\n")
    monkeypatch.setattr(cache, "LIBRARY_ROOT", copy)
    cache.code_fingerprint.cache_clear()
    try:
        assert cache.code_fingerprint("attacks") != before["attacks"]
        assert cache.code_fingerprint(*evaluation.EVALUATION_CODE) != before_eval
        assert cache.code_fingerprint("data") == before["data"]
    finally:
        cache.code_fingerprint.cache_clear()


def test_evaluation_key_holds_code_and_versions(tmp_cache, monkeypatch):
    model = tiny()
    x, y = correct_batch(model, 4)
    images = ImageSet((x * 255).round().to(torch.uint8), y, model.classnames, "synthetic")
    first = evaluation.evaluate(model, images, "pgd", 2 / 255, n_iter=2)
    files = sorted((tmp_cache / "evaluations").glob("*.pt"))
    payload = cache.load_checked(files[0])
    assert payload["spec"]["versions"] == cache.library_versions() and "torch" in payload["spec"]["versions"]
    monkeypatch.setattr(cache, "code_fingerprint", lambda *m: "edited")
    evaluation.evaluate(model, images, "pgd", 2 / 255, n_iter=2)
    assert len(list((tmp_cache / "evaluations").glob("*.pt"))) == 2  # the edited code missed the old entry
    assert first.settings["n_iter"] == 2


def test_the_protocol_words_name_standard_or_the_override():
    assert attacks.describe("autoattack", n_classes=6).startswith("AutoAttack standard")
    assert "(5 target classes), 100 iterations" in attacks.describe("autoattack", n_classes=6)
    text = attacks.describe("autoattack", n_iter=20, n_classes=10)
    assert "NON-STANDARD (n_iter=20 instead of 100)" in text and "9 target classes" in text
    assert attacks.describe("apgd-ce", n_iter=20) == "apgd-ce, 20 iterations, 1 restart(s)"
