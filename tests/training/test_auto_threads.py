"""``--threads auto`` follows what the network costs per image, whether it is built in or from a file."""

import os

import pytest

from hapi_runner import Runner, TrainConfig
from hapi_runner.training import auto_threads, runner as runner_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("macs, cores, expected", [(400_000, 2, 1), (9_999_999, 8, 1), (10_000_000, 2, 2), (560_000_000, 4, 4)])
def test_cheap_networks_get_one_thread_and_costly_ones_every_core(macs, cores, expected):
    assert auto_threads.threads_for_cost(macs, cores) == expected


@pytest.fixture
def two_cores(monkeypatch):
    from hapi_runner.paddle_compat import set_cpu_threads

    monkeypatch.setattr(runner_module, "auto_core_count", lambda: 2)
    yield
    set_cpu_threads(1)  # the tests' own setting (conftest), whatever a run chose


@pytest.mark.parametrize("model, size, threads", [
    ("examples/lenet5.py:LeNet5", 32, 1),  # LeNet-sized, from a file: no longer every core by its name
    ("resnet18", None, 2),
])
def test_auto_measures_the_built_network_and_says_so(two_cores, tmp_path, monkeypatch, model, size, threads):
    monkeypatch.chdir(ROOT)
    config = TrainConfig(model=model, image_size=size, dataset="synthetic", synthetic_like="cifar10", synthetic_size=32,
                         threads="auto", verbose=0, save_dir=str(tmp_path / "run"))
    runner = Runner(config)
    macs = runner.thread_choice.macs
    assert runner.threads == threads == auto_threads.threads_for_cost(macs, 2)
    assert f"{threads} thread" in runner.describe() and f"auto: {macs / 1e6:.1f} M multiply-adds per image" in runner.describe()


def test_a_count_given_is_kept(tmp_path):
    runner = Runner(TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=32, threads="1", verbose=0,
                                save_dir=str(tmp_path / "run")))
    assert runner.threads == 1 and runner.thread_choice is None and "auto" not in runner.describe()
