"""Shared fixtures: data files in the real formats, and no access to real caches or the network."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from datafiles import write_cifar_archive, write_mnist_files  # noqa: E402

# Tests run on the CPU with one math thread: small models gain nothing from more,
# and results stay reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Points Paddle's dataset cache and the image cache at empty folders, so no test sees a real download or cache."""
    from hapi_runner.datasets import sources

    monkeypatch.setattr(sources, "PADDLE_CACHE", str(tmp_path / "paddle-cache"))
    monkeypatch.setenv("HAPI_RUNNER_CACHE", str(tmp_path / "image-cache"))


@pytest.fixture(autouse=True)
def _logging_propagates():
    """The CLI stops hapi_runner's logger from propagating (Paddle's root handler would repeat each line); caplog needs it."""
    import logging

    yield
    logging.getLogger("hapi_runner").propagate = True


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A folder per dataset, each holding small files in that dataset's real format."""
    root = tmp_path_factory.mktemp("data")
    for name in ("mnist", "fashion-mnist"):
        folder = root / name
        folder.mkdir()
        write_mnist_files(folder, n_train=48, n_test=16, seed=1)
    (root / "cifar10").mkdir()
    write_cifar_archive(root / "cifar10" / "cifar-10-python.tar.gz", num_classes=10, n_train=40, n_test=16, seed=2)
    (root / "cifar100").mkdir()
    write_cifar_archive(root / "cifar100" / "cifar-100-python.tar.gz", num_classes=100, n_train=40, n_test=16, seed=3)
    return root


def tiny_config(data_root, tmp_path, **overrides):
    """A TrainConfig for a seconds-long run on generated files."""
    from hapi_runner import TrainConfig

    dataset = overrides.get("dataset", "mnist")
    values = dict(
        dataset=dataset, data_dir=str(data_root / dataset) if dataset in ("mnist", "fashion-mnist", "cifar10", "cifar100") else None,
        download=False, epochs=1, batch_size=16, save_dir=str(tmp_path / "run"), verbose=0, threads="1",
        report=False,  # the end-of-training report has tests of its own (test_report.py); a page per tiny run costs ~3 s
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture
def decode_calls(monkeypatch):
    """The paths the image decoder is asked for, in order (it still decodes them)."""
    from hapi_runner.datasets import image_decode

    calls = []
    real = image_decode.decode_image

    def counting(path, channels, side):
        calls.append(path)
        return real(path, channels, side)

    monkeypatch.setattr(image_decode, "decode_image", counting)
    return calls
