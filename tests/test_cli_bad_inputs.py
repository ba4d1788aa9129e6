"""Every `pan` subcommand with a bad value of each of its arguments: exit status 2 and ONE line on stderr that names
the argument, no traceback, nothing written. In-process (``pan.cli.main.main``), so the whole table takes seconds.

Placeholders in an argv: {file} an existing text file, {dir} a directory holding a file, {empty} an empty
directory, {missing} a path that does not exist, {under} a path below a file (cannot be created), {png} / {json}
existing files of those kinds, {npz0} an empty .npz, {ckpt} / {vgckpt} readable checkpoints (of no usable
model) of a synthetic-data and of a Visual Genome run.
"""

from __future__ import annotations

import pytest
import torch

from pan.cli.main import main

NO_GPU = not torch.cuda.is_available()
T = ["--train-file", "{npz0}", "--val-file", "{npz0}"]
VG = ["--dataset", "vg", "--data-dir", "{empty}"]

CASES = [
    # demo
    (["demo", "--model", "resnet"], "--model"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--minutes", "-1"], "--minutes"),
    (["demo", "--epochs", "1", "--minutes", "1"], "--minutes"),
    (["demo", "--full", "--minutes", "5"], "--minutes"),
    pytest.param(["demo", "--full"], "--full", marks=pytest.mark.skipif(not NO_GPU, reason="a GPU is present")),
    (["demo", "--backend", "bogus"], "--backend"),
    (["demo", "--backend", "cuda", "--device", "cpu"], "--backend cuda"),
    (["demo", "--device", "bogus"], "--device"),
    (["demo", "--seed", "-1"], "--seed"),
    (["demo", "--out", "{file}"], "--out"),
    (["demo", "--out", "{dir}"], "--out"),
    (["demo", "--out", "{under}"], "--out"),
    (["demo", "--resume", "--out", "{empty}"], "--resume"),
    (["demo", "--pretrained", "{missing}"], "--pretrained"),
    (["demo", "--pretrained", "{file}"], "--pretrained"),
    (["demo", "--pretrained", "--epochs", "2"], "--epochs"),
    # data generate
    (["data", "generate", "--dataset", "nope", "--out", "{missing}"], "--dataset"),
    (["data", "generate", "--dataset", "mref", "--split", "nope", "--out", "{missing}"], "--split"),
    (["data", "generate", "--dataset", "mref", "--split", "val", "--num-examples", "0", "--out", "{missing}"],
     "--num-examples"),
    (["data", "generate", "--dataset", "mref", "--split", "val", "--num-examples", "1000000000", "--out",
      "{missing}"], "--num-examples"),
    (["data", "generate", "--dataset", "mref", "--num-examples", "10", "--out", "{missing}"], "--num-examples"),
    (["data", "generate", "--dataset", "mref", "--seed", "-3", "--out", "{missing}"], "--seed"),
    (["data", "generate", "--dataset", "mref", "--mnist-dir", "{missing}", "--out", "{missing}"], "--mnist-dir"),
    (["data", "generate", "--dataset", "mbg", "--backgrounds-dir", "{missing}", "--out", "{missing}"],
     "--backgrounds-dir"),
    (["data", "generate", "--dataset", "mref", "--backgrounds-dir", "{empty}", "--out", "{missing}"],
     "--backgrounds-dir"),
    (["data", "generate", "--dataset", "mref", "--cache-dir", "{file}", "--out", "{missing}"], "--cache-dir"),
    (["data", "generate", "--dataset", "mref", "--workers", "0", "--out", "{missing}"], "--workers"),
    (["data", "generate", "--dataset", "mref", "--clear-border", "-1", "--out", "{missing}"], "--clear-border"),
    (["data", "generate", "--dataset", "mref", "--clear-border", "21", "--out", "{missing}"], "--clear-border"),
    (["data", "generate", "--dataset", "vg-synth", "--clear-border", "6", "--out", "{missing}"], "--clear-border"),
    (["data", "preview", "--dataset", "mref", "--clear-border", "21", "--out", "{missing}.png"], "--clear-border"),
    (["data", "generate", "--dataset", "mref", "--out", "{file}"], "--out"),
    (["data", "generate", "--dataset", "mref", "--split", "val", "--out", "{under}"], "--out"),
    (["data", "generate", "--dataset", "mref"], "--out"),
    # data preview
    (["data", "preview", "--dataset", "nope", "--out", "{missing}.png"], "--dataset"),
    (["data", "preview", "--dataset", "mref", "--split", "nope", "--out", "{missing}.png"], "--split"),
    (["data", "preview", "--dataset", "mref", "--num-images", "0", "--out", "{missing}.png"], "--num-images"),
    (["data", "preview", "--dataset", "mref", "--cols", "0", "--out", "{missing}.png"], "--cols"),
    (["data", "preview", "--dataset", "mref", "--seed", "-1", "--out", "{missing}.png"], "--seed"),
    (["data", "preview", "--dataset", "mref", "--mnist-dir", "{file}", "--out", "{missing}.png"], "--mnist-dir"),
    (["data", "preview", "--dataset", "mref", "--cache-dir", "{file}", "--out", "{missing}.png"], "--cache-dir"),
    (["data", "preview", "--dataset", "mref", "--workers", "-2", "--out", "{missing}.png"], "--workers"),
    (["data", "preview", "--dataset", "mref", "--out", "{dir}"], "--out"),
    (["data", "preview", "--dataset", "mref", "--out", "{file}"], "--out"),
    (["data", "preview", "--dataset", "mref", "--out", "{png}"], "--out"),
    (["data", "preview", "--dataset", "mref", "--out", "{under}.png"], "--out"),
    # train
    (["train", "--model", "resnet"], "--model"),
    (["train", "--dataset", "cifar"], "--dataset"),
    (["train", "--num-train", "0"], "--num-train"),
    (["train", "--num-train", "100"], "--num-train 100"),  # smaller than the default batch of 200
    (["train", "--num-val", "0"], "--num-val"),
    (["train", "--data-seed", "-1"], "--data-seed"),
    (["train", "--train-file", "{npz0}"], "--train-file"),
    (["train", "--val-file", "{npz0}"], "--val-file"),
    (["train", "--train-file", "{missing}", "--val-file", "{npz0}"], "--train-file"),
    (["train", "--train-file", "{dir}", "--val-file", "{npz0}"], "--train-file"),
    (["train", *T], "--train-file"),
    (["train", "--train-file", "{file}", "--val-file", "{npz0}"], "--train-file"),
    (["train", "--mnist-dir", "{missing}"], "--mnist-dir"),
    (["train", "--cache-dir", "{file}"], "--cache-dir"),
    (["train", "--recipe", "nope"], "--recipe"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--optimizer", "sgd"], "--optimizer"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--lr-grid", "0.1,x"], "--lr-grid"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--patience", "-1"], "--patience"),
    (["train", "--clip-norm", "-1"], "--clip-norm"),
    (["train", "--decay-start", "-1"], "--decay-start"),
    (["train", "--decay-every", "0"], "--decay-every"),
    (["train", "--decay-factor", "2"], "--decay-factor"),
    (["train", "--gate-sparsity", "-1"], "--gate-sparsity"),
    (["train", "--model", "pan-h", "--gate-sparsity", "0.1,0.2"], "--gate-sparsity"),  # pan-h has 3 gates
    (["train", "--gate-sparsity-kind", "nope"], "--gate-sparsity-kind"),
    (["train", "--gate-sparsity-start", "-1"], "--gate-sparsity-start"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--head-dropout", "-0.1"], "--head-dropout"),
    (["train", "--head-dropout", "1"], "--head-dropout"),
    (["train", "--model", "uniform", "--head-dropout", "0.5"], "--head-dropout"),
    (["train", *VG, "--head-dropout", "0.5"], "--head-dropout"),
    (["train", "--augment-shift", "-1"], "--augment-shift"),
    (["train", "--augment-shift", "100"], "--augment-shift"),
    (["train", "--dataset", "mbg", "--augment-shift", "4"], "--augment-shift"),
    (["train", *VG, "--augment-shift", "4"], "--augment-shift"),
    (["train", "--init-from", "{missing}"], "--init-from"),
    (["train", "--init-from", "{file}"], "--init-from"),
    (["train", "--init-from", "{ckpt}"], "--init-from"),  # a san checkpoint for the default pan-h-ctx
    (["train", "--model", "san", "--init-from", "{ckpt}"], "--init-from"),  # its (empty) weights do not fit
    (["train", "--init-from", "{vgckpt}"], "--init-from"),
    (["train", *VG, "--init-from", "{ckpt}"], "--init-from"),
    (["train", *VG, "--gate-sparsity", "0.3"], "--gate-sparsity"),  # MREF-only options: refused, not ignored
    (["train", *VG, "--patience", "3"], "--patience"),
    (["train", *VG, "--num-train", "100"], "--num-train"),
    (["train", *VG, "--no-cache"], "--no-cache"),
    (["train", *VG, "--compile-mode", "max-autotune"], "--compile-mode"),
    (["train", *VG, "--recipe", "cpu"], "--recipe"),
    (["train", *VG, "--recipe", "paper"], "--recipe"),  # the default value, given: refused all the same
    (["train", "--backend", "bogus"], "--backend"),
    (["train", "--backend", "cuda", "--device", "cpu"], "--backend cuda"),
    (["train", "--device", "bogus"], "--device"),
    (["train", "--compile-mode", "fastest"], "--compile-mode"),
    (["train", "--eval-batch-size", "0"], "--eval-batch-size"),
    (["train", "--checkpoint-every", "-1"], "--checkpoint-every"),
    (["train", "--out", "{file}"], "--out"),
    (["train", "--out", "{dir}"], "--out"),
    (["train", "--out", "{under}"], "--out"),
    (["train", "--resume", "--out", "{empty}"], "--resume"),
    (["train", "--dataset", "vg"], "--data-dir"),
    (["train", *VG, "--image-size", "0"], "--image-size"),
    (["train", *VG, "--min-count", "-1"], "--min-count"),
    (["train", *VG, "--max-train", "-1"], "--max-train"),
    (["train", *VG, "--max-val", "-1"], "--max-val"),
    (["train", *VG, "--workers", "-1"], "--workers"),
    (["train", *VG, "--backbone-lr", "0"], "--backbone-lr"),
    (["train", *VG, "--backbone", "resnet"], "--backbone"),
    # eval
    (["eval"], "--checkpoint"),
    (["eval", "--checkpoint", "{missing}"], "--checkpoint"),
    (["eval", "--checkpoint", "{dir}"], "--checkpoint"),
    (["eval", "--checkpoint", "{file}"], "--checkpoint"),
    (["eval", "--checkpoint", "{vgckpt}"], "--dataset vg"),  # a Visual Genome model, not an "unknown dataset"
    (["eval", "--model", "nope"], "--model"),
    (["eval", "--model", "uniform"], "--dataset"),
    (["eval", "--dataset", "nope", "--model", "uniform"], "--dataset"),
    (["eval", "--dataset", "vg", "--checkpoint", "{file}"], "--data-dir"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--split", "nope"], "--split"),
    (["eval", "--checkpoint", "{file}", "--data-file", "{missing}"], "--data-file"),
    (["eval", "--checkpoint", "{file}", "--data-file", "{file}", "--split", "val"], "--split"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--num-examples", "0"], "--num-examples"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--seed", "-1"], "--seed"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--backend", "cuda", "--device", "cpu"], "--backend cuda"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--device", "bogus"], "--device"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--batch-size", "0"], "--batch-size"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--out", "{dir}"], "--out"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--out", "{file}"], "--out"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--out", "{json}"], "--out"),
    (["eval", "--model", "uniform", "--dataset", "mref", "--out", "{under}.json"], "--out"),
    # table
    (["table", "--results", "{missing}"], "--results"),
    (["table", "--results", "{file}"], "--results"),
    (["table", "--results", "{empty}", "--write", "{dir}"], "--write"),
    (["table", "--results", "{empty}", "--write", "{file}"], "--write"),
    (["table", "--results", "{empty}", "--write", "{json}"], "--write"),
    (["table", "--results", "{empty}", "--write", "{under}.json"], "--write"),
    (["table", "--results", "{json}", "--write", "{missing}.json"], "--write"),
    # figure
    (["figure", "--out", "{missing}.png"], "--checkpoint"),
    (["figure", "--checkpoint", "{missing}", "--out", "{missing}.png"], "--checkpoint"),
    (["figure", "--checkpoint", "{dir}", "--out", "{missing}.png"], "--checkpoint"),
    (["figure", "--checkpoint", "{vgckpt}", "--out", "{missing}.png"], "--dataset vg"),
    (["figure", "--checkpoint", "{file}", "--dataset", "nope", "--out", "{missing}.png"], "--dataset"),
    (["figure", "--checkpoint", "{file}", "--dataset", "vg", "--out", "{missing}.png"], "--data-dir"),
    (["figure", "--checkpoint", "{file}", "--split", "nope", "--out", "{missing}.png"], "--split"),
    (["figure", "--checkpoint", "{file}", "--examples", "-1", "--out", "{missing}.png"], "--examples"),
    (["figure", "--checkpoint", "{file}", "--num-examples", "0", "--out", "{missing}.png"], "--num-examples"),
    (["figure", "--checkpoint", "{file}", "--backend", "cuda", "--device", "cpu", "--out", "{missing}.png"],
     "--backend cuda"),
    (["figure", "--checkpoint", "{file}", "--device", "bogus", "--out", "{missing}.png"], "--device"),
    (["figure", "--checkpoint", "{ckpt}", "--out", "{dir}"], "--out"),
    (["figure", "--checkpoint", "{ckpt}", "--out", "{file}"], "--out"),
    (["figure", "--checkpoint", "{ckpt}", "--out", "{png}"], "--out"),
    (["figure", "--checkpoint", "{ckpt}", "--out", "{under}.png"], "--out"),
    # bench
    (["bench", "--op", "nope"], "--op"),
    (["bench", "--shape", "nope"], "--shape"),
    (["bench", "--mode", "nope"], "--mode"),
    (["bench", "--provider", "nope"], "--provider"),
    (["bench", "--dtype", "nope"], "--dtype"),
    (["bench", "--scale", "nope"], "--scale"),
    (["bench", "--device", "nope"], "--device"),
    (["bench", "--tf32", "nope"], "--tf32"),
    (["bench", "--warmup-ms", "-5"], "--warmup-ms"),
    (["bench", "--rep-ms", "0"], "--rep-ms"),
    (["bench", "--rep-ms", "-5"], "--rep-ms"),
    (["bench", "--compile-mode", "nope"], "--compile-mode"),
    (["bench", "--cpu-threads", "0"], "--cpu-threads"),
    (["bench", "--cpu-threads", "-1"], "--cpu-threads"),
    (["bench", "--seed", "-1"], "--seed"),
    (["bench", "--json", "{dir}"], "--json"),
    (["bench", "--json", "{json}"], "--json"),
    (["bench", "--json", "{under}.json"], "--json"),
    (["bench", "--plot", "{file}"], "--plot"),
    (["bench", "--plot", "{missing}"], "--plot"),  # no .png: matplotlib would write {missing}.png
    (["bench", "--train", "--plot", "{missing}.png"], "--plot"),
    (["bench", "--compare", "{missing}"], "--compare"),
    (["bench", "--compare", "{file}"], "--compare"),
    (["bench", "--train-batch", "0"], "--train-batch"),
    (["bench", "--train-steps", "0"], "--train-steps"),
    (["bench", "--train-warmup", "-1"], "--train-warmup"),
    (["bench", "--train", "--train-variants", "bogus"], "--train-variants"),
    (["bench", "--profile", "{dir}"], "--profile"),
    (["bench", "--profile", "{empty}"], "--profile"),
    (["bench", "--profile", "{under}.json"], "--profile"),
    (["bench", "--profile", "{missing}"], "--profile"),  # no .json
    (["bench", "--profile", "{missing}.json", "--profile-backend", "nope"], "--profile-backend"),
    (["bench", "--profile", "{missing}.json", "--profile-backend", "cuda", "--device", "cpu"], "--profile-backend"),
]


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default outputs (runs/...) would land here
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "afile.txt").write_text("mine")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "keep.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    (tmp_path / "old.png").write_bytes(b"mine")
    (tmp_path / "old.json").write_text('{"mine": 1}')
    (tmp_path / "zero.npz").write_bytes(b"")
    from pan.train.checkpoint import CHECKPOINT_FORMAT  # a readable checkpoint, so --out is the first problem

    torch.save({"format": CHECKPOINT_FORMAT, "model": {}, "config": {"model": "san", "dataset": "mref"}},
               tmp_path / "run.pt")
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}, "config": {"kind": "real-images", "model": "pan-h-ctx",
                                                                     "dataset": "vg"}}, tmp_path / "vg.pt")
    return {"file": tmp_path / "afile.txt", "dir": tmp_path / "adir", "empty": tmp_path / "empty",
            "missing": tmp_path / "missing" / "x", "under": tmp_path / "afile.txt" / "sub" / "out",
            "png": tmp_path / "old.png", "json": tmp_path / "old.json", "npz0": tmp_path / "zero.npz",
            "ckpt": tmp_path / "run.pt", "vgckpt": tmp_path / "vg.pt"}


def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
            if "cache" not in p.parts}


@pytest.mark.parametrize("argv, named", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_is_one_line_and_exit_2(argv, named, places, tmp_path, capsys):
    argv = [a.format(**places) for a in argv]
    before = _snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pan {argv[0]}") and "error" in lines[0], err
    assert named in lines[0], err
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before, "a refused command changed files"


def test_query_out_of_range_names_the_query_and_the_range():
    from pan_kernels import ProgressiveAttention

    layer = ProgressiveAttention(4, 8, num_queries=10, backend="torch")
    x = torch.randn(2, 4, 5, 5)
    for bad in (10, -1):
        with pytest.raises(IndexError, match=rf"query holds class id {bad}, outside the valid range 0\.\.9"):
            layer(x, torch.tensor([1, bad]))
    assert layer(x, torch.tensor([0, 9]))[1].shape == (2, 5, 5)


def test_voc_error_does_not_suggest_a_download(tmp_path):
    """pan has no download option: the VOC error says what to put in --data-dir, not torchvision's download=True."""
    pytest.importorskip("torchvision")
    from pan.data.voc import VOC2007

    with pytest.raises(ValueError) as info:
        VOC2007(tmp_path, "val")
    message = str(info.value)
    assert message.startswith(f"--data-dir {tmp_path}") and "download=True" not in message
    assert "downloads nothing" in message and "\n" not in message
