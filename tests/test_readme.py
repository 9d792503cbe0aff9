"""The README's two maps stay whole: every module in the layout section, every train flag in the flags table."""

from pathlib import Path

import pytest

from hapi_runner.cli.app import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


@pytest.mark.parametrize("module", sorted(
    p.relative_to(ROOT / "hapi_runner") for p in (ROOT / "hapi_runner").rglob("*.py") if p.name != "__init__.py"
    and p.name != "__main__.py"), ids=str)
def test_every_module_is_in_the_layout_map(module):
    layout = section("How the package is laid out")
    assert module.stem in layout, f"README's layout map does not name {module}"


def train_flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for action in sub.choices["train"]._actions:
        names = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
        if names:
            yield names


@pytest.mark.parametrize("names", list(train_flags()), ids=lambda names: names[0])
def test_every_train_flag_is_in_the_flags_table(names):
    table = section("Command line")
    assert any(f"`{name}" in table for name in names), f"README's flags table has no row for {names[0]}"
