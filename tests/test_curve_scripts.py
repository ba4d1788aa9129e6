"""scripts/attention_curve.py and scripts/plot_learning_curves.py: the per-epoch accuracy / TPR of a run's model
(evaluated on its validation split, at epoch boundaries only, once each) and the PNG of the curves."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pan.data import make_dataset
from pan.evaluation.metrics import evaluate
from pan.train import load_model
from tests.tiny_runs import train_tiny_mref

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    train_tiny_mref(root, "pan-h-ctx", "run")
    return root


def test_attention_curve_evaluates_each_epoch_once_on_the_val_split(tiny_run):
    curve = _script("attention_curve")
    run, cache = tiny_run / "run", str(tiny_run / "cache")
    assert curve.main([str(run), "--once", "--num-examples", "20", "--cache-dir", cache]) == 0
    assert curve.main([str(run), "--once", "--num-examples", "20", "--cache-dir", cache]) == 0  # no second line
    lines = [json.loads(x) for x in (run / "attention_curve.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1]
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert lines[0]["val_acc"] == pytest.approx(metrics["val_acc"])
    assert lines[0]["images_seen"] == 40  # 2 steps of 20 in the one epoch
    model, _ = load_model(run / "last.pt", backend="torch")
    expected = evaluate(model, make_dataset("mref", "val", 20, seed=0, cache_dir=cache))
    assert lines[0]["tpr"] == pytest.approx(expected["tpr"], rel=1e-9)
    assert lines[0]["num_examples"] == 20


def test_attention_curve_reads_a_runs_val_file(tmp_path):
    """A run trained on --train-file / --val-file is evaluated on that validation file, not on a generated split."""
    from pan.train import TrainConfig, train

    curve = _script("attention_curve")
    train_data = make_dataset("mref", "train", 40, seed=0, cache_dir=tmp_path, clear_border=6)
    val_data = make_dataset("mref", "val", 20, seed=0, cache_dir=tmp_path, clear_border=6)
    train_data.save(tmp_path / "train.npz")
    val_data.save(tmp_path / "val.npz")
    config = TrainConfig(model="pan-h-ctx", train_file=str(tmp_path / "train.npz"), val_file=str(tmp_path / "val.npz"),
                         num_train=40, num_val=20, batch_size=20, max_epochs=1, backend="torch", device="cpu",
                         out_dir=str(tmp_path / "run"), quiet=True)
    train(config)
    assert curve.main([str(tmp_path / "run"), "--once", "--num-examples", "20", "--cache-dir", str(tmp_path)]) == 0
    line = json.loads((tmp_path / "run" / "attention_curve.jsonl").read_text())
    model, _ = load_model(tmp_path / "run" / "last.pt", backend="torch")
    assert line["tpr"] == pytest.approx(evaluate(model, val_data)["tpr"], rel=1e-9)
    assert line["tpr"] != pytest.approx(evaluate(model, make_dataset("mref", "val", 20, seed=0,
                                                                      cache_dir=tmp_path))["tpr"], rel=1e-6)


def test_attention_curve_skips_a_mid_epoch_checkpoint():
    curve = _script("attention_curve")
    assert curve._boundary_epoch({"accum": [[1.0]], "state": {"epoch": 3, "step": 5}}) is None
    assert curve._boundary_epoch({"accum": None, "state": {"epoch": 3, "step": 0}}) == 3


def test_plot_learning_curves_writes_a_png_and_never_overwrites(tiny_run, tmp_path, capsys):
    curve = _script("attention_curve")
    plot = _script("plot_learning_curves")
    run = tiny_run / "run"
    curve.main([str(run), "--once", "--num-examples", "20", "--cache-dir", str(tiny_run / "cache")])
    out = tmp_path / "curves.png"
    assert plot.main([str(run), "--out", str(out), "--acc-line", "98.53:paper"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {out}" in capsys.readouterr().out
    curves = plot.run_curves(run)
    assert curves["acc"][0][0] == 40 and len(curves["tpr"]) == 1
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert curves["acc"] == [(40, 100 * metrics[0]["val_acc"])]
    assert curves["train"] == [(40, 100 * metrics[0]["train_acc"])]
    with_train = tmp_path / "with_train.png"
    assert plot.main([str(run), "--out", str(with_train), "--train"]) == 0
    assert with_train.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as err:
        plot.main([str(run), "--out", str(out)])
    assert err.value.code == 2 and "--overwrite" in capsys.readouterr().err


def test_error_analysis_tells_a_wrong_digit_from_a_misread_colour(tmp_path):
    """Scripted predictions on real MREF examples: answering a sibling digit's colour counts as wrong_digit and its
    (query -> sibling) pair as a confusion; answering a colour absent from the image does not."""
    errors = _script("error_analysis")
    data = make_dataset("mref", "val", 80, seed=3, cache_dir=tmp_path)
    counts = np.bincount(data.image_index)

    def usable(img: int) -> bool:  # a digit with a colour of its own, and a colour no digit of the image has
        colours = data.answer[data.image_index == img].tolist()
        return counts[img] >= 3 and len(set(colours)) < 5 and any(colours.count(c) == 1 for c in colours)

    img = next(m for m in np.unique(data.image_index) if usable(m))
    members = np.flatnonzero(data.image_index == img)
    colours = data.answer[members].tolist()
    j = members[next(n for n, c in enumerate(colours) if colours.count(c) == 1)]  # its colour is unique
    i, k = [m for m in members if m != j][:2]
    pred = data.answer.copy()
    pred[i] = data.answer[j]  # took digit j for the queried one
    pred[k] = next(c for c in range(5) if c not in colours)  # a colour nobody has: a misread colour
    r = errors.analyse(data, pred)
    assert r["errors"] == 2 and r["accuracy"] == pytest.approx(78 / 80)
    assert r["wrong_digit"] == pytest.approx(0.5)
    assert r["confusions"] == {f"{data.query[i]}->{data.query[j]}": 1}
    digits = data.instances.reshape(len(data.instances), -1).max(axis=1)  # the split cut its last image short:
    assert counts[-1] < digits[-1]  # it holds more digits than examples, and counts by its digits
    per_example = digits[data.image_index]
    n = int(digits[img])
    assert r["error_rate_by_digits_in_image"][n] == pytest.approx(2 / (per_example == n).sum())
    assert sorted(r["error_rate_by_digits_in_image"]) == sorted(set(digits.tolist()))
    assert all(rate == 0 for m, rate in r["error_rate_by_digits_in_image"].items() if m != n)


class _Lookup(torch.nn.Module):
    """Knows each (image, query) answer of ``data``: by the image's exact pixels (``exact``: any other image gets a
    wrong answer) or by its total ink, which a move keeps."""

    def __init__(self, data, exact: bool):
        super().__init__()
        from pan.evaluation.metrics import batch_images

        self.exact, self.by_pixels, self.by_ink = exact, {}, {}
        images, _ = batch_images(data, np.arange(len(data)), "cpu")
        for x, q, a in zip(images, data.query.tolist(), data.answer.tolist()):
            self.by_pixels[(x.numpy().tobytes(), q)] = a
            self.by_ink[(self._ink(x), q)] = a

    @staticmethod
    def _ink(x: torch.Tensor) -> float:
        return round(float(x.double().sum()), 3)

    def forward(self, images, query):
        from pan.models import ModelOutput

        answers = []
        for x, q in zip(images, query.tolist()):
            answer = self.by_ink[(self._ink(x), q)]
            if self.exact and (x.numpy().tobytes(), q) not in self.by_pixels:
                answer = (answer + 1) % 5
            answers.append(answer)
        return ModelOutput(torch.nn.functional.one_hot(torch.tensor(answers), 5).float().log(), ())


def test_shift_sensitivity_tells_a_pixel_memoriser_from_a_reader(tmp_path):
    """A model that knows each image pixel for pixel fails every moved image; one that reads the ink (its total,
    which a move keeps) answers moved images as unmoved ones; images whose ink cannot move s pixels are left out."""
    shift = _script("shift_sensitivity")
    data = make_dataset("mref", "val", 60, seed=4, cache_dir=tmp_path)
    memoriser, reader = _Lookup(data, exact=True), _Lookup(data, exact=False)
    for s in (1, 3):
        mem = shift.shift_accuracy(memoriser, data, [s], 60, batch=16)[s]
        read = shift.shift_accuracy(reader, data, [s], 60, batch=16)[s]
        assert mem["examples"] == read["examples"] > 10
        assert mem["unshifted"] == 1.0 and mem["shifted"] == 0.0
        assert read["unshifted"] == 1.0 and read["shifted"] == 1.0
    few, many = (shift.shift_accuracy(reader, data, [s], 60)[s]["examples"] for s in (8, 1))
    assert few < many <= 60


def test_error_analysis_blind_band_counts_the_digits_the_network_cannot_see(tmp_path):
    """Errors planted on the examples whose digit reaches into the last 6 rows / columns: the band's error rate is 1,
    outside 0, and the share of the digit decides the bin."""
    errors = _script("error_analysis")
    data = make_dataset("mref", "val", 200, seed=2, cache_dir=tmp_path)
    share = np.array([1 - (m := data.instances[data.image_index[i]] == data.target[i])[:94, :94].sum() / m.sum()
                      for i in range(len(data))])
    assert 0 < (share > 0).sum() < len(data)
    pred = np.where(share > 0, (data.answer + 1) % 5, data.answer)
    band = errors.analyse(data, pred)["blind_band"]
    assert band["pixels"] == 6
    assert band["error_rate_in_band"] == 1.0 and band["error_rate_outside"] == 0.0 and band["share_of_errors"] == 1.0
    assert band["share_of_examples"] == pytest.approx((share > 0).mean())
    bins = band["by_share_of_the_digit"]
    assert bins["0"]["examples"] == (share == 0).sum()
    assert bins["[0.3, 1]"]["examples"] == (share >= 0.3).sum()
    assert sum(b["examples"] for b in bins.values()) == len(data)


def test_placement_band_compares_the_two_placement_rules():
    """Deterministic per seed; every share is a fraction; the authors' rule (the MNIST box with its margin inside the
    canvas) puts fewer digits into the blind band than ours (ink cropped, anywhere)."""
    band = _script("placement_band")
    authors, ours = band.authors_placement(60, seed=1), band.our_placement(60, seed=1)
    assert np.array_equal(authors, band.authors_placement(60, seed=1))
    assert 60 * 5 <= authors.size <= 60 * 9 and ours.size == 60 * 7
    assert ((authors >= 0) & (authors <= 1)).all() and ((ours >= 0) & (ours <= 1)).all()
    s_authors, s_ours = band.summary(authors), band.summary(ours)
    assert 0 < s_authors["in_band"] < s_ours["in_band"]
    assert s_ours["at_least_30_percent_in_band"] == pytest.approx((ours >= 0.3).mean())


@pytest.mark.parametrize("name, args", [("error_analysis", ["CKPT"]), ("shift_sensitivity", ["CKPT"]),
                                        ("placement_band", [])])
def test_analysis_scripts_never_write_over_a_file_and_name_a_bad_checkpoint(name, args, tmp_path, capsys):
    script = _script(name)
    existing = tmp_path / "report.json"
    existing.write_text("keep")
    argv = [str(tmp_path / "missing.pt") if a == "CKPT" else a for a in args]
    with pytest.raises(SystemExit) as info:
        script.main([*argv, "--out", str(existing)])
    assert info.value.code == 2 and existing.read_text() == "keep" and "--out" in capsys.readouterr().err
    if args:
        with pytest.raises(SystemExit) as info:
            script.main(argv)
        assert info.value.code == 2 and "missing.pt" in capsys.readouterr().err


def test_a_warm_started_run_is_drawn_after_the_images_of_its_start(tiny_run, tmp_path, capsys):
    """--init-from: the curve continues where the starting checkpoint's training stopped (1 epoch of 40 here),
    counting through a chain of warm starts; a missing start file counts 0, with a note."""
    from pan.train import TrainConfig, train

    plot = _script("plot_learning_curves")
    cache = tiny_run / "cache"
    data = (make_dataset("mref", "train", 40, seed=0, cache_dir=cache),
            make_dataset("mref", "val", 20, seed=0, cache_dir=cache))
    source = tiny_run / "run" / "last.pt"
    base = dict(num_train=40, num_val=20, batch_size=20, backend="torch", device="cpu", quiet=True)
    train(TrainConfig(**base, max_epochs=2, init_from=str(source), out_dir=str(tmp_path / "warm")),
          train_data=data[0], val_data=data[1])
    assert [x for x, _ in plot.run_curves(tmp_path / "warm")["acc"]] == [80, 120]
    train(TrainConfig(**base, max_epochs=1, init_from=str(tmp_path / "warm" / "last.pt"),
                      out_dir=str(tmp_path / "warmer")), train_data=data[0], val_data=data[1])
    assert [x for x, _ in plot.run_curves(tmp_path / "warmer")["acc"]] == [160]
    (tmp_path / "warm" / "last.pt").unlink()
    assert [x for x, _ in plot.run_curves(tmp_path / "warmer")["acc"]] == [40]
    assert "not here" in capsys.readouterr().err


def test_attention_curve_keeps_watching_an_interrupted_run(tiny_run, tmp_path, monkeypatch):
    """A finished run ends the watch; one whose summary says "interrupted" (it may be resumed) does not."""
    import shutil

    curve = _script("attention_curve")
    cache = str(tiny_run / "cache")
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(curve.time, "sleep", sleep)
    assert curve.main([str(run), "--num-examples", "20", "--cache-dir", cache]) == 0 and naps == []
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "stopped": "interrupted"}))
    assert curve.main([str(run), "--num-examples", "20", "--cache-dir", cache]) == 130 and naps == [20.0]


def test_learning_curves_give_a_run_one_colour_on_both_plots_and_keep_the_legend_off_them(tmp_path):
    """A run without TPR points must not shift the colours of the TPR plot: each run's TPR curve has the colour of
    its accuracy curve; the legend sits beside the plots, not inside either."""
    import matplotlib.pyplot as plt

    plot = _script("plot_learning_curves")
    runs = []
    for name, with_tpr in (("no-tpr", False), ("with-tpr", True)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"num_train": 40, "batch_size": 20}))
        (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "val_acc": 0.3 + 0.1 * e,
                                                               "train_acc": 0.5}) + "\n" for e in (1, 2)))
        if with_tpr:
            (run / "attention_curve.jsonl").write_text(json.dumps({"epoch": 1, "images_seen": 40, "tpr": 0.2}))
        runs.append(run)
    fig = plot.figure(runs, ["A", "B"])
    ax_acc, ax_tpr = fig.axes
    acc_colour = {line.get_label(): line.get_color() for line in ax_acc.get_lines()}
    assert [line.get_color() for line in ax_tpr.get_lines()] == [acc_colour["B"]] != [acc_colour["A"]]
    assert ax_acc.get_legend() is None and ax_tpr.get_legend() is None
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["A", "B"]
    plt.close(fig)
