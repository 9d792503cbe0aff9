#!/usr/bin/env python3
"""Writes docs/flags.md: every flag of ``hapi-runner train``, generated from TrainConfig's field metadata.

    python tools/flags_table.py          # rewrite docs/flags.md
    python tools/flags_table.py --check  # exit 1 if docs/flags.md differs from what the code says

The same metadata builds the flags themselves (``hapi_runner.cli.app``), so the
page cannot drift from ``python train.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hapi_runner.cli.app import build_train_parser, default_text, flag_of  # noqa: E402
from hapi_runner.config import TrainConfig  # noqa: E402

PAGE = ROOT / "docs" / "flags.md"
HEAD = """# Flags of `hapi-runner train`

`python train.py [flags]`, `python -m hapi_runner train [flags]` and `hapi-runner train [flags]` are the same
command. Every flag is also a `TrainConfig` field and a key of a `--config` file (YAML or JSON, `-` or `_` in
keys; unknown keys are an error). Flags beat the config file, which beats a `--recipe`, which beats the defaults;
the resolved configuration is written to the run folder's `config.json`.

This page is generated from the fields' metadata by `python tools/flags_table.py` (a test fails when it is stale).
"""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _spelling(item: dataclasses.Field, hints) -> str:
    """The flag as typed: ``--lr LR``, ``--channels {1,3}``, ``--no-augment``."""
    flag = flag_of(item)
    meta = item.metadata
    if hints[item.name] is bool:
        return f"`{flag}`"
    value = meta.get("metavar") or ("{" + ",".join(map(str, meta["choices"])) + "}" if "choices" in meta else item.name.upper())
    many = typing.get_origin(hints[item.name]) is list or meta.get("nargs") in ("+", "*")
    return f"`{flag} {value}{' ...' if many else ''}`"


def generate() -> str:
    hints = typing.get_type_hints(TrainConfig)
    lines = [HEAD]
    group = None
    for item in dataclasses.fields(TrainConfig):
        if item.metadata["group"] != group:
            group = item.metadata["group"]
            lines += ["", f"## {group}", "", "| flag | default | meaning |", "| --- | --- | --- |"]
        default = "off" if hints[item.name] is bool else default_text(item).removeprefix("default: ")
        lines.append(f"| {_cell(_spelling(item, hints))} | {_cell(default)} | {_cell(item.metadata['help'])} |")
    other = next(g for g in build_train_parser(argparse.ArgumentParser(add_help=False))._action_groups if g.title == "other")
    lines += ["", "## other", "", "| flag | meaning |", "| --- | --- |"]
    lines += [f"| `{' '.join(a.option_strings)}` | {_cell(a.help)} |" for a in other._group_actions]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        same = PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text
        print("docs/flags.md is current" if same else "docs/flags.md is stale: run python tools/flags_table.py")
        return 0 if same else 1
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
