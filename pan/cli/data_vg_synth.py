"""``pan data generate --dataset vg-synth --out DIR [--num-images N] [--image-size S] [--objects shapes|digits]
[--background photo|plain]``:
a small set in the Visual Genome release's format (pan.data.vg_synth), to check an install before downloading the
real one. Hooked into pan.cli.data's `generate` action by `add_arguments` and `run`."""

from __future__ import annotations

import argparse
import signal
import sys

from pan.cli.argtypes import positive_int

DATASET = "vg-synth"


def add_arguments(gen: argparse.ArgumentParser) -> None:
    """Accept --dataset vg-synth and its own options in `pan data generate`."""
    dataset = next(a for a in gen._actions if a.dest == "dataset")
    dataset.choices = (*dataset.choices, DATASET)
    g = gen.add_argument_group("vg-synth (a small Visual Genome look-alike: JSON + VG_100K/*.jpg)")
    g.add_argument("--num-images", type=positive_int, default=600, help="vg-synth: images (default 600, >= 10)")
    g.add_argument("--image-size", type=positive_int, default=96, help="vg-synth: image side in pixels (default 96)")
    g.add_argument("--objects", default="shapes", choices=("shapes", "digits"),
                   help="vg-synth: the object classes: 5 shapes (default; CPU minutes to learn) or MNIST digits")
    g.add_argument("--background", default="photo", choices=("photo", "plain"),
                   help="vg-synth: dimmed scikit-image photographs (default) or plain grey")


def run(args: argparse.Namespace) -> int:
    """Write the vg-synth folder; exit 2 with one line on bad arguments, 130 on Ctrl-C (nothing left behind)."""
    from pan.data.vg_synth import write_vg_synth

    if args.num_examples is not None:
        print("pan data: error: --num-examples is for mref/mdist/mbg; vg-synth takes --num-images", file=sys.stderr)
        return 2
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        summary = write_vg_synth(args.out, args.num_images, seed=args.seed, image_size=args.image_size,
                                 background=args.background, objects=args.objects, overwrite=args.overwrite,
                                 mnist_dir=args.mnist_dir, backgrounds_dir=args.backgrounds_dir)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"pan data: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"pan data: error: cannot write --out {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pan data: interrupted; nothing was written to {args.out}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"{summary['out']}: {summary['images']} images, {summary['objects']} objects (image_data.json, objects.json, "
          f"attributes.json, VG_100K/); train on it with: pan train --dataset vg --data-dir {summary['out']} "
          "--backbone small-cnn --min-count 10 --image-size 64")
    return 0
