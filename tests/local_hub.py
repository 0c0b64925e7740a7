"""A Hugging Face hub cache on disk, in the layout `huggingface_hub` reads offline, holding open_clip checkpoints
in the formats the paper's repositories publish (README, "The paper profile's checkpoints"):

- `hf-hub:chs20/fare4-clip` and its siblings: `open_clip_config.json` ({"model_cfg", "preprocess_cfg"}, as
  open_clip's own `save_config_for_hf` writes it) beside `open_clip_pytorch_model.bin` (a torch state dict);
- `pretrained="openai"`: open_clip reads `timm/vit_*_clip_224.openai` and its `open_clip_pytorch_model.bin`.

The weights are random; what is tested is that the project's normal loading code finds and loads them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from open_clip.push_to_hf_hub import save_config_for_hf

WEIGHTS = "open_clip_pytorch_model.bin"
SAFE_WEIGHTS = "open_clip_model.safetensors"  # open_clip tries it before WEIGHTS
CONFIG = "open_clip_config.json"
OPENAI_REPOS = {"ViT-B-32-quickgelu": "timm/vit_base_patch32_clip_224.openai",
                "ViT-L-14-quickgelu": "timm/vit_large_patch14_clip_224.openai"}


def snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in a hub cache (models--ORG--NAME/snapshots/<rev>), with refs/main naming it."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()  # any 40-hex commit id
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    folder = root / "snapshots" / revision
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_open_clip_repo(cache: Path, repo_id: str, model: torch.nn.Module, model_cfg: dict | None,
                         weights: bool = True, safetensors: bool = False) -> Path:
    """A chs20-style repo (config + .bin), or with model_cfg None an OpenAI-tag repo's weights; `safetensors` adds
    the .safetensors copy that the timm OpenAI repos also hold."""
    from safetensors.torch import save_file

    folder = snapshot(cache, repo_id)
    if model_cfg is not None:
        save_config_for_hf(model, folder / CONFIG, model_config=model_cfg)
    if weights:
        torch.save(model.state_dict(), folder / WEIGHTS)
    if weights and safetensors:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / SAFE_WEIGHTS))
    return folder


def use_cache(monkeypatch, cache: Path) -> None:
    """Point huggingface_hub at `cache`, offline (its constants are read from the environment at import)."""
    import huggingface_hub.constants as hub

    for key, value in {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


# --- the LVLMs of Tables 5, 10 and 11 (transformers checkpoints, as save_pretrained writes them) -----------------
# Random weights at toy widths, but the real geometry where the page reads it (LLaVA: CLIP-L/14 at 336 px, 576
# image tokens; Qwen3-VL: 16 px patches, 2 x 2 merges, a DeepStack level), so `load_llava()` / `load_qwen3_vl()` run
# unchanged on their default repositories. The tokenizers are word-level with the prompts' and COCO's words.
# tests/test_lvlm_paper.py builds the same models smaller (`tiny_llava`, `tiny_qwen3_vl`) and checks them in memory.
LVLM_WORDS = ("USER", "ASSISTANT", "user", "assistant", "system", ":", "?", ".", ",", "a", "an", "the", "photo", "of",
              "is", "in", "this", "image", "picture", "shown", "What", "what", "Which", "object", "main", "largest",
              "Describe", "briefly", "one", "sentence", "Answer", "person", "car", "dog", "dining", "table", "man",
              "cat", "woman")
LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>", "<unk>"]
CLIP_SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<unk>"]
# One user turn [image, text] with a generation prompt, rendered as Qwen3-VL's own template renders it.
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def word_tokenizer(specials: list[str], bos: str | None = None, eos: str | None = None, **named: str):
    """A word-level fast tokenizer (whitespace and punctuation split) over `specials` + LVLM_WORDS; (it, vocab)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate([*specials, *LVLM_WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos or eos:
        single = " ".join(x for x in (bos, "$A", eos) if x)
        tok.post_processor = processors.TemplateProcessing(
            single=single, special_tokens=[(t, vocab[t]) for t in (bos, eos) if t])
    given = {"bos_token": bos, "eos_token": eos, **named}
    extra = [t for t in specials if t not in given.values() and t != "<unk>"]
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", extra_special_tokens=extra,
                                                **{k: v for k, v in given.items() if v})
    return fast, vocab


def tiny_llava(size: int = 336, patch: int = 14, width: int = 16, text_layers: int = 1, seed: int = 0):
    """LLaVA-1.5 (a 3-block CLIP ViT tower at `size` px in `patch` px patches, a Llama of `text_layers` layers, all
    `width` wide) and the CLIP model its tower comes from, whose vision weights are the tower's (as
    openai/clip-vit-large-patch14-336's are llava-1.5's): (llava, its tokenizer, clip, clip's tokenizer)."""
    import transformers

    tok, vocab = word_tokenizer(LLAVA_SPECIALS, bos="<s>", eos="</s>", pad_token="<pad>")
    vision = transformers.CLIPVisionConfig(image_size=size, patch_size=patch, hidden_size=width,
                                           intermediate_size=2 * width, num_hidden_layers=3, num_attention_heads=2,
                                           projection_dim=16)
    text = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width,
                                    num_hidden_layers=text_layers, num_attention_heads=2, num_key_value_heads=1,
                                    max_position_embeddings=1024, bos_token_id=vocab["<s>"],
                                    eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"])
    cfg = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_id=vocab["<image>"],
                                   vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    llava = transformers.LlavaForConditionalGeneration(cfg).eval()

    clip_tok, clip_vocab = word_tokenizer(CLIP_SPECIALS, bos="<|startoftext|>", eos="<|endoftext|>",
                                          pad_token="<|endoftext|>")
    clip_text = dict(vocab_size=len(clip_vocab), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=32, bos_token_id=clip_vocab["<|startoftext|>"],
                     eos_token_id=clip_vocab["<|endoftext|>"], pad_token_id=clip_vocab["<|endoftext|>"])
    clip = transformers.CLIPModel(transformers.CLIPConfig(text_config=clip_text, vision_config=vision.to_dict(),
                                                          projection_dim=16)).eval()
    clip.vision_model.load_state_dict(llava.model.vision_tower.state_dict())
    return llava, tok, clip, clip_tok


def llava_processor(tok, size: int = 336, patch: int = 14):
    """LLaVA-1.5's LlavaProcessor (CLIP's image processor at `size` px, OpenAI CLIP normalisation) around `tok`."""
    import transformers

    from radapt_lib.lvlm.llava import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    images = transformers.CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                             image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD))
    return transformers.LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch,
                                       vision_feature_select_strategy="default", num_additional_image_tokens=1)


def save_llava(llava_dir: Path, clip_dir: Path, llava, tok, clip, clip_tok, size: int = 336, patch: int = 14) -> None:
    """`tiny_llava`'s four parts as the two repositories hold them: model + processor, CLIP model + tokenizer +
    image processor."""
    processor = llava_processor(tok, size, patch)
    llava.save_pretrained(llava_dir)
    processor.save_pretrained(llava_dir)
    clip.save_pretrained(clip_dir)
    clip_tok.save_pretrained(clip_dir)
    processor.image_processor.save_pretrained(clip_dir)


def write_llava_repos(cache: Path, seed: int = 0) -> tuple[Path, Path]:
    """LLaVA-1.5 and its CLIP (`tiny_llava` at the real 336 px / 14 px geometry) in the hub cache at their default
    repositories: (llava folder, clip folder)."""
    from radapt_lib.lvlm.llava import CLIP_REPO, LLAVA_REPO

    llava_dir, clip_dir = snapshot(cache, LLAVA_REPO), snapshot(cache, CLIP_REPO)
    save_llava(llava_dir, clip_dir, *tiny_llava(seed=seed))
    return llava_dir, clip_dir


def tiny_qwen3_vl(width: int = 16, text_layers: int = 1, seed: int = 1):
    """Qwen3-VL (a 3-block vision tower with one DeepStack level, 16 px patches merged 2 x 2, a text model of
    `text_layers` layers, all `width` wide) with its tokenizer, generation stopping at <|im_end|> as the Instruct
    model's generation_config does: (model, tokenizer)."""
    import transformers

    tok, vocab = word_tokenizer(QWEN_SPECIALS, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    head_dim = width // 2
    vision = dict(depth=3, hidden_size=width, intermediate_size=2 * width, num_heads=2, patch_size=16,
                  temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=width, num_position_embeddings=16,
                  deepstack_visual_indexes=[1])
    text = dict(vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=text_layers,
                num_attention_heads=2, num_key_value_heads=1, head_dim=head_dim, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                 "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8],
                                 "mrope_interleaved": True})
    cfg = transformers.Qwen3VLConfig(vision_config=vision, text_config=text, image_token_id=vocab["<|image_pad|>"],
                                     video_token_id=vocab["<|video_pad|>"],
                                     vision_start_token_id=vocab["<|vision_start|>"],
                                     vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(seed)
    qwen = transformers.Qwen3VLForConditionalGeneration(cfg).eval()
    qwen.generation_config.eos_token_id = vocab["<|im_end|>"]
    return qwen, tok


def qwen_image_processor(**options):
    """Qwen3-VL's image processor (Qwen2VLImageProcessor: 16 px patches, 2 x 2 merges, its normalisation)."""
    import transformers

    from radapt_lib.lvlm.qwen_vl import QWEN_MEAN, QWEN_STD

    return transformers.Qwen2VLImageProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                              image_mean=list(QWEN_MEAN), image_std=list(QWEN_STD), **options)


def qwen3_vl_processor(tok, **image_options):
    """Qwen3VLProcessor (image and video processors, QWEN_TEMPLATE as chat template) around `tok`; `image_options`
    go to `qwen_image_processor`."""
    import transformers

    video = transformers.Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2)
    return transformers.Qwen3VLProcessor(image_processor=qwen_image_processor(**image_options), tokenizer=tok,
                                         video_processor=video, chat_template=QWEN_TEMPLATE)


def write_qwen3_vl_repo(cache: Path, seed: int = 1) -> Path:
    """Qwen3-VL (`tiny_qwen3_vl`, with its processor) in the hub cache at its default repository: the folder."""
    from radapt_lib.lvlm.qwen_vl import QWEN_REPO

    qwen, tok = tiny_qwen3_vl(seed=seed)
    folder = snapshot(cache, QWEN_REPO)
    qwen.save_pretrained(folder)
    qwen3_vl_processor(tok).save_pretrained(folder)
    return folder
