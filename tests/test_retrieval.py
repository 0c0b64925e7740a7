"""Retrieval (Table 4): the mosaic set, ranks and Recall@k on known answers, the Flickr30k reader, and small real
attacks through the released mosaic CLIP."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from local_data import flickr30k
from radapt_lib import data, models, mosaics, retrieval


def test_mosaics_have_distinct_captions_and_their_images_in_place():
    images, objects, captions = mosaics.test_mosaics(60, seed=3)
    assert images.shape == (60, 3, 32, 32) and images.dtype == torch.uint8 and len(set(captions)) == 60
    assert captions[0] == mosaics.caption(objects[0]) and captions[0].startswith("top: ")
    cells = torch.rand(1, 4, 3, 32, 32)
    mosaic = mosaics.compose(cells)[0]
    for k, (row, col) in enumerate(mosaics.CELLS):  # cell k is image k averaged 2 x 2, in reading order
        assert torch.allclose(mosaic[:, row:row + 16, col:col + 16], F.avg_pool2d(cells[0, k], 2))
    with pytest.raises(ValueError, match="distinct captions"):
        mosaics.test_mosaics(2600)  # 10,000 test images make at most 2,500 mosaics


def test_ranks_and_recall_on_a_known_answer():
    text = torch.eye(4)  # captions 0..3; caption 3 belongs to image 2 as well as caption 2
    owner = torch.tensor([0, 1, 2, 2])
    emb = torch.tensor([[1.0, 0.0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 0.2, 0.8]])
    r = retrieval.ranks(emb, text, owner, first=0)
    assert r.tolist() == [0, 1, 0]  # image 1's caption is second; image 2's best own caption (3) is first
    res = retrieval.RetrievalResult("x", "pgd", 0.0, r.numpy(), np.array([1, 3, 0]))
    assert res.recall(1, "clean").mean == pytest.approx(200 / 3) and res.recall(2, "robust").mean == pytest.approx(200 / 3)
    head = retrieval.image_head(text, owner, 3)
    assert head.shape == (4, 3) and torch.allclose(head[:, 2], F.normalize(torch.tensor([0, 0, 1.0, 1.0]), dim=0))


def test_flickr30k_is_read_in_clip_benchmarks_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("RADAPT_DATA", str(tmp_path))
    with pytest.raises(data.DataNotFoundError, match="Flickr30k.*flickr30k_test_karpathy.txt"):
        retrieval.paper_set(2)
    flickr30k(tmp_path / "paper" / "Flickr30k", n_images=4)
    rset = retrieval.paper_set(3, image_size=32)
    assert rset.images.shape == (3, 3, 32, 32) and len(rset.captions) == 15
    assert torch.equal(rset.caption_image, torch.arange(3).repeat_interleave(5))
    assert "," in rset.captions[0]  # a caption's own commas survive
    (tmp_path / "paper" / "Flickr30k" / "1000092795.jpg").unlink()
    with pytest.raises(data.DataNotFoundError, match="missing"):
        retrieval.paper_set(4, image_size=32)


@pytest.fixture(scope="module")
def mosaic_clip():
    loaded = models.load_model("mini-clip-mosaic")
    rset = retrieval.mini_set(60, seed=5)
    return loaded, rset, retrieval.caption_embeddings(loaded, rset.captions)


def test_the_mosaic_clip_reads_mosaics_that_mini_clip_cannot(mosaic_clip):
    loaded, rset, text = mosaic_clip
    ours = retrieval.evaluate_retrieval(retrieval.retrieval_classifier(loaded, text, rset), rset, text, 0.0)
    base = models.load_model("mini-clip")
    base_text = retrieval.caption_embeddings(base, rset.captions)
    theirs = retrieval.evaluate_retrieval(retrieval.retrieval_classifier(base, base_text, rset), rset, base_text, 0.0)
    assert ours.recall(10, "clean").low > theirs.recall(10, "clean").high


def test_the_attack_lowers_recall_inside_the_ball(mosaic_clip):
    loaded, rset, text = mosaic_clip
    model = retrieval.retrieval_classifier(loaded, text, rset)
    res = retrieval.evaluate_retrieval(model, rset, text, 4 / 255, n_iter=3)
    assert res.recall(10, "robust").mean < res.recall(10, "clean").mean
    assert (res.adv_rank >= 0).all() and res.settings["eps"] == pytest.approx(4 / 255)
    with pytest.raises(ValueError, match="outside"):
        retrieval.evaluate_retrieval(model, rset, text, 4.0)  # eps in 1/255 where [0, 1] is meant
