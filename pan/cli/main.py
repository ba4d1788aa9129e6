"""Entry point of the `pan` command.

Each subcommand lives in its own module `pan.cli.<name>` that defines `register(subparsers)`; the module
adds its parser and sets `func` (called with the parsed namespace, returns an exit code). Modules are
imported lazily by name so `pan --help` stays fast and a missing optional dependency only breaks its
own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (subcommand, module, one-line help). A module that does not exist yet is simply not offered.
SUBCOMMANDS = [
    ("demo", "pan.cli.demo", "generate a small MREF, train PAN[H]+CTX, report accuracy/TPR, draw attention"),
    ("data", "pan.cli.data", "generate or preview the MREF / MDIST / MBG datasets"),
    ("train", "pan.cli.train", "train a model"),
    ("eval", "pan.cli.eval", "evaluate a checkpoint (accuracy, TPR, accuracy by scale)"),
    ("table", "pan.cli.table", "print Table 1 next to the paper's numbers (and our Table 2 for Visual Genome runs)"),
    ("figure", "pan.cli.figure", "draw attention figures"),
    ("bench", "pan.cli.bench", "benchmark the kernels against eager and torch.compile"),
]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (``pan train: error: ...``), exit status 2; its
    subcommand parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pan", description="Progressive Attention Networks: data, training, kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue
            raise
        module.register(sub, name=name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `pan` command; its exit status (2: bad input, one line on stderr; 130: interrupted)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # a command that saves work on Ctrl-C handles it itself and says how to continue
        print("pan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
