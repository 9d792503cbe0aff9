"""Threads are chosen before Paddle is imported; devices are checked with clear errors."""

import os
import subprocess
import sys

import pytest

from hapi_runner.training.environment import resolve_threads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code, env_extra=None, drop=("OMP_NUM_THREADS",)):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_package_does_not_import_paddle():
    assert run_python("import sys, hapi_runner; hapi_runner.TrainConfig(); print('paddle' in sys.modules)") == "False"


@pytest.mark.parametrize("setting, model, expected", [("3", "lenet", 3), ("auto", "lenet", 1)])
def test_explicit_and_small_model_thread_counts(setting, model, expected, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(setting, model) == expected


def test_auto_uses_every_core_for_bigger_models_unless_the_user_exported_a_count():
    cores = run_python("import os; print(len(os.sched_getaffinity(0)))")
    assert run_python("from hapi_runner.training.environment import resolve_threads as r; print(r('auto', 'resnet18'))") == cores
    assert run_python("from hapi_runner.training.environment import resolve_threads as r; print(r('auto', 'resnet18'))",
                      env_extra={"OMP_NUM_THREADS": "7"}) == "7"


def test_the_runner_sets_threads_before_paddle_reads_them():
    code = ("from hapi_runner import Runner; import os; "
            "r = Runner(model='resnet18', dataset='synthetic', synthetic_like='mnist', synthetic_size=8, threads='2', verbose=0); "
            "print(os.environ['OMP_NUM_THREADS'], r.threads)")
    assert run_python(code).splitlines()[-1] == "2 2"  # after the run's own opening lines
