"""``hapi-runner serve``'s settings and flags, without the web stack (so ``--help`` works without the extra)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Optional

from ..config.checks import check_int
from ..errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(text: str) -> int:
    """Bytes from ``8M``, ``512k``, ``1.5MB`` or ``1048576`` (binary units)."""
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError(f"--max-upload '{text}' is not a size; write bytes or a number with k, M or G, e.g. 8M.")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 1:
        raise UsageError(f"--max-upload must be at least 1 byte, got '{text}'; e.g. 8M.")
    return value


@dataclass
class ServeSettings:
    """What ``hapi-runner serve`` serves, where, and how it batches (the flags of the same names).

    Attributes:
        target: a run folder or an export folder.
        host: the address to listen on. Defaults to 127.0.0.1 (this machine only).
        port: the TCP port; 0 picks a free one. Defaults to 8000.
        max_batch: most images per predictor run. Defaults to 32: on a CPU,
            ResNet-18's images/s barely grow past 32 while each batch's latency does.
        max_delay_ms: longest a request waits for others to share its batch.
            Defaults to 5 ms: small beside a network's own milliseconds, long
            enough for a burst of clients to meet.
        workers: predictors run side by side, each in its own thread. Defaults to 1.
        threads: CPU math threads per predictor. Defaults to the CPUs (less one for the server
            from three CPUs on) divided by the workers.
        max_upload: largest request body in bytes. Defaults to 8 MiB.
        max_queue: most requests accepted and not yet batched; more get 503. Defaults to 256.
        max_pixels: largest image (width x height) decoded. Defaults to 50 M.
        device: ``cpu``, ``gpu`` or ``gpu:N``. Defaults to ``cpu``.
    """

    target: str
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_delay_ms: float = 5.0
    workers: int = 1
    threads: Optional[int] = None
    max_upload: int = 8 * 2**20
    max_queue: int = 256
    max_pixels: int = 50_000_000
    device: str = "cpu"

    def check(self) -> "ServeSettings":
        """Raises UsageError for a value out of range; returns self."""
        check_int("port", self.port, minimum=0, maximum=65535)
        for name in ("max_batch", "workers", "max_queue", "max_pixels"):
            check_int(name, getattr(self, name), minimum=1)
        if self.threads is not None:
            check_int("threads", self.threads, minimum=1)
        if not 0 <= self.max_delay_ms <= 1000:
            raise UsageError(f"--max-delay-ms {self.max_delay_ms} is out of range; choose 0-1000 (default 5).")
        return self


def build_serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``hapi-runner serve``'s arguments; defaults from :class:`ServeSettings`."""
    d = ServeSettings(target="")
    parser.add_argument("target", metavar="RUN_OR_MODEL_DIR", help="a run folder or an exported model folder")
    parser.add_argument("--host", default=d.host, help=f"address to listen on (0.0.0.0: every interface); default {d.host}")
    parser.add_argument("--port", type=int, default=d.port, help=f"TCP port, 0 for a free one; default {d.port}")
    parser.add_argument("--max-batch", type=int, default=d.max_batch, help=f"most images per predictor run; default {d.max_batch}")
    parser.add_argument("--max-delay-ms", type=float, default=d.max_delay_ms,
                        help=f"longest a request waits for others to share its batch; default {d.max_delay_ms:g}")
    parser.add_argument("--workers", type=int, default=d.workers, help=f"predictors side by side; default {d.workers}")
    parser.add_argument("--threads", type=int, default=None, help="CPU math threads per predictor; default: (CPUs - 1) / workers, or CPUs / workers on 1-2 CPUs")
    parser.add_argument("--max-upload", default="8M", metavar="SIZE",
                        help="largest request body (k, M, G); default 8M")
    parser.add_argument("--max-queue", type=int, default=d.max_queue,
                        help=f"most requests waiting for a batch; more are answered 503; default {d.max_queue}")
    parser.add_argument("--max-pixels", type=int, default=d.max_pixels,
                        help=f"largest image decoded, width x height; default {d.max_pixels:,}")
    parser.add_argument("--device", default=d.device, help="cpu, gpu or gpu:N; default cpu")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """The checked settings of parsed ``serve`` arguments."""
    values = {name: getattr(args, name) for name in ServeSettings.__dataclass_fields__}
    values["max_upload"] = parse_size(values["max_upload"])
    return ServeSettings(**values).check()
