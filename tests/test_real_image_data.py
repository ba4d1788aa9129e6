"""Visual Genome and VOC 2007 readers on tiny fixture folders written by the tests (images, JSON, masks), including
malformed files that must give a clear error naming the file."""

from __future__ import annotations

import json

import pytest
import torch

from pan.data.real_images import VisualGenomeImages, VOCImages, box_mask
from pan.data.visual_genome import VisualGenome
from pan.data.voc import VOC2007
from tests.real_image_fixtures import voc_masks, write_vg, write_voc


def test_visual_genome_vocabularies_examples_and_split(tmp_path):
    root = write_vg(tmp_path / "vg")
    splits = {s: VisualGenome(root, s, min_count=1, seed=3) for s in ("train", "val", "test")}
    vg = splits["train"]
    # more than once: cat (4, after normalising "Cat "), dog (3); black (4), white (2)
    assert vg.classes == ["cat", "dog"] and vg.attributes == ["black", "white"]
    ids = [set(s.image_ids) for s in splits.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    # images 4 (only "striped") and 6 (no attributes) hold no usable example
    assert set().union(*ids) == {1, 2, 3, 5}
    assert VisualGenome(root, "train", min_count=1, seed=3).image_ids == vg.image_ids
    everything = [e for s in splits.values() for e in s.examples]
    assert len(everything) == 5
    first = next(e for e in everything if e.image_id == 3)
    assert first.query == 1 and first.attributes == (0, 1) and first.box == (5.0, 5.0, 10.0, 10.0)
    split = next(s for s in splits.values() if 3 in s.image_ids)
    i = split.examples.index(first)
    assert split.target(i).tolist() == [1, 1]
    image, query, target, mask = VisualGenomeImages(split, size=40)[i]
    assert image.shape == (3, 40, 40) and query.item() == 1 and target.tolist() == [1.0, 1.0]
    assert mask.shape == (40, 40) and mask.sum().item() == 20 * 25  # box 10x10 of a 20x16 image, scaled 2 x 2.5


def test_box_mask_covers_the_scaled_box():
    mask = box_mask((2, 4, 10, 6), (20, 16), 20)
    rows, cols = torch.nonzero(mask, as_tuple=True)
    assert (cols.min().item(), cols.max().item()) == (2, 11)
    assert (rows.min().item(), rows.max().item()) == (5, 11)  # y 4..10 scaled by 20/16 -> 5..12.5


@pytest.mark.parametrize("file,content,message", [
    ("objects.json", "{not json", "objects.json: not valid JSON"),
    ("attributes.json", json.dumps({"image_id": 1}), "attributes.json: expected a JSON list"),
    ("attributes.json", json.dumps([{"image_id": 1}]), r"attributes.json: record 0 \(image 1\): lacks the field "
                                                        "'attributes'"),
    ("image_data.json", json.dumps([{"image_id": 2}]), r"attributes.json: record 0 \(image 1\): the image is not in"),
    ("objects.json", '[{"image_id": 1, "objects": []}, 7]', "objects.json: expected a JSON list of per-image object "
                                                             "records; item 1 is 7"),
    ("objects.json", '[{"image_id": 1, "objects": []} {"image_id": 2}]', "objects.json: not valid JSON"),
    ("objects.json", '[{"image_id": 1, "objects": []}] x', "objects.json: not valid JSON .extra data"),
    ("objects.json", '[{"image_id": 1, "objects": [', "objects.json: not valid JSON"),
])
def test_visual_genome_malformed_files_are_named(tmp_path, file, content, message):
    root = write_vg(tmp_path / "vg")
    (root / file).write_text(content)
    with pytest.raises(ValueError, match=message):
        VisualGenome(root, "train", min_count=1)


def _set(file, path, value):
    """An edit of `file`: set data[path[0]][path[1]]... = value."""
    def edit(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return file, edit


@pytest.mark.parametrize("file_and_edit,message", [
    (_set("attributes.json", (0, "attributes", 0, "x"), None),
     r"attributes.json: record 0 \(image 1\), object 0: field 'x' must be a finite number, got null"),
    (_set("attributes.json", (1, "attributes", 1, "h"), True),
     r"attributes.json: record 1 \(image 2\), object 1: field 'h' must be a finite number, got true"),
    (_set("attributes.json", (0, "attributes", 1, "w"), "5"),
     r"attributes.json: record 0 \(image 1\), object 1: field 'w' must be a finite number, got \"5\""),
    (_set("attributes.json", (2, "attributes", 0, "names"), 5),
     r"attributes.json: record 2 \(image 3\), object 0: field 'names' must be a list of strings, got 5"),
    (_set("attributes.json", (0, "attributes", 0, "attributes"), "black"),
     r"attributes.json: record 0 \(image 1\), object 0: field 'attributes' must be a list of strings, got \"black"),
    (_set("attributes.json", (1, "attributes", 0, "attributes"), False),
     r"attributes.json: record 1 \(image 2\), object 0: field 'attributes' must be a list of strings, got false"),
    (_set("attributes.json", (1, "attributes", 0, "y"), float("inf")),
     r"attributes.json: record 1 \(image 2\), object 0: field 'y' must be a finite number, got Infinity"),
    (_set("attributes.json", (0, "attributes", 0, "attributes"), ["black", 3]),
     r"object 0: field 'attributes' must be a list of strings, got \[\"black\", 3\]"),
    (_set("attributes.json", (0, "attributes", 1), 5), r"attributes.json: record 0 \(image 1\), object 1: must be "
                                                       "a JSON object, got 5"),
    (_set("attributes.json", (3, "attributes"), None),
     r"attributes.json: record 3 \(image 4\): field 'attributes' must be a list of objects, got null"),
    (_set("attributes.json", (0, "image_id"), "abc"),
     r"attributes.json: record 0: field 'image_id' must be an integer, got \"abc\""),
    (_set("objects.json", (1, "objects"), None),
     r"objects.json: record 1 \(image 2\): field 'objects' must be a list of objects, got null"),
    (_set("objects.json", (0, "objects", 1, "names"), ["dog", None]),
     r"objects.json: record 0 \(image 1\), object 1: field 'names' must be a list of strings"),
    (_set("objects.json", (4, "image_id"), 1.5), r"objects.json: record 4: field 'image_id' must be an integer"),
    (_set("image_data.json", (2, "image_id"), "abc"),
     r"image_data.json: record 2: field 'image_id' must be an integer, got \"abc\""),
    (_set("image_data.json", (0, "width"), "20"),
     r"image_data.json: record 0 \(image 1\): field 'width' must be an integer, got \"20\""),
])
def test_visual_genome_records_of_wrong_type_name_file_record_and_field(tmp_path, file_and_edit, message):
    root = write_vg(tmp_path / "vg")
    file, edit = file_and_edit
    data = json.loads((root / file).read_text())
    edit(data)
    (root / file).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as caught:
        VisualGenome(root, "train", min_count=1, cache_dir=None)
    assert "\n" not in str(caught.value)


def test_visual_genome_other_layouts_say_what_was_expected(tmp_path):
    root = write_vg(tmp_path / "parent" / "vg")
    with pytest.raises(ValueError, match=r"image_data.json: missing; a Visual Genome --data-dir holds image_data.json, "
                                         r"objects.json, attributes.json .*found one in .*vg: give that folder"):
        VisualGenome(tmp_path / "parent", "train", min_count=1)
    voc = write_voc(tmp_path / "voc", voc_masks())
    with pytest.raises(ValueError, match="missing; .*looks like a VOC 2007 copy: use --dataset voc07"):
        VisualGenome(voc, "train", min_count=1)
    for folder in ("VG_100K",):
        for image in (root / folder).iterdir():
            image.unlink()
        (root / folder).rmdir()
    with pytest.raises(ValueError, match=r"--data-dir .*vg: no image folder VG_100K/ or VG_100K_2/"):
        VisualGenome(root, "train", min_count=1)


def test_visual_genome_missing_things_are_named(tmp_path):
    with pytest.raises(ValueError, match="--data-dir .*nowhere: no such directory"):
        VisualGenome(tmp_path / "nowhere", "train")
    root = write_vg(tmp_path / "vg")
    (root / "attributes.json").unlink()
    with pytest.raises(ValueError, match="attributes.json: missing"):
        VisualGenome(root, "train", min_count=1)
    root = write_vg(tmp_path / "vg2")
    with pytest.raises(ValueError, match="split must be one of"):
        VisualGenome(root, "dev", min_count=1)
    vg = VisualGenome(root, "train", min_count=1, seed=3)
    bad = vg.examples[0].path
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"{bad.name}: unreadable image"):
        VisualGenomeImages(vg, size=8)[0]


def test_voc_examples_queries_and_masks(tmp_path):
    root = write_voc(tmp_path / "voc", voc_masks())
    voc = VOC2007(root, "val")
    assert [(e.index, e.voc_class, e.query) for e in voc.examples] == [(0, 12, 11), (0, 15, 14), (1, 20, 19)]
    image, query, mask = VOCImages(voc, size=48)[1]
    assert image.shape == (3, 48, 48) and query.item() == 14
    assert mask.sum().item() == 4 * 4 * 6 * 3  # the 4x6 person patch scaled by 4 (rows) and 3 (columns)
    vg_names = VOC2007(root, "val", query_names=["television", "person", "tree"])
    assert [(e.voc_class, e.query) for e in vg_names.examples] == [(15, 1), (20, 0)]
    assert "dog" in vg_names.unmatched and "person" not in vg_names.unmatched


def test_voc_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        VOC2007(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a VOC 2007 segmentation copy"):
        VOC2007(tmp_path / "empty")
    root = write_voc(tmp_path / "voc", voc_masks())
    (root / "VOCdevkit" / "VOC2007" / "SegmentationClass" / "000002.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="000002.png: unreadable segmentation mask"):
        VOC2007(root, "val")


def test_attributes_seen_only_on_nameless_objects_keep_every_example_right(tmp_path):
    """Vocabulary attributes may occur only on objects without a name (counted, never an example): the examples'
    attribute lists must still be exactly their own."""
    objects = {1: [("cat", ["red"], (0, 0, 4, 4)), ("x", ["blue", "green", "pink"], (4, 4, 4, 4))],
               2: [("dog", ["red", "tall"], (1, 1, 4, 4)), ("x", ["blue"], (5, 5, 4, 4))]}
    root = write_vg(tmp_path / "vg", objects)
    data = json.loads((root / "attributes.json").read_text())
    for record in data:
        record["attributes"][1]["names"] = []
    (root / "attributes.json").write_text(json.dumps(data))
    splits = [VisualGenome(root, s, min_count=0, seed=0, cache_dir=None) for s in ("train", "val", "test")]
    vocab = splits[0].attributes
    assert len(vocab) == 5
    seen = {(e.image_id, tuple(vocab[a] for a in e.attributes)) for s in splits for e in s.examples}
    assert seen == {(1, ("red",)), (2, ("red", "tall"))}
