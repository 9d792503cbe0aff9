"""``hapi-runner serve``: an exported model behind HTTP, with dynamic batching.

FastAPI (on Starlette) with uvicorn, as PaddleX serves its models: routes,
multipart parsing, OpenAPI and a graceful shutdown come from a stack that
production services use, and this module only wires them to the predictor:

- ``POST /predict``: an image as the body, or several as multipart ``file``
  fields; ``?top_k=N``. Answers a JSON list, one object per image, with the
  fields of ``hapi-runner predict --json`` (``file`` in place of ``path``),
  computed by the same functions, so both print the same digits.
- ``GET /health``: 200 once every predictor answered a warm-up batch, 503 before.
- ``GET /metadata``: model, classes, input, the run's metrics, the export's check.
- ``GET /``: a page to try the model by dropping images on it (no external files).
- ``GET /openapi.json`` (and ``/docs``, which loads Swagger UI from a CDN).

Bad input gets a 4xx and one line of JSON, ``{"error": "..."}``; the server
goes on. The request handlers decode images in threads; :mod:`.batching`
runs them through the predictors.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import signal
import socket
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import HapiRunnerError, UsageError
from ..runfolder.layout import EXPORT_REPORT, RESULTS
from .batching import DynamicBatcher
from .inference import InferenceModel, default_threads
from .calibration import check_tta
from .predict import model_input, resolve_model_dir
from .serve_config import ServeSettings

log = logging.getLogger("hapi_runner")

# Seconds uvicorn gives accepted requests to finish after SIGTERM before it drops them.
SHUTDOWN_GRACE_S = 10
# Most images one multipart request may carry: the upload limit bounds the bytes, this the decoding work.
MAX_FILES = 256
ROUTES = "GET /, GET /health, GET /metadata, POST /predict, GET /openapi.json"


def predictor_threads(cpus: int, workers: int) -> int:
    """CPU math threads per predictor: the CPUs less one for the server's own work (HTTP, decoding, answers),
    from three CPUs on, shared among the workers; at least one.

    On one or two CPUs a core kept from the predictor would cost more than the server's work needs.
    """
    spare = 1 if cpus > 2 else 0
    return max(1, (cpus - spare) // max(1, workers))


def require_web_stack() -> None:
    """Raises a one-line error naming the extra when FastAPI, uvicorn or python-multipart is missing."""
    missing = []
    for modules, package in ((("fastapi",), "fastapi"), (("uvicorn",), "uvicorn"), (("python_multipart", "multipart"), "python-multipart")):
        if not any(_importable(module) for module in modules):
            missing.append(package)
    if missing:
        raise HapiRunnerError(f"serving needs {', '.join(missing)}, which is not installed; "
                              f"pip install 'hapi-runner[serve]' (or pip install fastapi uvicorn python-multipart).")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module set to None in sys.modules, as a broken install leaves it
        return False


class BadRequest(Exception):
    """A request the server refuses: its HTTP status and the one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Service:
    """The model, its predictors and the batcher behind the routes.

    Args:
        settings: what to serve and how.

    Raises:
        HapiRunnerError, UsageError: no export there, or it cannot be loaded.
    """

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.model_dir = resolve_model_dir(settings.target)
        self.threads = settings.threads or predictor_threads(default_threads(), settings.workers)
        self.batcher = DynamicBatcher(settings.workers, max_batch=settings.max_batch,
                                      max_delay_ms=settings.max_delay_ms, max_queue=settings.max_queue)
        self.models: List[InferenceModel] = []
        self.batcher.load(self._load_predictor)
        self.model = self.models[0]  # preprocessing reads only its sidecar, so any thread may use it
        sidecar = self.model.sidecar or {}
        # What `hapi-runner calibrate` recorded in the export: the same answers as predict's.
        self.temperature = float(sidecar.get("temperature") or 1.0)
        self.tta = check_tta(sidecar.get("tta"), sidecar.get("dataset"))
        self.ready = False
        self.accepted = 0  # /predict requests let into the queue
        self.answered = 0  # of which answered, with classes or a 4xx
        self.abandoned = 0  # of which left by their clients before the body was complete

    def _load_predictor(self, index: int):
        model = InferenceModel(self.model_dir, device=self.settings.device, threads=self.threads)
        self.models.append(model)
        return model.predict

    @property
    def input_shape(self) -> List[int]:
        sidecar = self.model.sidecar or {}
        if self.model.input_shape:
            return list(self.model.input_shape)
        side = int(sidecar.get("image_size") or sidecar.get("pad_to"))
        return [int(sidecar["channels"]), side, side]

    async def warm_up(self) -> None:
        """One batch of one image through every predictor, then ``ready``."""
        seconds = await self.batcher.warm_up(np.zeros([1, *self.input_shape], dtype=np.float32))
        self.ready = True
        log.info(f"ready: the warm-up batch took {seconds * 1000:.0f} ms")

    def decode(self, uploads: List[Tuple[Optional[str], bytes]]) -> np.ndarray:
        """The float32 batch of the uploads, decoded and preprocessed as ``predict`` does it.

        Raises:
            BadRequest: an upload is empty, too many pixels, or not a readable image.
        """
        names = []
        for index, (name, data) in enumerate(uploads):
            names.append(name or ("body" if len(uploads) == 1 else f"file {index + 1}"))
            if not data:
                raise BadRequest(400, f"'{names[-1]}' is empty; send the bytes of a PNG, JPEG, BMP, WebP or TIFF file.")
            self._check_pixels(data, names[-1])
        try:
            return model_input(self.model, [io.BytesIO(data) for _, data in uploads], names)
        except UsageError as exc:
            raise BadRequest(400, str(exc)) from None

    def _check_pixels(self, data: bytes, name: str) -> None:
        """Refuses an image larger than ``max_pixels`` from its header, before any pixel is decoded."""
        from PIL import Image

        limit = self.settings.max_pixels
        try:
            with Image.open(io.BytesIO(data)) as image:
                size = f"{image.size[0]}x{image.size[1]} pixels" if image.size[0] * image.size[1] > limit else None
        except Image.DecompressionBombError as exc:  # Pillow's own limit, far above ours by default
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)):,} pixels" if found else "beyond Pillow's limit"
        except Exception:  # not an image at all: model_input says so in predict's words
            return
        if size:
            raise BadRequest(413, f"'{name}' is {size}; the server decodes at most {limit:,} pixels (--max-pixels); "
                                  f"send a smaller image.")

    def metadata(self) -> Dict[str, Any]:
        """What the service serves: model, classes, input, the run's metrics and the export's check."""
        sidecar = self.model.sidecar or {}
        run_dir = os.path.dirname(os.path.abspath(self.model_dir))
        batches = self.batcher.batches
        return {
            "model": sidecar.get("model"), "dataset": sidecar.get("dataset"), "class_names": self.model.class_names,
            "input_shape": self.input_shape, "preprocessing": {k: sidecar.get(k) for k in ("mean", "std", "pad_to", "image_preprocessing") if k in sidecar},
            "engine": self.model.engine, "model_dir": self.model_dir,
            "run_metrics": (_read_json(os.path.join(run_dir, RESULTS)) or {}).get("final_eval"),
            "export_check": _read_json(os.path.join(self.model_dir, EXPORT_REPORT)),
            "serving": {**{k: v for k, v in asdict(self.settings).items() if k != "target"}, "threads": self.threads},
            "stats": {"accepted": self.accepted, "answered": self.answered, "abandoned": self.abandoned, "batches": batches, "images": self.batcher.images,
                      "mean_batch": self.batcher.images / batches if batches else None},
        }


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the server starts so that port 0's choice is known and printed."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # The protocol number matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say IPPROTO_TCP,
        # and with Nagle on, every answer waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host.") from None
    sock.listen(2048)
    return sock


@contextlib.contextmanager
def _quiet_stop_signals():
    """SIGTERM and Ctrl-C end the server gracefully and the command with 0.

    uvicorn catches both, drains, and raises the signal again once done, so
    that the process ends as the signal says; the handlers here take that
    last signal instead, for an exit code that says the stop went well.
    """
    received = []
    previous = {sig: signal.signal(sig, lambda number, frame: received.append(number)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_server(settings: ServeSettings) -> int:
    """Serves until SIGTERM or Ctrl-C; returns 0 once the accepted requests are answered."""
    require_web_stack()
    import uvicorn

    from .serve_app import build_app

    service = Service(settings)
    app = build_app(service)
    sock = _listen(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    server = uvicorn.Server(config)
    sidecar = service.model.sidecar or {}
    log.info(f"serving {sidecar.get('model') or 'the model'} from {service.model_dir} at http://{shown_host}:{port}/ "
             f"(max batch {settings.max_batch}, max delay {settings.max_delay_ms:g} ms, {settings.workers} worker(s) x "
             f"{service.threads} thread(s)); warming up, GET /health says when ready")
    with _quiet_stop_signals() as received:
        server.run(sockets=[sock])
    why = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}.get(received[0], "a signal") if received else "shutdown"
    log.info(f"stopped on {why}: of {service.accepted} accepted requests, {service.answered} answered and "
             f"{service.abandoned} abandoned by their clients")
    return 0
