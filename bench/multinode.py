#!/usr/bin/env python3
"""Two machines on one: how long a two-node CPU job takes to stop when one node dies or its link goes down.

Builds two network namespaces joined by a veth pair (10.77.0.1/24 and
10.77.0.2/24), each resolving the hostname to 127.0.1.1 as Debian's
/etc/hosts does, and runs a LeNet job on synthetic MNIST-shaped images on
both with ``hapi-runner launch`` (no GLOO_SOCKET_IFNAME, no --host). Then,
for each fault, a fresh job is broken early in epoch 2 and the seconds until
the surviving node's launcher has exited are measured, with the one line it
printed. Needs root and ``ip netns``; removes its namespaces whatever happens.
tests/training/test_multinode.py builds its two machines with the same functions.

    sudo python bench/multinode.py [--dist-timeout 20] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.run import table  # noqa: E402

MASTER_IP, OTHER_IP = "10.77.0.1", "10.77.0.2"
JOB = ["--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "1200", "--model", "lenet",
       "--batch-size", "16", "--threads", "1", "--verbose", "2", "--log-freq", "5", "--no-visualdl", "--no-report",
       "--no-export"]
IN_EPOCH_2 = r"Epoch 2/\d+.*step +5/"  # the kill lands with 33 of epoch 2's 38 steps still to go


def clean_env(**extra):
    """This environment without a launcher's variables or a gloo interface, with this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "POD_", "FLAGS_selected", "GLOO_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def ip(*args, check=True):
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def namespace_pids(name):
    return [int(p) for p in ip("netns", "pids", name, check=False).stdout.split()]


def kill_namespace(name):
    """SIGKILL to every process in namespace ``name``: only what was started there lives in it."""
    for pid in namespace_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def cannot_build_reason():
    """Why two namespaces cannot be built here, or None."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if not shutil.which("ip"):
        return "the ip command (iproute2) is not installed"
    return None


def _wire(names, links):
    """The veth pair between the namespaces, the addresses, and each one's hostname on 127.0.1.1."""
    ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
    hostname = socket.gethostname()
    for name, link, address in zip(names, links, (MASTER_IP, OTHER_IP)):
        os.makedirs(f"/etc/netns/{name}", exist_ok=True)  # ip netns exec mounts these files over /etc
        with open(f"/etc/netns/{name}/hosts", "w", encoding="utf-8") as hosts:
            hosts.write(f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
        ip("link", "set", link, "netns", name)
        ip("-n", name, "addr", "add", f"{address}/24", "dev", link)
        ip("-n", name, "link", "set", link, "up")
        ip("-n", name, "link", "set", "lo", "up")


@contextlib.contextmanager
def two_machines():
    """Yields ``names`` and ``links`` of two wired namespaces; removes them, their processes and /etc/netns/NAME at the end.

    Raises:
        RuntimeError: ``ip`` refused (the message says why); whatever was made is removed.
    """
    tag = os.getpid() % 100000
    names = links = [f"hrmn{tag}a", f"hrmn{tag}b"]  # a namespace and its end of the pair share a name
    made = []
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the finally below still runs.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for name in names:
            ip("netns", "add", name)
            made.append(name)
        _wire(names, links)
        yield types.SimpleNamespace(names=names, links=links)
    finally:
        for name in made:
            kill_namespace(name)
            ip("netns", "del", name, check=False)  # takes its end of the veth pair, and so the pair, with it
            shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)
        with contextlib.suppress(OSError):  # /etc/netns itself, when nothing else is left in it
            os.rmdir("/etc/netns")
        signal.signal(signal.SIGTERM, previous)


def start_node(machines, node, port, folder, flags, dist_timeout):
    """``hapi-runner launch`` on machine ``node`` (0 leads), logs in ``folder/log-PORT-NODE``; its output is piped."""
    cmd = ["ip", "netns", "exec", machines.names[node], sys.executable, "-m", "hapi_runner", "launch", "--master",
           f"{MASTER_IP}:{port}", "--nnodes", "2", "--log-dir", os.path.join(folder, f"log-{port}-{node}"),
           "--dist-timeout", str(dist_timeout), "--", *flags]
    return subprocess.Popen(cmd, cwd=folder, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def worker_log(folder, port, node):
    path = os.path.join(folder, f"log-{port}-{node}", "workerlog.0")
    return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""


def wait_for_log(folder, port, node, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, worker_log(folder, port, node), re.S):
            return
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never appeared in node {node}'s log of the job on port {port}")


def finish(proc, timeout):
    """``(exit code, output)``; 124 and the output so far when it runs past ``timeout`` (it is then killed)."""
    try:
        proc.wait(timeout=timeout)
        return proc.returncode, proc.stdout.read()
    except subprocess.TimeoutExpired:
        proc.kill()
        return 124, proc.stdout.read() + f"\n[killed after {timeout} s]"


def break_job(machines, fault, port, folder, dist_timeout):
    """Starts a 3-epoch job, applies ``fault`` (``kill`` or ``link-down``) to node 1 in epoch 2; returns (seconds, code, line)."""
    nodes = [start_node(machines, node, port, folder, [*JOB, "--epochs", "3", "--save-dir", os.path.join(folder, f"run-{port}")],
                        dist_timeout) for node in (0, 1)]
    try:
        wait_for_log(folder, port, 0, IN_EPOCH_2, 300)
        if fault == "kill":
            kill_namespace(machines.names[1])
        else:
            ip("-n", machines.names[1], "link", "set", machines.links[1], "down")
        broken = time.monotonic()
        code, _ = finish(nodes[0], dist_timeout + 60)
        seconds = time.monotonic() - broken
    finally:
        kill_namespace(machines.names[1])
        finish(nodes[1], 30)
        ip("-n", machines.names[1], "link", "set", machines.links[1], "up", check=False)
    lines = [line for line in worker_log(folder, port, 0).splitlines() if line.startswith("hapi-runner: error:")]
    return seconds, code, lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist-timeout", type=int, default=20, help="the jobs' --dist-timeout; default 20")
    parser.add_argument("--repeats", type=int, default=1, help="jobs broken per fault; default 1")
    args = parser.parse_args(argv)
    reason = cannot_build_reason()
    if reason:
        print(f"bench/multinode.py: {reason}", file=sys.stderr)
        return 2
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as folder, two_machines() as machines:
        port = 29600
        for fault in ("kill", "link-down"):
            for _ in range(args.repeats):
                seconds, code, lines = break_job(machines, fault, port, folder, args.dist_timeout)
                line = lines[0].replace("hapi-runner: error: ", "") if len(lines) == 1 else f"{len(lines)} error lines"
                rows.append([fault, args.dist_timeout, f"{seconds:.1f}", code, line])
                port += 1
    print(table(["fault on node 1, early in epoch 2", "--dist-timeout", "seconds until node 0 ended", "node 0's launcher exit",
                 "node 0's line"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
