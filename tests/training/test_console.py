"""One log format from the command line and from Python, and no noise the package's own choices cause."""

import logging
import os
import subprocess
import sys
import warnings

from hapi_runner.training.console import NOISE, setup_logging, silence_noise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_noise_is_filtered_and_every_other_warning_still_shows():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_noise()
        for message, _ in NOISE:
            warnings.warn(f"{message}. More words.", UserWarning)
        warnings.warn("a warning of the user's own", UserWarning)
    assert [str(w.message) for w in seen] == ["a warning of the user's own"]


def test_python_code_logs_in_the_command_lines_format_once(capfd):
    import paddle  # noqa: F401  (puts its handler, in its own format, on the root logger)

    setup_logging()
    setup_logging()  # a second Runner must not print each line twice
    logging.getLogger("hapi_runner.deploy.export").info("exported to %s", "RUN/inference")
    assert capfd.readouterr().err.splitlines() == ["hapi_runner: INFO: exported to RUN/inference"]


def test_a_default_run_prints_no_warning_and_only_its_own_lines(tmp_path):
    """``python train.py --epochs 1`` as a new user runs it: a fresh matplotlib cache, the default model and data."""
    env = dict(os.environ, MPLCONFIGDIR=str(tmp_path / "matplotlib"))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--epochs", "1", "--verbose", "0"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert "warning" not in printed.lower(), printed
    assert [line for line in printed.splitlines() if not line.startswith("hapi_runner: ")] == [], printed
