"""The multi-label PAN learns to use its query on vg-synth (pan.data.vg_synth), in about a CPU minute.

`pan train --dataset vg --backbone small-cnn --model pan-h` trains PAN[H] (sigmoid gates after block2 and block3, the
hard attention on block4) on 300 tiny (64 px) images; on the test split it must
beat the attribute prior (each attribute scored by its training frequency for the queried class) by a wide margin in
weighted mAP, put several times uniform attention's mass on the queried object's box, and fall back to about the
prior when asked about another object of the same image (so its answers follow the query, not the image).
"""

from __future__ import annotations

import pytest
import torch

from pan.cli.main import main
from pan.data.vg_synth import write_vg_synth
from pan.data.visual_genome import VisualGenome
from pan.evaluation.query_check import query_check
from pan.train.real_images import load_real_model

SIZE, IMAGES, EPOCHS = 64, 300, 7


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("vg-synth")
    write_vg_synth(root / "data", IMAGES, seed=0, image_size=SIZE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two spinning threads on a busy 2-core machine run ~10x slower than one
    try:
        rc = main(["train", "--dataset", "vg", "--data-dir", str(root / "data"), "--backbone", "small-cnn",
                   "--model", "pan-h", "--image-size", str(SIZE), "--min-count", "10", "--epochs", str(EPOCHS),
                   "--batch-size", "16", "--lr", "1e-3", "--backbone-lr", "1e-3", "--decay-factor", "1.0",
                   "--workers", "0", "--backend", "torch", "--device", "cpu", "--out", str(root / "run"), "--quiet"])
        assert rc == 0
        model, cfg, _ = load_real_model(root / "run" / "best.pt", backend="torch")
        assert cfg.backbone == "small-cnn"
        train = VisualGenome(root / "data", "train", min_count=10, cache_dir=None)
        test = VisualGenome(root / "data", "test", min_count=10, cache_dir=None)
        return query_check(model, train, test, image_size=SIZE)
    finally:
        torch.set_num_threads(threads)


def test_pan_beats_the_attribute_prior_by_a_wide_margin(report):
    assert report["weighted_map"] >= report["prior_weighted_map"] + 0.15, report


def test_attention_lands_on_the_queried_object(report):
    assert report["tpr"] >= 3 * report["uniform_tpr"], report


def test_asking_about_another_object_falls_back_to_about_the_prior(report):
    assert report["swapped_weighted_map"] <= report["prior_weighted_map"] + 0.05, report
    assert report["swapped_tpr"] <= report["tpr"] / 2, report
