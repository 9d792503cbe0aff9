"""The FastAPI application of ``hapi-runner serve``: routes, one-line JSON errors, the access log.

Imported only when serving (it needs the ``serve`` extra); :mod:`.serve` holds the model side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from importlib import resources
from typing import List, Optional, Tuple

import numpy as np

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .calibration import answers_from_logits, mirror
from .batching import QueueFull
from .serve import MAX_FILES, ROUTES, BadRequest, Service

log = logging.getLogger("hapi_runner")
PAGE = "serve_page.html"
# Uploads up to this size are decoded on the event loop: a small image decodes in well under a millisecond,
# while handing it to a thread costs a GIL handover (up to 5 ms each when many requests arrive together).
INLINE_DECODE_BYTES = 64 * 1024
# A raw body or multipart parts: what the OpenAPI description shows for POST /predict.
_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


def error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    """``{"error": message}`` with ``status``: every refusal the service gives looks like this."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


class AccessLog:
    """One line per request: client, method, path, status, milliseconds, and the batch size it rode in.

    A plain ASGI middleware rather than uvicorn's access log, which knows neither the time taken nor the batch.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]  # what the client gets if the app fails before answering
        state = scope.setdefault("state", {})

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            client = scope.get("client") or ("-", 0)
            batch = state.get("batch_size", "-")
            log.info(f"{client[0]} {scope['method']} {scope['path']} {status[0]} "
                     f"{(time.perf_counter() - started) * 1000:.1f} ms batch {batch}")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass ``limit`` (from Content-Length, before reading)."""
    declared = request.headers.get("content-length", "")
    too_big = f"the request body is larger than the {limit:,} bytes the server takes (--max-upload); send a smaller image."
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(413, too_big)
    return bytes(body)


async def _once(data: bytes):
    yield data


async def read_uploads(request: Request, limit: int) -> List[Tuple[Optional[str], bytes]]:
    """``(file name or None, bytes)`` per image: the multipart ``file`` fields, or the whole body."""
    body = await read_body(request, limit)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return [(None, body)]
    try:
        form = await MultiPartParser(request.headers, _once(body), max_files=MAX_FILES).parse()
    except MultiPartException as exc:
        raise BadRequest(400, f"the multipart body cannot be read ({exc.message}); send each image as a field named file.") from None
    files = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
    if not files:
        raise BadRequest(400, "the multipart body has no file field; send each image as a file field named file "
                              "(curl -F file=@image.png).")
    return [(item.filename or None, await item.read()) for item in files]


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return error(404, f"there is no {request.url.path}; the service answers {ROUTES}.")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error(405, f"{request.method} is not allowed on {request.url.path}; use {allowed or 'another method'}.",
                         headers=exc.headers)
        return error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        return error(422, f"{where}: {first.get('msg', 'invalid')} (got {first.get('input')!r}); e.g. ?top_k=5.")


def build_app(service: Service) -> FastAPI:
    """The application serving ``service``: routes, error handlers, access log, warm-up and shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        warming = asyncio.get_running_loop().create_task(service.warm_up())
        yield
        await warming
        await service.batcher.stop()

    app = FastAPI(title="hapi-runner serve", summary="Image classification with an exported paddle model",
                  lifespan=lifespan)
    _add_error_handlers(app)
    app.add_middleware(AccessLog)
    page = resources.files(__package__).joinpath(PAGE).read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, summary="A page to try the model: drop or pick images")
    async def index():
        return HTMLResponse(page)

    @app.get("/health", summary="200 once the predictors answered a warm-up batch, else 503")
    async def health():
        if service.ready:
            return {"status": "ready"}
        return JSONResponse({"status": "warming up"}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/metadata", summary="Model, classes, input shape, the run's metrics and the export's check")
    async def metadata():
        return service.metadata()

    @app.post("/predict", summary="Classes and probabilities per image (body, or multipart file fields)",
              openapi_extra=_PREDICT_BODY)
    async def predict(request: Request, top_k: int = Query(5, ge=1, le=1000, description="classes per image")):
        return await _predict(service, request, top_k)

    return app


async def _predict(service: Service, request: Request, top_k: int):
    try:
        service.batcher.admit()
    except QueueFull as exc:
        return error(503, f"the server is busy: {exc}; retry in a second.", headers={"Retry-After": "1"})
    service.accepted += 1
    try:
        uploads = await read_uploads(request, service.settings.max_upload)
        if sum(len(data) for _, data in uploads) <= INLINE_DECODE_BYTES:
            inputs = service.decode(uploads)
        else:
            inputs = await run_in_threadpool(service.decode, uploads)
    except BadRequest as exc:
        service.batcher.withdraw()
        service.answered += 1
        return error(exc.status, str(exc))
    except ClientDisconnect:  # the client went away mid-body: nobody waits for an answer any more
        service.batcher.withdraw()
        service.abandoned += 1
        return error(400, "the client closed the connection before the body was complete.")
    except BaseException:
        service.batcher.withdraw()
        raise
    if service.tta == "flip":  # the image and its mirror, averaged, as predict does with the export's --tta
        inputs = np.concatenate([inputs, mirror(inputs)])
    logits, batch_size = await service.batcher.submit(inputs)
    request.state.batch_size = batch_size
    if service.tta == "flip":
        logits = np.stack(np.split(np.asarray(logits), 2))
    answers = answers_from_logits(logits, class_names=service.model.class_names, top_k=top_k,
                                  temperature=service.temperature)
    service.answered += 1
    return JSONResponse([{"file": name, **answer} for (name, _), answer in zip(uploads, answers)])
