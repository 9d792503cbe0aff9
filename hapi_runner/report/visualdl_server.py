"""``hapi-runner visualdl RUN``: VisualDL's own server on a run's logs, answering every client.

VisualDL 2.5.3 under Werkzeug 3 answers HTTP 500 to a request without an
``Accept-Language`` header (curl, scripts, health checks): it picks the
page's language from that header alone unless ``--language`` is given. The
command starts the ``visualdl`` program with ``--language en`` and the run's
``visualdl/`` folder, so a browser and ``curl`` both get the page.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from typing import List

from ..errors import UsageError

DEFAULT_PORT = 8040
LANGUAGE = "en"
# VisualDL's own console script, started under this interpreter: its public entry point.
_LAUNCH = "import sys; from visualdl.server.app import main; sys.exit(main())"


def log_folder(run: str) -> str:
    """The VisualDL log folder of ``run``: ``RUN/visualdl``, or ``run`` itself when it holds the logs.

    Raises:
        UsageError: neither holds VisualDL logs.
    """
    for folder in (os.path.join(run, "visualdl"), run):
        if os.path.isdir(folder) and any(name.startswith("vdlrecords") for name in os.listdir(folder)):
            return folder
    raise UsageError(f"'{run}' holds no VisualDL logs (no vdlrecords file in it or in its visualdl/); pass a run folder "
                     f"trained without --no-visualdl, or its visualdl/ folder.")


def visualdl_argv(run: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> List[str]:
    """The command that serves ``run``'s logs: this Python running VisualDL with a default language.

    Args:
        run: a run folder or its ``visualdl/`` folder.
        host: the address to listen on. Defaults to ``127.0.0.1`` (this machine only).
        port: the port. Defaults to 8040, VisualDL's.
    """
    if importlib.util.find_spec("visualdl") is None:
        raise UsageError("VisualDL is not installed; pip install visualdl, then run this again.")
    return [sys.executable, "-c", _LAUNCH, "--logdir", log_folder(run), "--host", host, "--port", str(port),
            "--language", LANGUAGE]


def serve(run: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> int:
    """Serves ``run``'s VisualDL logs until Ctrl-C; returns VisualDL's exit code."""
    argv = visualdl_argv(run, host, port)
    print(f"hapi_runner: VisualDL of {argv[argv.index('--logdir') + 1]} at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    return subprocess.call(argv)


def build_visualdl_parser(parser):
    parser.add_argument("run", metavar="RUN", help="a run folder (or its visualdl/ folder)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on; default 127.0.0.1 (this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port; default {DEFAULT_PORT}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def run_visualdl(args) -> int:
    from ..config.checks import check_int

    check_int("port", args.port, minimum=1, maximum=65535)
    return serve(args.run, args.host, args.port)
