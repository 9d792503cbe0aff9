"""Jobs that span machines: the gloo interface, a startup every rank agrees on, and failures that end.

``paddle.distributed.launch`` stays the engine; this module prepares what it
leaves to the job:

* **The interface.** Gloo binds each CPU rank to the address its hostname
  resolves to, or to the interface named by ``GLOO_SOCKET_IFNAME``. Where the
  hostname maps to a loopback address (Debian's ``127.0.1.1``), the other
  machines are told to connect to their own loopback and the job times out.
  When a job spans machines and the user has not set ``GLOO_SOCKET_IFNAME``,
  :func:`choose_gloo_interface` sets it to the interface that routes to the
  master, before the process group starts; a user's setting wins.
* **One startup.** After the process group starts, every rank tells the
  others its host, its code version, its configuration and whether its
  ``--data-dir`` exists (:func:`node_facts`); any disagreement stops every
  rank with the same line (:func:`check_agreement`).
* **Failures that end.** A watchdog process (:mod:`.watchdog`) ends a rank
  whose step has not finished for ``--dist-timeout`` seconds, and a C++
  terminate hook turns gloo's "connection reset" (which Paddle cannot raise
  into Python, so it aborts the process) into one line naming the lost rank.
* **The launch helper** (``hapi-runner launch``): the launcher's ``--host``
  filled in with this machine's address that routes to the master, after
  checking that the master can be reached.

Nothing here imports Paddle at module level.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import __version__
from ..errors import DataFileError, HapiRunnerError, UsageError
from .distributed import ensure_initialized, is_distributed, rank
from .watchdog import diagnose, stop_line

# Settings a rank may choose for its own machine: they may differ between ranks.
NODE_LOCAL_FIELDS = ("threads", "num_workers", "verbose", "device")
_SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def master_endpoint(env=None) -> Optional[Tuple[str, int]]:
    """``(ip, port)`` of the job's master as the launcher tells its processes (``PADDLE_MASTER``, else the first trainer endpoint)."""
    env = os.environ if env is None else env
    endpoint = env.get("PADDLE_MASTER") or env.get("PADDLE_TRAINER_ENDPOINTS", "").split(",")[0]
    host, _, port = endpoint.strip().rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def spans_machines(env=None) -> bool:
    """Whether the launched job has processes on more than one machine (``PADDLE_NNODES``, or the endpoints' hosts)."""
    env = os.environ if env is None else env
    nodes = env.get("PADDLE_NNODES", "")
    hosts = {e.rpartition(":")[0] for e in env.get("PADDLE_TRAINER_ENDPOINTS", "").split(",") if e.strip()}
    return (nodes.isdigit() and int(nodes) > 1) or len(hosts) > 1


def route_source(ip: str) -> str:
    """This machine's address that packets to ``ip`` leave from (a UDP ``connect`` asks the routing table; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((ip, 9))
        return probe.getsockname()[0]


def interface_of(address: str) -> Optional[str]:
    """The name of the interface holding the IPv4 ``address``, None if none does (or where ``ioctl`` is not there)."""
    try:
        import fcntl  # POSIX only: a job across machines is a Linux job, but the import must not break others
    except ImportError:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # an interface without an IPv4 address
                continue
            if socket.inet_ntoa(packed[20:24]) == address:
                return name
    return None


def choose_gloo_interface(env=None) -> Optional[str]:
    """Sets ``GLOO_SOCKET_IFNAME`` for a job that spans machines, unless the user did; returns the line that says so.

    Args:
        env: the environment to read and change. Defaults to ``os.environ``.

    Returns:
        A sentence for the startup line, or None for a job on one machine.

    Raises:
        HapiRunnerError: the master's address is a loopback address (the
            launcher took it from a hostname that maps to one), or no
            interface holds the address that routes to it.
    """
    env = os.environ if env is None else env
    master = master_endpoint(env)
    if master is None or not spans_machines(env):
        return None
    ip = master[0]
    if ip.startswith("127."):
        raise HapiRunnerError(
            f"the job spans machines but its master address is {ip}, a loopback address (this machine's hostname maps "
            f"to it); pass the launcher --host with this machine's address, or start it with hapi-runner launch.")
    if env.get("GLOO_SOCKET_IFNAME"):
        return f"gloo over {env['GLOO_SOCKET_IFNAME']} (GLOO_SOCKET_IFNAME as set)"
    source = route_source(ip)
    name = interface_of(source)
    if name is None:
        raise HapiRunnerError(f"no interface holds {source}, the address that routes to the master {ip}; "
                              f"set GLOO_SOCKET_IFNAME to the interface that reaches the other machines.")
    env["GLOO_SOCKET_IFNAME"] = name
    return f"gloo over {name} ({source}), the interface that routes to the master {ip} (GLOO_SOCKET_IFNAME was not set)"


def code_version() -> str:
    """``VERSION+DIGEST``: the package version and a hash of its Python sources, so an edited copy differs."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def node_facts(config, host: str, watch_port: int) -> Dict[str, Any]:
    """What this rank tells the others at startup: who it is, its code, its settings, and the data paths it lacks."""
    settings = {k: v for k, v in config.to_dict().items() if k not in NODE_LOCAL_FIELDS}
    paths = [(flag, getattr(config, name, None)) for flag, name in
             (("--data-dir", "data_dir"), ("--train-list", "train_list"), ("--val-list", "val_list"))]
    missing = [f"{flag} {path}" for flag, path in paths if path and not os.path.exists(path)]
    return {"rank": rank(), "host": host, "port": watch_port, "version": code_version(), "config": settings,
            "missing": missing}


def check_agreement(facts: List[Dict[str, Any]]) -> None:
    """Raises the same one-line error on every rank when one lacks data or runs other code or settings than rank 0.

    Raises:
        DataFileError: a rank's ``--data-dir`` (or list file) does not exist there.
        UsageError: a rank's code version or configuration differs from rank 0's.
    """
    first = facts[0]
    for fact in facts:
        if fact["missing"]:
            raise DataFileError(f"{fact['missing'][0]} does not exist on rank {fact['rank']} ({fact['host']}); every node "
                                f"needs the data at the same path: copy it there or use a shared file system.")
    for fact in facts[1:]:
        who = f"rank {fact['rank']} ({fact['host']})"
        if fact["version"] != first["version"]:
            raise UsageError(f"{who} runs hapi_runner {fact['version']} and rank 0 ({first['host']}) runs {first['version']}; "
                             f"install the same code on every node.")
        mine, theirs = first["config"], fact["config"]
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if differ:
            shown = ", ".join(f"--{k.replace('_', '-')} {theirs.get(k)!r} there, {mine.get(k)!r} on rank 0" for k in differ[:3])
            raise UsageError(f"{who} was started with other settings than rank 0 ({shown}); launch the same command on every node.")


class PeerWatch:
    """This rank's watchdog process (:mod:`.watchdog`) and what it is told.

    Args:
        timeout: seconds without a finished step before this rank is ended (``--dist-timeout``).
    """

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.me = rank()
        self.peers: List[Dict[str, Any]] = []
        self.current = "starting"
        self._last_beat = 0.0
        command = [sys.executable, "-m", "hapi_runner.training.watchdog", "--timeout", str(timeout),
                   "--rank", str(self.me), "--parent", str(os.getpid())]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_package_env())
        self.port = int(self.process.stdout.readline() or 0)

    def _send(self, line: str) -> None:
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):  # the watchdog has already ended this run
            pass

    def phase(self, words: str) -> None:
        """Names what the rank waits for now (the final line says it) and restarts the clock."""
        self.current = words
        self._send(f"phase {words}")

    def pause(self) -> None:
        """Stops the clock while the rank works alone (reading its data); the next phase or beat starts it again."""
        self._send("pause")

    def set_peers(self, facts: List[Dict[str, Any]]) -> None:
        self.peers = [{"rank": f["rank"], "host": f["host"], "port": f["port"]} for f in facts]
        self._send("peers " + json.dumps(self.peers))

    def beat(self) -> None:
        """A step finished; at most one message a second reaches the watchdog."""
        now = time.monotonic()
        if now - self._last_beat >= 1.0:
            self._last_beat = now
            self._send("beat")

    def stop(self) -> None:
        """Ends the watchdog (its stdin closes); safe to call twice."""
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)

    def callback(self):
        """A ``paddle.callbacks.Callback`` that beats at every training and evaluation step."""
        from paddle.callbacks import Callback

        watch = self

        class Heartbeat(Callback):
            def on_train_batch_end(self, step, logs=None):
                watch.beat()

            def on_eval_batch_end(self, step, logs=None):
                watch.beat()

            def on_train_begin(self, logs=None):
                watch.phase("starting training")

            def on_epoch_begin(self, epoch, logs=None):
                watch.phase(f"training epoch {epoch + 1}")

            def on_eval_begin(self, logs=None):
                watch.phase("evaluating")

        return Heartbeat()


def _package_env() -> Dict[str, str]:
    """The environment with this package importable, wherever it was imported from."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


_TERMINATE_HOOK: List[Any] = []  # the ctypes callback must outlive the call that installs it


def install_terminate_hook(watch: PeerWatch) -> bool:
    """Turns a C++ terminate (gloo's lost connection, which Paddle aborts on) into this rank's one line and exit code 1.

    Paddle runs the gradient all-reduce inside its backward pass; when gloo
    throws there (a peer's socket was reset), the exception cannot be raised
    into Python and the C++ runtime calls ``std::terminate``, which aborts with
    a C++ dump. The hook replaces that handler: it asks every peer's watchdog
    who is gone, prints the line, and exits. Returns False where the C++
    runtime offers no ``std::set_terminate``.
    """
    try:
        runtime = ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6")
        set_terminate = runtime._ZSt13set_terminatePFvvE
    except (OSError, AttributeError):
        return False
    handler_type = ctypes.CFUNCTYPE(None)

    def on_terminate():
        line = stop_line(watch.me, watch.current, diagnose(watch.peers, watch.me), 0)
        os.write(2, (line + "\n").encode())
        os._exit(1)

    handler = handler_type(on_terminate)
    set_terminate.argtypes, set_terminate.restype = [handler_type], ctypes.c_void_p
    set_terminate(handler)
    _TERMINATE_HOOK[:] = [handler]
    return True


def start(config) -> Optional[PeerWatch]:
    """Prepares a launched job before the data is read: the interface, the process group, the agreement, the watch.

    Returns the :class:`PeerWatch` of a job that spans machines (its
    callback beats during ``fit``; call ``stop`` at the end), None otherwise.

    Raises:
        HapiRunnerError: as :func:`choose_gloo_interface` and :func:`check_agreement` say, on every rank alike.
    """
    if not is_distributed():
        return None
    note = choose_gloo_interface()
    if note is None:
        return None
    import paddle.distributed as dist

    master_ip = master_endpoint()[0]
    host = route_source(master_ip)
    if os.environ.get("PADDLE_LOCAL_RANK", "0") == "0":
        print(f"hapi_runner: multi-node: rank {rank()} on {host}: {note}", flush=True)
    watch = PeerWatch(config.dist_timeout)
    watch.phase(f"waiting for every rank to join the process group at {master_ip}")
    ensure_initialized()
    facts: List[Any] = []
    dist.all_gather_object(facts, node_facts(config, host, watch.port))
    watch.set_peers(facts)
    try:
        check_agreement(facts)
    except HapiRunnerError:
        watch.stop()
        raise
    install_terminate_hook(watch)
    watch.pause()  # each rank now reads its own data, which may take long; a lost peer still ends it (the hook)
    return watch
