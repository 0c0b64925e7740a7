import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RADAPT_DATA", str((ROOT.parent / "shared" / "data").resolve()))
torch.set_num_threads(2)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty cache folder, so a test never reads or writes the project's data_cache/."""
    monkeypatch.setenv("RADAPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def tiny_clip():
    from radapt_lib import training

    cfg = training.MiniClipConfig(width=32, layers=2, head_width=16, text_width=32, text_heads=2, text_layers=1,
                                  embed_dim=32, batch_size=16, steps=2, eval_every=1, eval_n=20)
    torch.manual_seed(0)
    return cfg, training.build_mini_clip(cfg).eval()
