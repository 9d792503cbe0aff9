"""A real ``hapi-runner serve`` in a subprocess on a free loopback port, and small HTTP clients for it."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    """``python -m hapi_runner serve TARGET --port 0 ...``; its stderr lines are collected as they come."""

    def __init__(self, target: str, *flags: str, timeout: float = 90):
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.process = subprocess.Popen([sys.executable, "-m", "hapi_runner", "serve", target, "--port", "0", *flags],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = self._wait_for_url(timeout)
        self.wait_ready(timeout)

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait_for_url(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
                if found:
                    return int(found.group(1))
            if self.process.poll() is not None:
                raise RuntimeError("the server exited: " + " | ".join(self.lines))
            time.sleep(0.05)
        raise RuntimeError("no startup line: " + " | ".join(self.lines))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _, _ = request(self.port, "GET", "/health")
            if status == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("never ready: " + " | ".join(self.lines))

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, and the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code


def request(port: int, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
            connection: Optional[http.client.HTTPConnection] = None) -> Tuple[int, Dict[str, str], bytes]:
    """``(status, headers, body)`` of one request (on ``connection`` when given, kept open)."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        if connection is None:
            conn.close()


def multipart(files: List[Tuple[str, bytes]], field: str = "file") -> Tuple[bytes, Dict[str, str]]:
    """A multipart/form-data body holding each ``(name, bytes)`` as a ``field`` part."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def predict(port: int, data: bytes, top_k: int = 5, connection=None) -> Tuple[int, object]:
    status, _, body = request(port, "POST", f"/predict?top_k={top_k}", data, {"Content-Type": "image/png"}, connection)
    return status, json.loads(body)
