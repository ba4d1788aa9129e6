"""vg-synth (pan.data.vg_synth, `pan data generate --dataset vg-synth`): the Visual Genome reader reads it, boxes are
exact, output is deterministic from the seed, --num-images is checked, a non-empty --out is kept unless
--overwrite, and an interrupted run leaves nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pan.cli.main import main
from pan.data import vg_synth
from pan.data.vg_synth import ATTRIBUTES, OBJECTS, write_vg_synth
from pan.data.visual_genome import VisualGenome


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("objects", ["shapes", "digits"])
def test_the_reader_reads_it_and_each_image_has_distinct_labelled_objects(tmp_path, objects):
    summary = write_vg_synth(tmp_path / "vg", 12, seed=0, image_size=64, objects=objects)
    records = json.loads((tmp_path / "vg" / "attributes.json").read_text())
    assert len(records) == 12 and summary["objects"] == sum(len(r["attributes"]) for r in records)
    for r in records:
        names = [o["names"][0] for o in r["attributes"]]
        assert 2 <= len(names) <= 4 and len(set(names)) == len(names)
        for o in r["attributes"]:
            colour, size, *extras = o["attributes"]
            assert colour in vg_synth.COLOURS and size in vg_synth.SIZES and set(extras) <= set(vg_synth.EXTRAS)
            assert 0 <= o["x"] and o["x"] + o["w"] <= 64 and 0 <= o["y"] and o["y"] + o["h"] <= 64
    splits = [VisualGenome(tmp_path / "vg", s, min_count=0, cache_dir=None) for s in ("train", "val", "test")]
    assert sum(len(s) for s in splits) == summary["objects"]
    assert set(splits[0].classes) <= set(OBJECTS[objects]) and set(splits[0].attributes) <= set(ATTRIBUTES)
    assert splits[0].examples[0].path.is_file() and (splits[0].examples[0].width, splits[0].examples[0].height) == (
        64, 64)


@pytest.mark.parametrize("kind", ["shapes", "digits"])
def test_boxes_are_exactly_the_pixels_each_object_drew(kind):
    rng = np.random.default_rng(4)
    sprite = vg_synth._sprites(kind, rng, None)
    for image_id in range(6):
        canvas, objects = vg_synth._image(rng, image_id, 80, OBJECTS[kind], sprite, None, 1)
        grey = np.bincount(canvas[..., 0].ravel()).argmax()
        changed = (canvas != grey).any(2)
        inside = np.zeros_like(changed)
        for o in objects:
            x, y, w, h = o["x"], o["y"], o["w"], o["h"]
            box = changed[y:y + h, x:x + w]
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any(), o
            inside[y:y + h, x:x + w] = True
        assert not (changed & ~inside).any(), "an object drew outside its box"


def test_num_classes_limits_the_classes(tmp_path):
    write_vg_synth(tmp_path / "vg", 10, seed=0, image_size=48, num_classes=2)
    names = {o["names"][0] for r in json.loads((tmp_path / "vg" / "objects.json").read_text()) for o in r["objects"]}
    assert names == {"circle", "square"}
    with pytest.raises(ValueError, match=r"--num-classes must be an integer in \[2, 5\] for --objects shapes, got 6"):
        write_vg_synth(tmp_path / "bad", 10, num_classes=6)
    with pytest.raises(ValueError, match="--objects must be one of"):
        write_vg_synth(tmp_path / "bad", 10, objects="cars")
    assert not (tmp_path / "bad").exists()


def test_deterministic_from_the_seed(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_vg_synth(tmp_path / name, 10, seed=seed, image_size=48)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b and a.keys() == c.keys() and a != c


def _generate(out, *extra):
    """pan data generate --dataset vg-synth ...; its exit status (argparse's SystemExit included)."""
    try:
        return main(["data", "generate", "--dataset", "vg-synth", "--out", str(out), *extra])
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("extra,message", [
    (["--num-images", "9"], "--num-images must be an integer >= 10"),
    (["--num-images", "0"], "--num-images"),
    (["--num-images", "x"], "--num-images"),
    (["--num-images", "10", "--image-size", "16"], "--image-size must be an integer in [32, 1024]"),
    (["--num-examples", "30"], "vg-synth takes --num-images"),
    (["--objects", "cars"], "--objects"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, extra, message):
    assert _generate(tmp_path / "vg", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "vg").exists()


def test_a_non_empty_out_is_kept_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "vg"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert _generate(out, "--num-images", "10", "--image-size", "48") == 2
    assert "exists and is not empty (use --overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert _generate(out, "--num-images", "10", "--image-size", "48", "--overwrite") == 0
    assert "10 images" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["VG_100K", "attributes.json", "image_data.json", "objects.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vg"]  # no temporary folder left


def test_ctrl_c_leaves_no_partial_output(tmp_path, monkeypatch, capsys):
    real = vg_synth._image
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(vg_synth, "_image", interrupted)
    assert _generate(tmp_path / "new", "--num-images", "10", "--image-size", "48") == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("keep me")
    calls.clear()
    assert _generate(old, "--num-images", "10", "--image-size", "48", "--overwrite") == 130
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and [p.name for p in old.iterdir()] == ["mine.txt"]
