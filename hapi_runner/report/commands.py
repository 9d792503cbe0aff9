"""The ``hapi-runner report`` and ``hapi-runner compare`` commands: their parsers and what they run.

``hapi_runner.cli.app`` adds them with ``build_report_parser(sub.add_parser("report", ...))``
and ``build_compare_parser(...)``, and maps the names to :func:`run_report`
and :func:`run_compare`.
"""

from __future__ import annotations

import argparse
import json

from ..config.checks import check_int, check_path, parse_device, parse_threads
from .build import MAX_IMAGES, build_report
from .compare import compare_runs, format_comparison


def build_report_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", metavar="RUN", help="a finished run folder written by train")
    parser.add_argument("--checkpoint", default="best", help="best (default; last when none was monitored), last, or a checkpoint folder")
    parser.add_argument("--max-images", type=int, default=MAX_IMAGES, metavar="N", help=f"misclassified images in the gallery; default {MAX_IMAGES}")
    parser.add_argument("--output", default=None, help="the HTML file to write; default RUN/report.html")
    parser.add_argument("--data-dir", default=None, help="where the evaluation files are; default the run's")
    parser.add_argument("--no-download", dest="download", action="store_false", help="never download")
    parser.add_argument("--threads", default=None, help="CPU threads; default the run's setting")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N; default cpu")
    parser.add_argument("--json", action="store_true", help="print the path and the per-class metrics as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def build_compare_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="two finished run folders or more")
    parser.add_argument("--output", default=None, help="the overlay PNG of the evaluation curves; default ./compare.png")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def run_report(args: argparse.Namespace) -> int:
    from .evaluation import run_predictions
    from ..runfolder.finished import read_run

    check_int("max_images", args.max_images, 0)
    args.device = parse_device(args.device)
    if args.threads is not None:
        args.threads = parse_threads(args.threads)
    check_path("data_dir", args.data_dir)
    read_run(args.run)  # a folder that is not a finished run is refused before Paddle loads
    predictions = run_predictions(args.run, args.checkpoint, threads=args.threads, device=args.device,
                                  data_dir=args.data_dir, download=args.download)
    result = build_report(args.run, predictions, checkpoint=args.checkpoint, max_images=args.max_images, output=args.output)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    metrics = result["metrics"]
    print(f"report: {result['path']} (checkpoint epoch {result['checkpoint_epoch']}, top-1 {metrics['accuracy']:.4f}, "
          f"macro F1 {metrics['macro']['f1']:.4f})")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    result = compare_runs(args.runs, args.output)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_comparison(result))
    return 0
