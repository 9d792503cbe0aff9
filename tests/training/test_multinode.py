"""Jobs across machines: the gloo interface, the startup agreement, the watchdog, the terminate hook, ``launch``.

The pieces are checked in one process on this machine's own interfaces and
sockets. The last test builds two network namespaces joined by a veth pair
(two "machines" whose hostname maps to 127.0.1.1, as Debian's /etc/hosts
has it) and runs real two-node jobs through ``hapi-runner launch``; it needs
root and ``ip netns`` and skips, saying why, without them.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from hapi_runner.cli import main
from hapi_runner.config.train_config import TrainConfig
from hapi_runner.errors import DataFileError, HapiRunnerError, UsageError
from hapi_runner.runfolder.checkpoint_format import load_checkpoint
from hapi_runner.training import multinode, watchdog
from hapi_runner.training.launch import LaunchPlan, launcher_command, wait_for_master
from bench.multinode import (IN_EPOCH_2, JOB, MASTER_IP, OTHER_IP, cannot_build_reason, clean_env, finish, kill_namespace,
                             start_node, two_machines, wait_for_log, worker_log)
from helpers import read_json, read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- the interface and the master --------------------------------------------------------------------------

def own_ipv4():
    """``{address: interface}`` of this machine's non-loopback IPv4 addresses, read by ``ip`` (not by our ioctl)."""
    if not shutil.which("ip"):
        return {}
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        address = parts[parts.index("inet") + 1].split("/")[0]
        if not address.startswith("127."):
            found[address] = parts[1].split("@")[0]
    return found


@pytest.mark.parametrize("env, endpoint, spans", [
    ({}, None, False),
    ({"PADDLE_MASTER": "10.0.0.1:6170", "PADDLE_NNODES": "2"}, ("10.0.0.1", 6170), True),
    ({"PADDLE_TRAINER_ENDPOINTS": "10.0.0.1:6170,10.0.0.2:6171"}, ("10.0.0.1", 6170), True),
    ({"PADDLE_TRAINER_ENDPOINTS": "10.0.0.1:6170,10.0.0.1:6171", "PADDLE_NNODES": "1"}, ("10.0.0.1", 6170), False),
])
def test_the_master_and_whether_a_job_spans_machines_come_from_the_launcher(env, endpoint, spans):
    assert multinode.master_endpoint(env) == endpoint
    assert multinode.spans_machines(env) is spans


def test_the_interface_that_routes_to_the_master_is_chosen_when_unset():
    addresses = own_ipv4()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address (or no ip command) to route to")
    address, interface = sorted(addresses.items())[0]
    env = {"PADDLE_MASTER": f"{address}:6170", "PADDLE_NNODES": "2"}
    note = multinode.choose_gloo_interface(env)
    assert env["GLOO_SOCKET_IFNAME"] == interface
    assert f"gloo over {interface} ({address})" in note and "was not set" in note


@pytest.mark.parametrize("env, expected", [
    ({"PADDLE_MASTER": "10.0.0.1:6170", "PADDLE_NNODES": "2", "GLOO_SOCKET_IFNAME": "eth7"}, "gloo over eth7 (GLOO_SOCKET_IFNAME as set)"),
    ({"PADDLE_MASTER": "127.0.0.1:6170", "PADDLE_NNODES": "1"}, None),
])
def test_a_users_interface_wins_and_one_machine_is_left_alone(env, expected):
    before = dict(env)
    assert multinode.choose_gloo_interface(env) == expected
    assert env == before


def test_a_loopback_master_of_a_job_across_machines_is_refused_in_one_line():
    with pytest.raises(HapiRunnerError, match=r"master address is 127\.0\.1\.1, a loopback address .*--host"):
        multinode.choose_gloo_interface({"PADDLE_MASTER": "127.0.1.1:6170", "PADDLE_NNODES": "2"})


# --- the startup agreement ---------------------------------------------------------------------------------

def facts(tmp_path, **overrides):
    config = TrainConfig(model="lenet", dataset="mnist", data_dir=str(tmp_path), epochs=2, output_root=str(tmp_path)).replace(**overrides)
    return multinode.node_facts(config, "10.0.0.1", 40000)


def as_rank(fact, rank, host):
    return {**fact, "rank": rank, "host": host}


def test_ranks_that_agree_pass_and_their_own_threads_may_differ(tmp_path):
    multinode.check_agreement([facts(tmp_path), as_rank(facts(tmp_path, threads="2"), 1, "10.0.0.2")])


@pytest.mark.parametrize("change, error, message", [
    ({"epochs": 3}, UsageError, r"rank 1 \(10\.0\.0\.2\) was started with other settings than rank 0 \(--epochs 3 there, 2 on rank 0\)"),
    ({"data_dir": "/nonexistent/fashion"}, DataFileError, r"--data-dir /nonexistent/fashion does not exist on rank 1 \(10\.0\.0\.2\)"),
])
def test_a_rank_with_other_settings_or_without_the_data_stops_every_rank(tmp_path, change, error, message):
    with pytest.raises(error, match=message):
        multinode.check_agreement([facts(tmp_path), as_rank(facts(tmp_path, **change), 1, "10.0.0.2")])


def test_a_rank_running_other_code_is_named(tmp_path):
    other = as_rank({**facts(tmp_path), "version": "0.0.9+abc"}, 1, "10.0.0.2")
    with pytest.raises(UsageError, match=r"rank 1 \(10\.0\.0\.2\) runs hapi_runner 0\.0\.9\+abc and rank 0 .* install the same code"):
        multinode.check_agreement([facts(tmp_path), other])


def test_the_code_version_changes_with_any_source_file(tmp_path, monkeypatch):
    package = tmp_path / "hapi_runner"
    shutil.copytree(os.path.join(ROOT, "hapi_runner", "training"), package / "training")
    monkeypatch.setattr(multinode, "__file__", str(package / "training" / "multinode.py"))
    before = multinode.code_version()
    (package / "training" / "losses.py").write_text("# edited\n", encoding="utf-8")
    assert multinode.code_version() != before and before.split("+")[0] == multinode.__version__


# --- the watchdog and the terminate hook -------------------------------------------------------------------

def closed_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


def test_a_probe_tells_a_live_rank_from_an_ended_one():
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert watchdog.probe("127.0.0.1", server.getsockname()[1]) == "alive"
        alive = [{"rank": 0, "host": "127.0.0.1", "port": 1}, {"rank": 1, "host": "127.0.0.1", "port": server.getsockname()[1]}]
        assert watchdog.diagnose(alive, 0) == "every other rank still answers, so the connection between the ranks broke"
    assert watchdog.probe("127.0.0.1", closed_port()) == "ended"
    peers = [{"rank": 0, "host": "127.0.0.1", "port": 1}, {"rank": 1, "host": "127.0.0.1", "port": closed_port()}]
    assert watchdog.diagnose(peers, 0) == "rank 1 on 127.0.0.1 has ended (its port refuses connections)"
    assert watchdog.diagnose(peers[:1], 0).startswith("not every rank has joined")


def start_watchdog(timeout, victim):
    proc = subprocess.Popen([sys.executable, "-m", "hapi_runner.training.watchdog", "--timeout", str(timeout), "--rank", "3",
                             "--parent", str(victim.pid)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    port = int(proc.stdout.readline())
    return proc, port


def test_the_watchdog_ends_a_silent_rank_with_one_line_naming_the_lost_peer():
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc, port = start_watchdog(1.0, victim)
        assert watchdog.probe("127.0.0.1", port) == "alive"
        peers = [{"rank": 3, "host": "127.0.0.1", "port": port}, {"rank": 0, "host": "127.0.0.1", "port": closed_port()}]
        proc.stdin.write(f"phase training epoch 2\npeers {json.dumps(peers)}\n".encode())
        proc.stdin.flush()
        for _ in range(3):  # beats keep the rank alive past the timeout
            time.sleep(0.5)
            proc.stdin.write(b"beat\n")
            proc.stdin.flush()
        assert victim.poll() is None
        started = time.monotonic()
        assert victim.wait(timeout=10) == -signal.SIGKILL and time.monotonic() - started < 4
        lines = proc.communicate(timeout=10)[1].decode().strip().splitlines()
        assert lines == ["hapi-runner: error: rank 3 stops: no step finished for 1 s (--dist-timeout) while training epoch 2: "
                         "rank 0 on 127.0.0.1 has ended (its port refuses connections). Checkpoints already written are "
                         "whole; relaunch every node with --resume."]
    finally:
        victim.kill()


def test_the_watchdog_leaves_with_its_rank_and_a_pause_stops_its_clock():
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc, _ = start_watchdog(0.5, victim)
        proc.stdin.write(b"pause\n")
        proc.stdin.flush()
        time.sleep(1.0)
        assert victim.poll() is None and proc.poll() is None
        proc.stdin.close()  # the training process ended
        assert proc.wait(timeout=10) == 0 and victim.poll() is None
    finally:
        victim.kill()


TERMINATE = """
import ctypes, ctypes.util, types
from hapi_runner.training.multinode import install_terminate_hook
watch = types.SimpleNamespace(me=1, current="training epoch 4", peers=[{"rank": 0, "host": "127.0.0.1", "port": PORT}])
assert install_terminate_hook(watch)
ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6")._ZSt9terminatev()
"""


def test_the_terminate_hook_turns_a_cpp_abort_into_one_line_and_exit_1():
    proc = subprocess.run([sys.executable, "-c", TERMINATE.replace("PORT", str(closed_port()))], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "hapi-runner: error: rank 1 stops: a collective failed while training epoch 4: rank 0 on 127.0.0.1 has ended (its port "
        "refuses connections). Checkpoints already written are whole; relaunch every node with --resume."]


# --- hapi-runner launch ------------------------------------------------------------------------------------

def test_a_master_that_never_answers_ends_the_wait_in_one_line():
    started = time.monotonic()
    with pytest.raises(HapiRunnerError, match=r"the master 127\.0\.0\.1:\d+ cannot be reached from this machine after 1 s"):
        wait_for_master("127.0.0.1", closed_port(), 1.0, say=lambda line: None)
    assert time.monotonic() - started < 5
    with socket.create_server(("127.0.0.1", 0)) as server:
        wait_for_master("127.0.0.1", server.getsockname()[1], 1.0)


def test_the_launcher_gets_this_machines_host_and_the_train_flags():
    plan = LaunchPlan("10.0.0.1:29500", 2, train_args=["--model", "lenet"], timeout=60)
    command = launcher_command(plan, "10.0.0.2")
    assert command[command.index("--host") + 1] == "10.0.0.2" and command[command.index("--master") + 1] == "10.0.0.1:29500"
    assert command[-6:] == ["hapi_runner", "train", "--model", "lenet", "--dist-timeout", "60"]
    plan.train_args += ["--dist-timeout", "9"]
    assert launcher_command(plan, "10.0.0.2")[-2:] == ["--dist-timeout", "9"]


@pytest.mark.parametrize("master", ["10.0.0.1", "node1:29500", "10.0.0.1:99999"])
def test_a_bad_master_is_a_usage_error(master, capsys):
    assert main(["launch", "--master", master, "--nnodes", "2", "--", "--epochs", "1"]) == 2
    assert re.fullmatch(r"hapi-runner: error: --master must be IP:PORT \(10\.0\.0\.1:29500\), got .*\.\n", capsys.readouterr().err)


# --- two machines: network namespaces joined by a veth pair (bench/multinode.py builds them) -----------------

DIST_TIMEOUT = 20
JOB_TIMEOUT = 150


@pytest.fixture
def machines():
    reason = cannot_build_reason()
    if reason:
        pytest.skip(f"two-machine test: {reason}")
    try:
        with two_machines() as built:
            yield built
    except RuntimeError as exc:  # ip refused: a kernel or sandbox without network namespaces
        if "ip " not in str(exc):
            raise
        pytest.skip(f"two-machine test: {exc}")


def run_job(machines, port, tmp, flags):
    nodes = [start_node(machines, node, port, str(tmp), flags, DIST_TIMEOUT) for node in (0, 1)]
    (code_a, out_a), (code_b, out_b) = finish(nodes[0], JOB_TIMEOUT), finish(nodes[1], JOB_TIMEOUT)
    assert (code_a, code_b) == (0, 0), out_a[-3000:] + out_b[-3000:]
    return out_a, out_b


@pytest.mark.multinode
def test_two_machines_train_stop_when_one_dies_and_resume(machines, tmp_path):
    run, job = str(tmp_path / "run"), [*JOB, "--epochs", "2"]
    # Neither GLOO_SOCKET_IFNAME nor --host is given: each machine finds the interface that routes to the master.
    nodes = [start_node(machines, node, 29500, str(tmp_path), [*job, "--save-dir", run], DIST_TIMEOUT) for node in (0, 1)]
    wait_for_log(str(tmp_path), 29500, 0, IN_EPOCH_2, JOB_TIMEOUT)
    # One machine is killed (every process in it) early in epoch 2: the other ends within the timeout, in one line.
    kill_namespace(machines.names[1])
    killed = time.monotonic()
    code, out = finish(nodes[0], DIST_TIMEOUT + 30)
    assert code != 0 and time.monotonic() - killed < DIST_TIMEOUT + 5
    finish(nodes[1], JOB_TIMEOUT)
    log_a, log_b = (worker_log(str(tmp_path), 29500, node) for node in (0, 1))
    for log, link, address in zip((log_a, log_b), machines.links, (MASTER_IP, OTHER_IP)):
        assert f"gloo over {link} ({address}), the interface that routes to the master {MASTER_IP}" in log
    lines = [line for line in log_a.splitlines() if line.startswith("hapi-runner: error:")]
    assert len(lines) == 1 and "rank 0 stops" in lines[0] and f"rank 1 on {OTHER_IP} has ended" in lines[0], log_a[-3000:]
    assert lines[0] in out and "unexpected" not in out + log_a and "Traceback" not in out + log_a
    assert [row["epoch"] for row in read_rows(run)] == ["1"]
    load_checkpoint(os.path.join(run, "checkpoints", "epoch_1"))  # whole: every file matches its sha256

    # Both machines relaunched with --resume finish the run's epochs.
    out_a, _ = run_job(machines, 29501, tmp_path, [*job, "--resume", run])
    assert "resuming after epoch 1 of 2" in out_a
    assert [row["epoch"] for row in read_rows(run)] == ["1", "2"]

    # The job's own evaluation equals one process's evaluate of the same weights.
    proc = subprocess.run([sys.executable, "-m", "hapi_runner", "evaluate", run, "--json"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    single, logged = json.loads(proc.stdout), read_json(os.path.join(run, "results.json"))["final_eval"]
    assert single["epoch"] == 2 and single["num_samples"] == 300 and logged["acc_top1"] == single["acc_top1"]
    assert logged["loss"] == pytest.approx(single["loss"], rel=1e-5)
