"""The front door and the guide stay true: README short and runnable, the layout map whole, the flags page generated."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")}
sys.path.insert(0, str(ROOT / "tools"))

import flags_table  # noqa: E402


def test_the_readme_fits_on_a_screen_and_opens_with_the_two_commands():
    lines = README.splitlines()
    assert len(lines) <= 150
    block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[0].startswith("pip install -e \".[cpu]\" && python train.py")
    assert block[1].startswith("pip install -e \".[cpu,test") and "python -m pytest" in block[1]


@pytest.mark.parametrize("module", sorted(
    p.relative_to(ROOT / "hapi_runner") for p in (ROOT / "hapi_runner").rglob("*.py") if p.name != "__init__.py"
    and p.name != "__main__.py"), ids=str)
def test_every_module_is_in_the_layout_map(module):
    layout = DOCS["architecture.md"].split("```", 2)[1]
    assert f"{module.parent}/" in layout or module.parent == Path("."), f"docs/architecture.md has no room {module.parent}"
    assert module.stem in layout, f"docs/architecture.md's layout map does not name {module}"


def test_the_flags_page_is_what_the_code_generates():
    assert DOCS["flags.md"] == flags_table.generate(), "docs/flags.md is stale: run python tools/flags_table.py"


def test_every_train_flag_is_on_the_flags_page():
    from hapi_runner.cli.app import build_train_parser
    import argparse

    page = DOCS["flags.md"]
    for action in build_train_parser(argparse.ArgumentParser(add_help=False))._actions:
        names = [o for o in action.option_strings if o.startswith("--")]
        assert any(f"`{name}" in page for name in names), f"docs/flags.md has no row for {names}"


def test_every_flag_is_documented_once():
    rows = re.findall(r"^\| `(--[\w-]+)", DOCS["flags.md"], flags=re.M)
    assert len(rows) == len(set(rows)) and not re.search(r"^\| `--[\w-]+", README, flags=re.M)


def test_every_link_of_the_readme_and_the_docs_reaches_a_file():
    pages = {"README.md": (ROOT, README), **{f"docs/{n}": (ROOT / "docs", t) for n, t in DOCS.items()}}
    for name, (base, text) in pages.items():
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (base / target).exists(), f"{name} links to {target}, which does not exist"


def test_no_machine_path_in_the_docs():
    for name, text in {"README.md": README, **DOCS}.items():
        found = re.findall(r"(?:/tmp/pytest|/root/|/work/)", text)
        assert not found, f"{name} names a path of the machine it was written on: {found}"


def test_every_import_the_docs_show_works():
    lines = {line.strip() for text in [README, *DOCS.values()] for line in text.splitlines()
             if re.match(r"\s*(from hapi_runner[\w.]* import [\w, ]+|import hapi_runner[\w.]*)\s*(#.*)?$", line)}
    code = "\n".join(line.split("#")[0].rstrip() for line in sorted(lines))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_readme_python_example_runs_as_written(tmp_path):
    example = README.split("```python\n", 1)[1].split("```", 1)[0]
    code = textwrap.dedent(example).replace("epochs=2", "epochs=1")  # the same calls, one epoch
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "acc_top1" in done.stdout
    assert (tmp_path / "output" / "lenet-fashion-mnist-mini" / "run_001" / "results.json").is_file()
