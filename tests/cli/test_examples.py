"""Every network the guide names is shipped under examples/, builds, and a missing one is said before any download."""

import re
from pathlib import Path

import pytest

from hapi_runner import TrainConfig, UsageError

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDERS = {"FILE.py"}


def named_networks():
    """``(path, NAME)`` for each ``path.py:NAME`` in README.md and docs/, leaving out placeholders and test folders (DIR/...)."""
    found = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path, name in re.findall(r"([A-Za-z0-9_./-]+\.py):([A-Za-z_]\w*)", page.read_text(encoding="utf-8")):
            if path not in PLACEHOLDERS and not path.startswith("DIR/"):
                found.add((path, name))
    return sorted(found)


@pytest.mark.parametrize("path, name", named_networks())
def test_each_network_the_docs_name_is_shipped_in_examples(path, name):
    shipped = ROOT / "examples" / Path(path).name
    assert shipped.is_file(), f"the docs name {path}:{name}; ship it as examples/{Path(path).name}"
    assert re.search(rf"^(class|def) {name}\b", shipped.read_text(encoding="utf-8"), flags=re.M), f"{shipped} has no {name}"


@pytest.mark.parametrize("model, kwargs, shape", [
    ("examples/lenet5.py:LeNet5", {}, [1, 32, 32]),
    ("examples/resnet.py:ResNet", {"layers": [1, 1, 1, 1], "width": 4}, [1, 28, 28]),
    ("examples/resnet.py:ResNet", {"layers": [1, 1, 1, 1], "width": 4}, [3, 32, 32]),
])
def test_the_examples_build_for_the_data_and_give_one_score_per_class(monkeypatch, model, kwargs, shape):
    from hapi_runner.model.build import check_forward
    from hapi_runner.model.user import build_user_network

    monkeypatch.chdir(ROOT)
    network = build_user_network(model, 7, shape[0], kwargs)
    check_forward(network, shape, 7, model)


def test_a_missing_network_file_is_said_before_any_download(tmp_path, monkeypatch):
    import paddle.dataset.common

    def download(*args, **kwargs):
        raise AssertionError("a download was tried before the network file was checked")

    monkeypatch.setattr(paddle.dataset.common, "download", download)
    config = TrainConfig(model=str(tmp_path / "nets" / "resnet.py") + ":ResNet", dataset="mnist", download=True, epochs=1,
                         threads="1", verbose=0, save_dir=str(tmp_path / "run"))
    from hapi_runner import Runner

    with pytest.raises(UsageError, match=r"model file '.*nets/resnet.py' does not exist; .* in the repository's examples/"):
        Runner(config)
    assert not (tmp_path / "run").exists()
