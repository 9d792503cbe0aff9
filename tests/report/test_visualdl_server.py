"""``hapi-runner visualdl RUN``: the real VisualDL server answers a client that sends no Accept-Language."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from hapi_runner import UsageError

pytest.importorskip("visualdl", reason="VisualDL is not installed (pip install visualdl)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_run(tmp_path):
    from visualdl import LogWriter

    run = tmp_path / "run"
    with LogWriter(logdir=str(run / "visualdl")) as writer:
        for step in range(3):
            writer.add_scalar(tag="eval/acc_top1", value=0.5 + 0.1 * step, step=step)
    return run


def get(url, deadline):
    """The status of GET ``url`` as curl sends it (no Accept-Language), retried until the server listens."""
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={}), timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError):
            assert time.time() < deadline, f"nothing answered at {url}"
            time.sleep(0.5)


def test_the_page_is_served_to_a_client_without_accept_language(tmp_path):
    run, port = logged_run(tmp_path), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hapi_runner", "visualdl", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert get(f"http://127.0.0.1:{port}/", time.time() + 90) == 200
        assert get(f"http://127.0.0.1:{port}/app/scalar", time.time() + 10) == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the command and the VisualDL server it started
        out, _ = proc.communicate(timeout=30)
    assert f"VisualDL of {run / 'visualdl'} at http://127.0.0.1:{port}/" in out


@pytest.mark.parametrize("where", ["", "visualdl"])
def test_the_logs_are_found_from_the_run_or_its_visualdl_folder(tmp_path, where):
    from hapi_runner.report.visualdl_server import visualdl_argv

    run = logged_run(tmp_path)
    argv = visualdl_argv(str(run / where), port=8123)
    assert argv[argv.index("--logdir") + 1] == str(run / "visualdl")
    assert argv[-2:] == ["--language", "en"] and argv[argv.index("--port") + 1] == "8123"


def test_a_folder_without_logs_is_one_line(tmp_path):
    from hapi_runner.report.visualdl_server import visualdl_argv

    with pytest.raises(UsageError, match="holds no VisualDL logs .* pass a run folder trained without --no-visualdl"):
        visualdl_argv(str(tmp_path))
