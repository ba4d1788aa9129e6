"""Start-up time and peak memory of the Visual Genome reader on JSON of the real release's size.

Writes VG-format image_data.json, objects.json and attributes.json (108,077 images, ~2.3M objects, names and
attributes drawn from Zipf-like vocabularies, ~45% of objects with 1-3 attributes; no image files) to --work, then
runs, each in a fresh subprocess, what `pan train --dataset vg` does at start (the train and the val reader):

  first   empty cache: stream-parse the JSON, build the index, write the cache, cut the splits
  second  the cache is there: load it, cut the splits
  json    (unless --skip-json) the reader before the index (json.load of each file, per-example objects), for scale

and records wall seconds, CPU seconds (user + system: the number to trust on a shared, loaded machine) and peak
RSS (VmHWM of /proc/self/status) of each, with pan.provenance's header.

    python scripts/vg_index_timing.py --out benchmarks/results/cpu_2026-12-05_vg-index.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_MEASURE = r"""
import json, os, resource, sys, time
def peak_mb():  # VmHWM: peak resident set of this process image (ru_maxrss would include the parent's, via fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
start = time.perf_counter()
from pan.data.visual_genome import VisualGenome
imported = time.perf_counter()
root, cache, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "json":
    sys.path.insert(0, sys.argv[4])
    from vg_reader_json import VisualGenome as JsonReader
    make = lambda split: JsonReader(root, split, min_count=100)
else:
    make = lambda split: VisualGenome(root, split, min_count=100, cache_dir=cache)
train = make("train")
after_train = time.perf_counter()
val = make("val")
done = time.perf_counter()
print(json.dumps({"seconds_train_reader": round(after_train - imported, 2), "seconds_val_reader":
                  round(done - after_train, 2), "seconds_total": round(done - start, 2),
                  "seconds_import": round(imported - start, 2),
                  "peak_rss_mb": peak_mb(), "cpu_seconds": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2),
                  "load_average_1min": os.getloadavg()[0],
                  "train_examples": len(train), "val_examples": len(val), "classes": len(train.classes),
                  "attributes": len(train.attributes)}))
"""


def _zipf_names(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" if rng.random() < 0.7 else f"{prefix} {i} word" for i in range(n)]


def generate(root: Path, images: int, objects: int, seed: int = 0) -> dict:
    """Write the three JSON files of a synthetic release; {file: bytes} plus counts."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "VG_100K").mkdir(exist_ok=True)
    class_names = _zipf_names(rng, "object", 75_000)
    attribute_names = _zipf_names(rng, "attr", 40_000)
    per_image = rng.multinomial(objects - images, np.full(images, 1 / images)) + 1
    class_of = np.minimum(rng.zipf(1.3, objects) - 1, len(class_names) - 1)
    n_attrs = np.where(rng.random(objects) < 0.45, rng.integers(1, 4, objects), 0)
    attr_of = np.minimum(rng.zipf(1.4, int(n_attrs.sum())) - 1, len(attribute_names) - 1)
    boxes = rng.integers(0, 500, (objects, 4)) + np.array([0, 0, 1, 1])
    image_data, start, a = [], 0, 0
    with open(root / "objects.json", "w") as fo, open(root / "attributes.json", "w") as fa:
        fo.write("[")
        fa.write("[")
        for i in range(images):
            image_id = i + 1
            image_data.append({"width": 800, "url": f"https://example.invalid/VG_100K/{image_id}.jpg", "height": 600,
                               "image_id": image_id, "coco_id": None, "flickr_id": None})
            objs, with_attrs = [], []
            for k in range(start, start + per_image[i]):
                x, y, w, h = (int(v) for v in boxes[k])
                obj = {"synsets": [], "h": h, "object_id": k + 1, "merged_object_ids": [],
                       "names": [class_names[class_of[k]]], "w": w, "y": y, "x": x}
                objs.append(obj)
                full = dict(obj)
                if n_attrs[k]:
                    full["attributes"] = [attribute_names[j] for j in attr_of[a:a + n_attrs[k]]]
                    a += int(n_attrs[k])
                with_attrs.append(full)
            start += per_image[i]
            sep = "," if i else ""
            fo.write(sep + json.dumps({"image_id": image_id, "objects": objs}))
            fa.write(sep + json.dumps({"image_id": image_id, "attributes": with_attrs}))
        fo.write("]")
        fa.write("]")
    (root / "image_data.json").write_text(json.dumps(image_data))
    return {"images": images, "objects": objects, "objects_with_attributes": int((n_attrs > 0).sum()),
            "attribute_annotations": int(n_attrs.sum()),
            "bytes": {name: (root / name).stat().st_size
                      for name in ("image_data.json", "objects.json", "attributes.json")}}


def measure(root: Path, cache: Path, mode: str, old_reader_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(root), str(cache), mode, str(old_reader_dir)],
                         cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/vg-index-timing", help="where the generated JSON goes (not in git)")
    p.add_argument("--images", type=int, default=108_077)
    p.add_argument("--objects", type=int, default=2_300_000)
    p.add_argument("--skip-json", action="store_true", help="skip the json.load reader of before the index")
    p.add_argument("--reuse", action="store_true", help="keep JSON already generated in --work (same sizes)")
    p.add_argument("--old-reader-commit", default="4c3b3de",
                   help="commit whose pan/data/visual_genome.py is the json.load reader")
    p.add_argument("--out", required=True, help="result JSON file")
    args = p.parse_args()

    import torch

    from pan.provenance import make_header

    work = Path(args.work)
    data, cache = work / "vg", work / "cache"
    start = time.perf_counter()
    stored = work / "generated.json"
    if args.reuse and stored.is_file() and json.loads(stored.read_text())["objects"] == args.objects:
        info = json.loads(stored.read_text())
    else:
        info = generate(data, args.images, args.objects)
        info["seconds_to_generate"] = round(time.perf_counter() - start, 1)
        stored.write_text(json.dumps(info))
    print(f"generated {data}: {info}", flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    old = work / "old_reader"
    old.mkdir(exist_ok=True)
    source = subprocess.run(["git", "show", f"{args.old_reader_commit}:pan/data/visual_genome.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    (old / "vg_reader_json.py").write_text(source)
    runs = {"first": measure(data, cache, "first", old)}
    print("first:", runs["first"], flush=True)
    runs["second"] = measure(data, cache, "second", old)
    print("second:", runs["second"], flush=True)
    runs["cache_file_mb"] = round(sum(f.stat().st_size for f in cache.glob("*.npz")) / 2**20, 1)
    if not args.skip_json:
        runs["json"] = measure(data, cache, "json", old)
        print("json:", runs["json"], flush=True)
    result = {"header": make_header(torch.device("cpu")), "data": info, "runs": runs,
              "notes": "each run is a fresh Python process building the train and the val reader (min_count 100) "
                       "as `pan train --dataset vg` does; peak_rss_mb is VmHWM of that process (imports "
                       "included); 'json' is the reader before the cached index"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
