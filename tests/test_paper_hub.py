"""The paper profile's loading path, offline: `load_model` reads a local Hugging Face cache in the real repos' formats."""
import open_clip
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIP

from local_hub import OPENAI_REPOS, use_cache, write_open_clip_repo
from radapt_lib import models

# A small model in a chs20 repo's config format (the real ones hold ViT-L/14 with "quick_gelu": "TRUE").
SMALL_CFG = {"embed_dim": 64, "quick_gelu": "TRUE",
             "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}


def _small_clip() -> CLIP:
    cfg = SMALL_CFG
    model = CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"], quick_gelu=True).eval()
    model.visual.image_mean, model.visual.image_std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD  # as create_model sets
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    use_cache(monkeypatch, tmp_path / "hub")
    return tmp_path / "hub"


def test_the_openai_tag_loads_from_the_hub_cache_with_quickgelu(hub):
    torch.manual_seed(0)
    published = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    write_open_clip_repo(hub, OPENAI_REPOS["ViT-B-32-quickgelu"], published, model_cfg=None, safetensors=True)
    loaded = models.load_model("clip-vit-b-32", device=torch.device("cpu"))
    assert _same_weights(loaded.clip, published)  # the released weights, not a random init
    assert type(loaded.clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    clf = models.classifier(loaded, ["cat", "dog"], templates=["a photo of a {}."])
    assert clf(torch.rand(1, 3, 224, 224)).shape == (1, 2)


def test_a_chs20_style_repo_loads_its_own_config_and_weights(hub):
    torch.manual_seed(1)
    published = _small_clip()
    write_open_clip_repo(hub, "chs20/fare4-clip", published, model_cfg=SMALL_CFG)
    loaded = models.load_model("fare4-vit-l-14", device=torch.device("cpu"))
    assert _same_weights(loaded.clip, published)
    assert loaded.info["open_clip"] == "hf-hub:chs20/fare4-clip"
    assert type(loaded.clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    clf = models.classifier(loaded, ["cat", "dog", "ship"], templates=["a photo of a {}."])
    assert clf(torch.rand(2, 3, 224, 224)).shape == (2, 3)


def test_a_repo_without_its_weights_file_is_an_error_not_random_weights(hub):
    write_open_clip_repo(hub, "chs20/tecoa4-clip", _small_clip(), model_cfg=SMALL_CFG, weights=False)
    with pytest.raises(models.WeightsUnavailableError, match="chs20/tecoa4-clip.*HF_HUB_CACHE"):
        models.load_model("tecoa4-vit-l-14")


def test_a_model_missing_from_the_cache_names_the_fix(hub):
    with pytest.raises(models.WeightsUnavailableError, match="not available offline.*HF_HUB_OFFLINE=1"):
        models.load_model("clip-vit-l-14")
