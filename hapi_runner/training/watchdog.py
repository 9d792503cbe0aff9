"""The watchdog of a multi-node job: a small process that ends a rank whose collective step no longer finishes.

A rank blocked in a gloo collective is inside C++ and may hold the GIL, so a
thread of its own cannot be relied on to wake up; a separate process can.
The training process (:class:`hapi_runner.training.multinode.PeerWatch`)
starts this module with ``python -m`` and talks to it over the child's stdin,
one line a message:

* ``beat``: a step finished, the clock starts again;
* ``phase WORDS``: what the rank is waiting for, used in the final line;
* ``pause``: the rank works alone for a while (reading its data), the clock
  stops until the next message;
* ``peers JSON``: every rank's host and the port its own watchdog answers on,
  so a stall can be blamed on the rank that no longer answers;
* end of file: the training process ended, so does the watchdog.

The watchdog listens on a TCP port (printed on its stdout at start) that
answers as long as its rank lives: other ranks probe it to tell a dead
process (refused) from a dead machine or link (no answer). When no beat
comes for ``--timeout`` seconds it prints ONE line on stderr, naming this
rank and the cause, and kills the training process with SIGKILL (a blocked
collective ignores anything softer). Checkpoints are written atomically, so
the kill never leaves a half-written one behind.

This module imports nothing heavy: it starts in a few milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Dict, List

ERROR_PREFIX = "hapi-runner: error: "
PROBE_SECONDS = 3.0


def probe(host: str, port: int, seconds: float = PROBE_SECONDS) -> str:
    """``"alive"``, ``"ended"`` (the port refuses: the process is gone) or ``"silent"`` (no answer within ``seconds``)."""
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return "alive"
    except ConnectionRefusedError:
        return "ended"
    except OSError:  # a timeout, no route to the host, a network that is down
        return "silent"


def diagnose(peers: List[Dict], me: int) -> str:
    """Which other rank is lost and how, from a probe of each one's watchdog port.

    Args:
        peers: ``{"rank", "host", "port"}`` of every rank (this one included, skipped).
        me: this rank.

    Returns:
        A clause such as ``rank 1 on 10.77.0.2 has ended (its port refuses connections)``.
    """
    others = [peer for peer in peers if peer["rank"] != me and peer.get("port")]
    if not others:  # still in the startup, before the ranks have told each other who they are
        return "not every rank has joined: start the same command on every node and check that they reach --master"
    lost = []
    for peer in others:
        state = probe(peer["host"], int(peer["port"]))
        if state == "ended":
            lost.append(f"rank {peer['rank']} on {peer['host']} has ended (its port refuses connections)")
        elif state == "silent":
            lost.append(f"rank {peer['rank']} on {peer['host']} does not answer (that machine or the network to it is down)")
    if not lost:
        return "every other rank still answers, so the connection between the ranks broke"
    return "; ".join(lost)


def stop_line(me: int, phase: str, cause: str, timeout: float) -> str:
    """The one line a rank ends with when the job cannot go on."""
    waited = f"no step finished for {timeout:.0f} s (--dist-timeout) while {phase}" if timeout else f"a collective failed while {phase}"
    return (f"{ERROR_PREFIX}rank {me} stops: {waited}: {cause}. Checkpoints already written are whole; "
            f"relaunch every node with --resume.")


def _serve(listener: socket.socket, parent: int, me: int, timeout: float) -> None:
    """The loop: beats reset the clock, probes are answered, silence past ``timeout`` ends the parent."""
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    pending, phase, peers, last = b"", "starting", [], time.monotonic()
    while True:
        left = None if last is None else timeout - (time.monotonic() - last)
        if left is not None and left <= 0:
            sys.stderr.write(stop_line(me, phase, diagnose(peers, me), timeout) + "\n")
            sys.stderr.flush()
            os.kill(parent, signal.SIGKILL)
            return
        ready, _, _ = select.select([stdin, listener], [], [], left)
        if listener in ready:
            connection, _ = listener.accept()
            connection.close()
        if stdin not in ready:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:  # the training process has ended
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            word, _, rest = line.decode("utf-8", "replace").partition(" ")
            last = None if word == "pause" else time.monotonic()
            if word == "phase":
                phase = rest
            elif word == "peers":
                peers = json.loads(rest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hapi_runner.training.watchdog")
    parser.add_argument("--timeout", type=float, required=True, help="seconds without a beat before the parent is ended")
    parser.add_argument("--rank", type=int, required=True, help="the parent's rank, for the final line")
    parser.add_argument("--parent", type=int, required=True, help="the training process's pid")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    listener = socket.create_server(("0.0.0.0", 0))
    print(listener.getsockname()[1], flush=True)
    with listener:
        _serve(listener, args.parent, args.rank, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
