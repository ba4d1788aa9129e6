"""``pan bench``: benchmark the kernels against eager PyTorch and torch.compile (see benchmarks/cli.py).

The options and the runner live in the `pan.bench` package (also runnable as ``python -m pan.bench``); this module
only attaches them to the ``pan`` command line.
"""

from __future__ import annotations

import argparse

from pan.bench.cli import _DESCRIPTION, add_arguments


def register(subparsers, name: str = "bench", help: str | None = None) -> argparse.ArgumentParser:
    """Add ``pan bench`` to the top-level subparsers."""
    parser = subparsers.add_parser(name, help=help, description=_DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    from pan.bench.cli import run

    return run(args)
