"""The paper profile's LVLMs (LLaVA-1.5, Qwen3-VL) and the COCO loader, offline on tiny random-weight models.

The models are the real transformers classes (LlavaForConditionalGeneration, Qwen3VLForConditionalGeneration,
CLIPModel) at toy sizes, with word-level tokenizers built in code: `local_hub`'s builders, which also write these
models into the paper-profile smoke hub. The processors they are checked against are transformers' own
(LlavaProcessor, Qwen2VLImageProcessor, Qwen3VLProcessor).
"""
from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_data import coco as write_coco  # noqa: E402
from local_data import eurosat  # noqa: E402
from local_hub import (QWEN_TEMPLATE, llava_processor, qwen3_vl_processor, qwen_image_processor,  # noqa: E402
                       save_llava, tiny_llava, tiny_qwen3_vl, use_cache, write_llava_repos)

from radapt_lib.defense import AnchorShapeError, GaussianInputFilter, d0_at  # noqa: E402
from radapt_lib.lvlm import coco  # noqa: E402
from radapt_lib.lvlm.base import VisionLanguageModel  # noqa: E402
from radapt_lib.lvlm.hf_anchor import AnchoredAttention  # noqa: E402
from radapt_lib.lvlm.llava import PROMPT, LlavaVLM, load_llava  # noqa: E402
from radapt_lib.lvlm.paper_vlm import ModelUnavailableError  # noqa: E402
from radapt_lib.lvlm.qwen_vl import QwenVLVLM, load_qwen3_vl  # noqa: E402

transformers = pytest.importorskip("transformers")

LLAVA_SIZE, LLAVA_PATCH, QWEN_SIZE = 32, 8, 64
WIDTH, TEXT_LAYERS = 32, 2  # local_hub's smoke-repository models, at small images, twice as wide, two text layers
QWEN_RESIZE = {"shortest_edge": 32 * 32, "longest_edge": 512 * 512}


@pytest.fixture(scope="module")
def llava_parts():
    """(LLaVA, its tokenizer, CLIP, CLIP's tokenizer); CLIP's vision weights are LLaVA's tower, as in LLaVA-1.5."""
    return tiny_llava(size=LLAVA_SIZE, patch=LLAVA_PATCH, width=WIDTH, text_layers=TEXT_LAYERS, seed=0)


@pytest.fixture(scope="module")
def qwen_parts():
    return tiny_qwen3_vl(width=WIDTH, text_layers=TEXT_LAYERS, seed=1)


@pytest.fixture(scope="module")
def llava(llava_parts):
    hf, tok, clip, clip_tok = llava_parts
    return LlavaVLM(hf, tok, clip, clip_tok, name="tiny-llava")


@pytest.fixture(scope="module")
def qwen(qwen_parts):
    hf, tok = qwen_parts
    return QwenVLVLM(hf, tok, image_size=QWEN_SIZE, name="tiny-qwen3-vl", chat_template=QWEN_TEMPLATE)


@pytest.fixture(params=["llava", "qwen"])
def model(request):
    return request.getfixturevalue(request.param)


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _first_attention_output(m, images: torch.Tensor) -> torch.Tensor:
    """What the first encoder block's attention slot returns for `images` (in the model's own layout)."""
    block, attr = m.attention_slot()
    seen = []
    handle = getattr(block, attr).register_forward_hook(lambda _m, _a, out: seen.append(out))
    try:
        with torch.no_grad():
            m.encoder_features(images)
    finally:
        handle.remove()
    out = seen[0]
    return out[0] if isinstance(out, tuple) else out


# --- the protocol on both models ------------------------------------------------------------------------

def test_protocol_forward_and_answer(model):
    assert isinstance(model, VisionLanguageModel)
    x = _images(2, model.image_size)
    feats = model.encoder_features(x)
    assert feats.ndim == 3 and feats.shape[0] == 2 and torch.isfinite(feats).all()
    answers = model.answer(x, ["What is in this image?", "Describe this image briefly in one sentence."],
                           max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    views = model.value_readout(x, 2)
    concepts = model.concept_embeddings(["dog", "cat", "dining table"])
    assert len(views) == 2 and all(v.shape[0] == 2 and v.shape[-1] == concepts.shape[-1] for v in views)
    assert torch.allclose(concepts.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_paper_vlm_reexports():
    from radapt_lib.lvlm import paper_vlm

    assert paper_vlm.LlavaVLM is LlavaVLM and paper_vlm.load_qwen3_vl is load_qwen3_vl
    with pytest.raises(AttributeError):
        paper_vlm.NoSuchModel  # noqa: B018


def test_llava_forward_pass(llava):
    """The wrapper's prompt and pixels run through the whole LLaVA forward (image tokens filled by the projector)."""
    x = _images(1, LLAVA_SIZE)
    inputs = llava.generation_inputs(llava.encoder_pixels(x), ["What is in this image?"])
    logits = llava.hf(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()
    assert int((inputs["input_ids"] == llava.hf.config.image_token_id).sum()) == llava.encoder_features(x).shape[1]


def test_anchor_in_place(model):
    """Defended: the first block's attention output is alpha * A + beta * h (h: the original attention's output)."""
    x = _images(2, model.image_size, seed=3)
    tokens, width = model.anchor_shape()
    anchor = torch.randn(tokens, width, generator=torch.Generator().manual_seed(4))
    defended = model.defended(anchor, alpha=0.7, beta=0.4, d0_224=None)
    h = _first_attention_output(model, x)
    out = _first_attention_output(defended, x)
    tiled = anchor.repeat(2, 1) if model.packed_attention else anchor.expand(2, -1, -1)
    assert torch.allclose(out, 0.7 * tiled + 0.4 * h, atol=1e-5)
    block, attr = model.attention_slot()
    assert not isinstance(getattr(block, attr), AnchoredAttention)  # the original is untouched
    assert all(not p.requires_grad for p in defended.parameters())
    weights = model.hf.get_input_embeddings().weight
    assert defended.hf.get_input_embeddings().weight.data_ptr() == weights.data_ptr()  # shared, not copied


def test_beta_zero_ignores_the_first_attention(model):
    x = _images(2, model.image_size, seed=5)
    defended = model.defended(model.white_anchor(), alpha=1.2, beta=0.0, d0_224=None)
    before = defended.encoder_features(x)
    block, attr = defended.attention_slot()
    fra = getattr(block, attr)
    fra.inner = copy.deepcopy(fra.inner)  # a private copy, so the shared original weights stay as they are
    with torch.no_grad():
        for p in fra.inner.parameters():
            p.normal_()
    calls = []
    fra.inner.register_forward_hook(lambda *a: calls.append(1))
    assert torch.equal(defended.encoder_features(x), before) and not calls


def test_white_anchor_reproduces_the_white_image(model):
    """The white anchor with alpha = 1, beta = 0 is exact on a white image (and the same from a defended copy)."""
    anchor = model.white_anchor()
    assert tuple(anchor.shape) == model.anchor_shape() and anchor.dtype == torch.float32
    defended = model.defended(anchor, alpha=1.0, beta=0.0, d0_224=40)
    assert torch.allclose(defended.white_anchor(), anchor)
    white = torch.ones(1, 3, model.image_size, model.image_size)
    assert torch.allclose(defended.encoder_features(white), model.encoder_features(white), atol=1e-5)


def test_gaussian_input_filter(model):
    x = _images(2, model.image_size, seed=6)
    plain = model.encoder_features(x)
    filtered = model.defended(None, alpha=1.0, beta=0.0, d0_224=40)
    assert isinstance(filtered.input_filter, GaussianInputFilter)
    assert float(filtered.input_filter.d0) == pytest.approx(d0_at(model.image_size, 40))
    assert not torch.allclose(filtered.encoder_features(x), plain, atol=1e-4)
    nothing = model.defended(None, alpha=1.0, beta=0.0, d0_224=None)
    assert torch.equal(nothing.encoder_features(x), plain)


def test_gradients_reach_the_images(model):
    defended = model.defended(model.white_anchor(), alpha=0.8, beta=0.2, d0_224=40)
    for m in (model, defended):
        x = _images(2, model.image_size, seed=7).requires_grad_(True)
        loss = sum(v.square().mean() for v in m.value_readout(x, 2))
        loss.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_anchor_buffer_is_trainable(model):
    with pytest.raises(KeyError, match="defended"):
        model.anchor_buffer()
    defended = model.defended(model.white_anchor(), alpha=0.8, beta=0.2, d0_224=40)
    anchor = defended.anchor_buffer()
    assert tuple(anchor.shape) == model.anchor_shape()
    anchor.requires_grad_(True)
    defended.encoder_features(_images(1, model.image_size)).square().mean().backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0
    anchor.requires_grad_(False)


def test_bad_inputs_name_the_fix(model):
    with pytest.raises(AnchorShapeError, match="white_anchor"):
        model.defended(torch.zeros(3, 5), alpha=1.0, beta=0.0, d0_224=None)
    with pytest.raises(ValueError, match="expected"):
        model.encoder_features(_images(1, model.image_size + 1))


def test_half_precision(model):
    """The paper runs the LVLMs in float16 / bfloat16: filter and normalisation in float32, encoder in half,
    returned tensors float32, the float32 anchor cast at use, gradients still reaching the images and the anchor."""
    half = copy.deepcopy(model)
    half.hf.to(torch.bfloat16)
    if isinstance(half, LlavaVLM):
        half.clip.to(torch.bfloat16)
    defended = half.defended(half.white_anchor(), alpha=0.8, beta=0.2, d0_224=40)
    x = _images(2, model.image_size, seed=12).requires_grad_(True)
    assert defended.encoder_features(x.detach()).dtype == torch.float32
    defended.anchor_buffer().requires_grad_(True)
    views = defended.value_readout(x, 2)
    assert all(v.dtype == torch.float32 for v in views)
    sum(v.square().mean() for v in views).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert defended.anchor_buffer().grad is not None
    assert len(defended.answer(x.detach(), ["What is in this image?"] * 2, max_new_tokens=2)) == 2


# --- prompts and pixels exactly as transformers' processors make them --------------------------------------

def _llava_processor(tok):
    return llava_processor(tok, size=LLAVA_SIZE, patch=LLAVA_PATCH)


def _qwen_image_processor():
    return qwen_image_processor(size=QWEN_RESIZE)


def _qwen_processor(tok):
    return qwen3_vl_processor(tok, size=QWEN_RESIZE)


def _uint8_images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_llava_prompt_matches_the_processor(llava):
    processor = _llava_processor(llava.tokenizer)
    image = Image.fromarray(_uint8_images(1, LLAVA_SIZE)[0])
    prompt = "What is the main object in this image?"
    ids = processor(images=image, text=PROMPT.format(prompt=prompt), return_tensors="pt")["input_ids"][0]
    assert ids.tolist() == llava.prompt_ids(prompt)


def test_qwen_patchify_matches_the_image_processor(qwen):
    raw = _uint8_images(2, QWEN_SIZE)
    ref = _qwen_image_processor()(images=[Image.fromarray(a) for a in raw], return_tensors="pt")
    x = torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255
    values, grid_thw = qwen.patchify(qwen.encoder_pixels(x))
    assert torch.equal(grid_thw, ref["image_grid_thw"])
    assert values.shape == ref["pixel_values"].shape
    assert torch.allclose(values, ref["pixel_values"], atol=1e-5)


def test_qwen_prompt_matches_the_processor(qwen):
    processor = _qwen_processor(qwen.tokenizer)
    image = Image.fromarray(_uint8_images(1, QWEN_SIZE)[0])
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this image?"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ref = processor(images=image, text=text, return_tensors="pt")
    inputs = qwen.generation_inputs(qwen.encoder_pixels(_images(1, QWEN_SIZE)), ["What is in this image?"])
    assert inputs["input_ids"].tolist() == ref["input_ids"].tolist()
    assert inputs["mm_token_type_ids"].tolist() == ref["mm_token_type_ids"].tolist()
    assert torch.equal(inputs["image_grid_thw"], ref["image_grid_thw"])


# --- loaders: the real repository format, offline --------------------------------------------------------

def test_llava_round_trip(tmp_path, llava_parts, llava):
    save_llava(tmp_path / "llava", tmp_path / "clip", *llava_parts, size=LLAVA_SIZE, patch=LLAVA_PATCH)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_llava(repo=str(tmp_path / "llava"), clip_repo=str(tmp_path / "clip"), dtype=torch.float32,
                            device="cpu")
    assert not [w for w in caught if "tower" in str(w.message)]  # the CLIP vision weights are the tower's
    x = _images(2, LLAVA_SIZE, seed=8)
    assert torch.allclose(loaded.encoder_features(x), llava.encoder_features(x), atol=1e-5)
    assert torch.allclose(loaded.concept_embeddings(["dog"]), llava.concept_embeddings(["dog"]), atol=1e-5)
    assert loaded.prompt_ids("What is in this image?") == llava.prompt_ids("What is in this image?")


def test_qwen_round_trip(tmp_path, qwen_parts, qwen):
    hf, tok = qwen_parts
    hf.save_pretrained(tmp_path / "qwen")
    _qwen_processor(tok).save_pretrained(tmp_path / "qwen")
    loaded = load_qwen3_vl(repo=str(tmp_path / "qwen"), image_size=QWEN_SIZE, dtype=torch.float32, device="cpu")
    x = _images(2, QWEN_SIZE, seed=9)
    assert torch.allclose(loaded.encoder_features(x), qwen.encoder_features(x), atol=1e-5)
    assert loaded.prompt_text("What is in this image?") == qwen.prompt_text("What is in this image?")


def test_missing_model_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="hf download"):
        load_llava(repo=str(tmp_path / "no-such-llava"), clip_repo=str(tmp_path / "no-such-clip"), device="cpu")
    with pytest.raises(ModelUnavailableError, match="hf download"):
        load_qwen3_vl(repo=str(tmp_path / "no-such-qwen"), device="cpu")


# --- V-Attack and R-Adapt+ on the tiny models --------------------------------------------------------------

def test_v_attack_step(model):
    from radapt_lib.lvlm.vattack import VAttackConfig, v_attack

    x = _images(2, model.image_size, seed=10)
    for m in (model, model.defended(model.white_anchor(), alpha=0.8, beta=0.2, d0_224=40)):
        cfg = VAttackConfig(steps=1, blocks=2)
        adv = v_attack(m, x, ["dog", "person"], ["cat", "car"], cfg)
        assert adv.shape == x.shape and float(adv.min()) >= 0 and float(adv.max()) <= 1
        assert float((adv - x).abs().max()) <= cfg.eps + 1e-6


def test_anchor_training_step(model):
    from radapt_lib.lvlm.anchor import LvlmAnchorConfig, train_lvlm_anchor

    cfg = LvlmAnchorConfig(n_images=2, epochs=1, batch_size=2, pgd_steps=1)
    run = train_lvlm_anchor(model, _images(2, model.image_size, seed=11), cfg)
    assert tuple(run.anchor.shape) == model.anchor_shape() and torch.isfinite(run.anchor).all()
    assert not torch.equal(run.anchor, model.white_anchor())  # one Adam step moved it
    with pytest.raises(KeyError):
        model.anchor_buffer()  # the model it was trained for stays undefended


# --- COCO -------------------------------------------------------------------------------------------------

def test_coco_vqa_set(tmp_path, monkeypatch):
    expected = write_coco(tmp_path / "paper" / "coco")
    monkeypatch.setenv("RADAPT_DATA", str(tmp_path))
    full = coco.coco_vqa_set(n_images=100, seed=0, image_size=24)
    assert len(full) == len(expected) and full.images.dtype == torch.uint8
    assert tuple(full.images.shape) == (len(expected), 3, 24, 24)
    assert {i: o for i, o in zip(full.image_ids, full.objects)} == expected
    assert len(full.questions) == 3 and full.caption_prompt and "dining table" in full.vocabulary
    assert coco.coco_vqa_set(n_images=2, seed=0, image_size=24).image_ids == full.image_ids[:2]
    assert "man" in coco.accepted_words("person") and coco.accepted_words("dog") == ("dog", "dogs")
    assert coco.names_object("A man rides a horse.", "person") and not coco.names_object("A cat.", "dog")
    assert coco.names_object("two dining tables", "dining table")


def test_coco_missing_names_the_fix(tmp_path, monkeypatch):
    from radapt_lib.data import DataNotFoundError

    monkeypatch.setenv("RADAPT_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="instances_val2017.json"):
        coco.coco_vqa_set(n_images=3)
    write_coco(tmp_path / "paper" / "coco")
    (tmp_path / "paper" / "coco" / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="000000000002.jpg is missing"):
        coco.coco_vqa_set(n_images=10)


# --- Tables 5 / 11 under the paper profile, at smoke size ---------------------------------------------------

@pytest.fixture
def one_thread():
    """Toy matmuls: a thread pool only adds waits (30x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_run_paper_study_at_smoke_size(tmp_path, tmp_cache, monkeypatch, one_thread):
    """`run_paper_study` on the local hub's random-weight LLaVA-1.5 (default repositories, offline): the first COCO
    images unscreened, one anchor trained on the smoke R-Adapt+ split and cached, one row per setting."""
    from radapt_lib import cache, config
    from radapt_lib.lvlm.paper_study import run_paper_study
    from radapt_lib.lvlm.vattack import VAttackConfig

    write_llava_repos(tmp_path / "hub")
    use_cache(monkeypatch, tmp_path / "hub")
    write_coco(tmp_path / "data" / "paper" / "coco")
    eurosat(tmp_path / "data" / "paper" / "EuroSAT", per_class=4)
    monkeypatch.setenv("RADAPT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(config.PAPER_SMOKE_ENV, "1")
    monkeypatch.setitem(config.PROFILE_DEFAULTS, "paper", config.PAPER_SMOKE_DEFAULTS)  # as at import with the env
    study = run_paper_study("llava-1.5", 2, 0, [4], VAttackConfig(steps=1), progress=False)
    assert study.settings() == [None, 4] and len(study.vqa) == 2 and study.vqa.screened == 2
    assert all(o != t for o, t in zip(study.vqa.objects, study.vqa.targets))
    assert study.results[4].clean.shape == (4, 2)  # caption + 3 questions, per image
    anchors = [key for kind, key in cache.COMPUTED if kind == "lvlm_anchor"]
    spec = cache.load_checked(tmp_cache / "lvlm_anchor" / f"{anchors[-1]}.pt")["spec"]
    assert spec["model"]["repos"]["lvlm"]["revision"] and spec["config"]["n_images"] == 4
    computed = len(cache.COMPUTED)
    again = run_paper_study("llava-1.5", 2, 0, [4], VAttackConfig(steps=1), progress=False)
    assert len(cache.COMPUTED) == computed  # anchor and rows read from the cache
    assert (again.results[4].robust == study.results[4].robust).all()
