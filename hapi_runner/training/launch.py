"""``hapi-runner launch``: ``paddle.distributed.launch`` with ``--host`` filled in, once the master answers.

The launcher takes this machine's address from its hostname. Where that maps
to a loopback address (Debian's ``127.0.1.1``), the master node waits for
itself forever ("master not ready") and the others are told to connect to
their own loopback. This helper asks the routing table which of this
machine's addresses reaches the master, passes it as ``--host``, and, on the
other nodes, waits (up to ``--dist-timeout``) for the master to answer
before starting the launcher, so an unreachable master is one line, not an
endless warning. Everything else is the launcher's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import List

from ..errors import HapiRunnerError, UsageError
from .multinode import route_source


@dataclass
class LaunchPlan:
    """What ``hapi-runner launch`` was asked for.

    Attributes:
        master: ``IP:PORT`` of the rendezvous, on the first node.
        nnodes: machines in the job.
        nproc_per_node: processes on this machine. Defaults to 1.
        log_dir: the launcher's log folder. Defaults to ``log``.
        timeout: seconds to wait for the master to answer. Defaults to 300.
        train_args: train's flags, passed on as given.
    """

    master: str
    nnodes: int
    nproc_per_node: int = 1
    log_dir: str = "log"
    timeout: float = 300
    train_args: List[str] = field(default_factory=list)

    def address(self):
        """``(ip, port)`` of ``master``; a one-line UsageError when it is not ``IP:PORT``."""
        host, _, port = self.master.rpartition(":")
        try:
            socket.inet_aton(host)
        except OSError:
            host = ""
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--master must be IP:PORT (10.0.0.1:29500), got {self.master!r}.")
        return host, int(port)


def wait_for_master(ip: str, port: int, timeout: float, say=print) -> None:
    """Returns once ``ip:port`` accepts a connection; one line after ``timeout`` seconds of trying.

    Raises:
        HapiRunnerError: nothing answered within ``timeout`` (the reason of the last attempt in the line).
    """
    deadline, next_note, reason = time.monotonic() + timeout, time.monotonic() + 10, ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=min(5.0, max(0.1, deadline - time.monotonic()))):
                return
        except OSError as exc:
            reason = exc.strerror or reason or "no answer"  # a timeout says less than the refusal or route before it
        if time.monotonic() >= next_note:
            say(f"hapi_runner: launch: waiting for the master {ip}:{port} ({reason})")
            next_note += 10
        time.sleep(0.5)
    raise HapiRunnerError(f"the master {ip}:{port} cannot be reached from this machine after {timeout:.0f} s ({reason}); "
                          f"start the first node's launch, check the address and that the port is open between the machines.")


def launcher_command(plan: LaunchPlan, host: str) -> List[str]:
    """The ``python -m paddle.distributed.launch`` command line for ``plan`` on the machine whose address is ``host``."""
    timeout = [] if "--dist-timeout" in plan.train_args else ["--dist-timeout", str(int(plan.timeout))]
    return [sys.executable, "-m", "paddle.distributed.launch", "--master", plan.master, "--nnodes", str(plan.nnodes),
            "--nproc_per_node", str(plan.nproc_per_node), "--host", host, "--log_dir", plan.log_dir,
            # A script that is not a .py file is run as it is, its arguments after it: this Python, -m hapi_runner.
            sys.executable, "-m", "hapi_runner", "train", *plan.train_args, *timeout]


def run_launch(plan: LaunchPlan, say=print) -> int:
    """Checks the master, starts the launcher with ``--host`` filled in, and returns its exit code."""
    ip, port = plan.address()
    if plan.nnodes < 1 or plan.nproc_per_node < 1:
        raise UsageError(f"--nnodes and --nproc-per-node must be at least 1, got {plan.nnodes} and {plan.nproc_per_node}.")
    try:
        host = route_source(ip)
    except OSError as exc:
        raise HapiRunnerError(f"no route from this machine to the master {ip} ({exc.strerror or exc}); "
                              f"check --master and this machine's network.") from exc
    if host != ip:  # the master is another machine: it must answer before the launcher waits on it forever
        wait_for_master(ip, port, plan.timeout, say)
    role = "the master node" if host == ip else f"a node of the job led by {ip}"
    say(f"hapi_runner: launch: this machine is {host}, {role}; logs in {plan.log_dir}/workerlog.N")
    command = launcher_command(plan, host)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.call(command, env=env)
