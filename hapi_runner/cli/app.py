"""The command line: ``hapi-runner train|summary``, ``python -m hapi_runner``, ``train.py``.

The train flags are built from the :class:`TrainConfig` fields' metadata,
one flag per field (:func:`add_config_flags`). Precedence: the dataclass
defaults (with ``--resume``, the run's own ``config.json`` instead), then
``--recipe``, then ``--config FILE``, then the flags given. Every flag is
declared with ``default=SUPPRESS`` so only what the user typed overrides the
lower layers. ``evaluate``, ``predict`` and ``export`` take train's flags for
the options they share (:func:`add_run_option`). Failures print one line and
exit 2 (usage) or 1 (runtime); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
import traceback
import typing
from typing import Any, Dict, List, Optional

from .. import __version__
from ..config.checks import alias_of, check_int, check_path, closest, parse_device, parse_threads
from ..config.train_config import AUTO_LR, DEFAULT_LR, TrainConfig, load_config_file, resolve_layers
from ..datacheck.commands import run_check_data, run_label_issues
from ..datacheck.confident import METHODS as LABEL_METHODS
from ..datacheck.hashes import NEAR_THRESHOLD
from ..datacheck.names import DATA_CHECK_PAGE, LABEL_ISSUES_DIR
from ..training.console import setup_logging
from ..errors import HapiRunnerError, UsageError
from ..deploy.serve_config import build_serve_parser, settings_from_args
from ..report.commands import build_compare_parser, build_report_parser, run_compare, run_report
from ..report.visualdl_server import build_visualdl_parser, run_visualdl

PROG = "hapi-runner"
COMMANDS = ("train", "summary", "evaluate", "predict", "export", "report", "compare", "check-data", "label-issues", "launch", "calibrate", "lr-find", "serve", "visualdl")
S = argparse.SUPPRESS


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so every error is one line.

    Abbreviated flags are refused: ``--epoch 3`` silently meaning ``--epochs 3`` hides typos.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message}{_closest_flag(message)} (see {self.prog} --help)")


OTHER_FLAGS = ("--config", "--list-models", "--list-datasets", "--json", "--debug", "--help", "--version")


def _closest_flag(message: str) -> str:
    """'; did you mean --lr?' for the first unknown flag of an ``unrecognized arguments`` message, or ''.

    The flag's meaning comes first (``--learning-rate`` is ``--lr``), its spelling next (``--batchsize``).
    """
    if not message.startswith("unrecognized arguments:"):
        return ""
    unknown = next((word for word in message.split()[2:] if word.startswith("--")), None)
    if unknown is None:
        return ""
    flags = {item.name: flag_of(item) for item in dataclasses.fields(TrainConfig)}
    unknown = unknown.split("=", 1)[0]
    found = flags.get(alias_of(unknown[2:])) or closest(unknown, [*flags.values(), *OTHER_FLAGS])
    return f"; did you mean {found}?" if found else ""


def flag_of(item: dataclasses.Field) -> str:
    """The flag of a TrainConfig field: ``--<name>``, ``--no-<name>`` for a switch that is on by default, or its own."""
    if "flag" in item.metadata:
        return item.metadata["flag"]
    name = item.name.replace("_", "-")
    return f"--no-{name}" if item.default is True else f"--{name}"


def default_text(item: dataclasses.Field) -> str:
    """``default: X`` for a field's help, X read from the dataclass (and what it means, where the metadata says)."""
    value = item.default_factory() if item.default is dataclasses.MISSING else item.default
    means = item.metadata.get("means")
    if value is None or value == {}:
        return f"default: {means or 'none'}"
    shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"default: {shown}" + (f" ({means})" if means else "")


def _argument_settings(item: dataclasses.Field, hints: Dict[str, Any]) -> Dict[str, Any]:
    """``add_argument``'s keywords for a field: a switch for a bool, else a typed value, as the metadata says."""
    meta = item.metadata
    if hints[item.name] is bool:
        return {"action": "store_const", "const": not item.default, "help": meta["help"].replace("%", "%%")}
    settings = {key: meta[key] for key in ("metavar", "choices", "nargs", "const", "type") if key in meta}
    value_type = hints[item.name]
    args = [a for a in typing.get_args(value_type) if a is not type(None)]
    if typing.get_origin(value_type) is list:
        settings.setdefault("nargs", "+")
    if "type" not in settings and args and args[0] in (int, float):
        settings["type"] = args[0]
    elif "type" not in settings and value_type in (int, float):
        settings["type"] = value_type
    settings["help"] = f"{meta['help']}; {default_text(item)}".replace("%", "%%")
    return settings


def add_config_flags(parser: argparse.ArgumentParser, names: Optional[List[str]] = None) -> None:
    """Adds the flag of every TrainConfig field (or of ``names``), in help groups, with ``default=SUPPRESS``.

    Only what the user types reaches the namespace, so the lower layers
    (defaults, recipe, config file) keep every value not typed.
    """
    hints = typing.get_type_hints(TrainConfig)
    groups: Dict[str, Any] = {}
    for item in dataclasses.fields(TrainConfig):
        if names is not None and item.name not in names:
            continue
        group = item.metadata["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        groups[group].add_argument(flag_of(item), dest=item.name, default=S, **_argument_settings(item, hints))


def build_train_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_config_flags(parser)
    misc = parser.add_argument_group("other")
    misc.add_argument("--config", default=S, metavar="FILE", help="YAML or JSON file of defaults (keys as the flags, - or _)")
    misc.add_argument("--list-models", action="store_true", help="print the model names and exit")
    misc.add_argument("--list-datasets", action="store_true", help="print the dataset names and exit")
    misc.add_argument("--json", action="store_true", help="print results.json to stdout at the end")
    misc.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def build_lr_find_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    build_train_parser(parser)
    sweep = parser.add_argument_group("the sweep")
    sweep.add_argument("--start-lr", type=float, default=1e-7, help="the first rate; default 1e-7")
    sweep.add_argument("--end-lr", type=float, default=10.0, help="the last rate; default 10")
    sweep.add_argument("--steps", type=int, default=100, help="batches of the sweep, at most one epoch; default 100")
    return parser


def build_summary_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_config_flags(parser, ["model", "dataset", "synthetic_like", "stem", "model_kwargs", "image_size", "data_dir",
                              "train_list", "channels"])
    parser.add_argument("--config", default=S, metavar="FILE", help="YAML or JSON file of defaults")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, without the layer table")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _add_common(parser: argparse.ArgumentParser, json_help: str) -> None:
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def add_run_option(parser: argparse.ArgumentParser, name: str, default: Any, shown: str, help: Optional[str] = None) -> None:
    """Adds train's flag of field ``name`` to another command: the same spelling and type, that command's default.

    Args:
        parser: the command's parser.
        name: the TrainConfig field.
        default: the value when the flag is not given (None: the run's).
        shown: the default as ``--help`` words it.
        help: the text before the default. Defaults to train's.
    """
    item = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    settings = _argument_settings(item, typing.get_type_hints(TrainConfig))
    settings["help"] = (help or item.metadata["help"]).replace("%", "%%")
    if settings.get("action") != "store_const":  # a switch says what it does, not its default
        settings["help"] += f"; default: {shown}"
    parser.add_argument(flag_of(item), dest=name, default=default, **settings)


def check_run_options(args: argparse.Namespace) -> argparse.Namespace:
    """The options evaluate, predict and export share with train, checked as TrainConfig checks them."""
    if getattr(args, "threads", None) is not None:
        args.threads = parse_threads(args.threads)
    if getattr(args, "device", None) is not None:
        args.device = parse_device(args.device)
    if getattr(args, "batch_size", None) is not None:
        check_int("batch_size", args.batch_size, minimum=1)
    if getattr(args, "data_dir", None) is not None:
        check_path("data_dir", args.data_dir)
    return args


def build_evaluate_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", metavar="RUN", help="a run folder written by train")
    parser.add_argument("--checkpoint", default=None, help="last (default), best, or a checkpoint path")
    parser.add_argument("--engine", choices=("dygraph", "inference"), default="dygraph",
                        help="dygraph (paddle.Model) or inference (the exported graph through paddle.inference); default dygraph")
    add_run_option(parser, "dataset", None, "the run's", help="evaluate on another dataset of the same shape")
    add_run_option(parser, "data_dir", None, "the run's")
    add_run_option(parser, "download", True, "")
    add_run_option(parser, "batch_size", None, "the run's")
    _add_engine_options(parser, "the run's", "with --engine inference on a GPU")
    _add_tta(parser)
    _add_common(parser, "print one JSON object")
    return parser


def _add_engine_options(parser: argparse.ArgumentParser, threads_shown: str, tensorrt_when: str) -> None:
    """``--threads``, ``--device`` and ``--tensorrt``, the options of every command that runs a trained network."""
    add_run_option(parser, "threads", None, threads_shown)
    add_run_option(parser, "device", "cpu", "cpu", help="cpu, gpu or gpu:N")
    parser.add_argument("--tensorrt", choices=("fp32", "fp16"), default=None, help=f"{tensorrt_when}: TensorRT at this precision")


def _add_tta(parser: argparse.ArgumentParser, shown: str = "what hapi-runner calibrate --tta chose, else none") -> None:
    parser.add_argument("--tta", choices=("none", "flip"), default=None,
                        help=f"flip: average each image's probabilities with its mirror's (refused for the MNIST family); default: {shown}")


def build_predict_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("model", metavar="RUN_OR_MODEL_DIR", help="a run folder or an exported model folder")
    parser.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+", help="PNG, JPEG, BMP or .npy files, or folders of them")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image; default 5")
    _add_engine_options(parser, "auto (every core)", "on a GPU")
    _add_tta(parser)
    parser.add_argument("--unsure-below", type=float, default=None, metavar="P",
                        help="answer 'unsure' when the calibrated top-1 probability is below P (0-1); default: always answer")
    parser.add_argument("--explain", default=None, metavar="OUT_DIR",
                        help="write a Grad-CAM overlay PNG and heat map .npy per image into OUT_DIR (needs the run folder)")
    parser.add_argument("--explain-class", default=None, metavar="NAME", help="with --explain: explain this class; default the top-1")
    parser.add_argument("--cam-layer", default=None, metavar="NAME", help="with --explain: the layer to weigh; default the last Conv2D")
    _add_common(parser, "print a JSON list, one object per file")
    return parser


def build_calibrate_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", metavar="RUN", help="a run folder written by train")
    parser.add_argument("--checkpoint", default="last", help="last (default: the weights the export holds), best, or a checkpoint path")
    _add_tta(parser, "none; flip also makes predict and evaluate flip by default")
    add_run_option(parser, "data_dir", None, "the run's")
    add_run_option(parser, "download", True, "")
    add_run_option(parser, "batch_size", None, "the run's")
    add_run_option(parser, "threads", None, "the run's")
    add_run_option(parser, "device", "cpu", "cpu", help="cpu, gpu or gpu:N")
    _add_common(parser, "print the calibration record as JSON")
    return parser


def build_export_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", metavar="RUN", help="a run folder written by train")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or a checkpoint path")
    parser.add_argument("--format", choices=("paddle", "onnx"), default="paddle",
                        help="paddle (paddle.inference) or onnx (needs pip install 'hapi-runner[onnx]'); default paddle")
    parser.add_argument("--output", default=None, help="default: RUN/inference (paddle) or RUN/onnx")
    add_run_option(parser, "data_dir", None, "the run's", help="where the evaluation files are, for the verification batch")
    add_run_option(parser, "download", True, "")
    add_run_option(parser, "device", "cpu", "cpu", help="the device the export will serve on, where its check runs: cpu, gpu or gpu:N")
    _add_common(parser, "print the verification report as JSON")
    return parser


def build_launch_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--master", required=True, metavar="IP:PORT", help="the first node's address and a free port, the same on every node")
    parser.add_argument("--nnodes", type=int, required=True, help="machines in the job")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="processes on this machine; default 1")
    parser.add_argument("--log-dir", default="log", help="the launcher's folder of workerlog.N files; default log")
    add_run_option(parser, "dist_timeout", 300, "300", help="seconds to wait for the master, then train's --dist-timeout")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN_FLAGS", help="train's flags, after --")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def build_check_data_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("data_dir", metavar="DIR", nargs="?", default=None,
                        help="the folder holding train/<class>/... (and val/), or the root of --train-list's paths")
    for name, default, shown in (("train_list", None, "class folders"), ("val_list", None, "a val/ folder, else --val-split"),
                                 ("image_size", 224, "224"), ("channels", 3, "3"), ("val_split", 0.1, "0.1"), ("seed", 0, "0"),
                                 ("num_workers", 0, "0"), ("cache_limit", None, "free disk less 10%")):
        add_run_option(parser, name, default, shown)
    parser.add_argument("--near-threshold", type=int, default=NEAR_THRESHOLD, metavar="BITS",
                        help=f"perceptual-hash bits (of 64) a near duplicate may differ in; default {NEAR_THRESHOLD}")
    parser.add_argument("--output", default=DATA_CHECK_PAGE, help=f"the HTML page to write; default ./{DATA_CHECK_PAGE}")
    _add_common(parser, "print the whole summary as JSON")
    return parser


def build_label_issues_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("folder", metavar="DIR", nargs="?", default=None,
                        help="a folder dataset (train/<class>/...): the same as --dataset folder --data-dir DIR")
    own = parser.add_argument_group("label-issues")
    own.add_argument("--folds", type=int, default=3, metavar="K", help="cross-fitting trainings, each on K-1 folds; default 3")
    own.add_argument("--method", choices=LABEL_METHODS, default="both",
                     help="confident learning's rule: both (C+NR), cj (confident joint) or noise-rate; default both")
    own.add_argument("--output", default=LABEL_ISSUES_DIR, metavar="DIR",
                     help=f"where label_issues.csv and .html go (with --apply: the corrected lists); default ./{LABEL_ISSUES_DIR}")
    own.add_argument("--run", default=None, metavar="RUN", help="take data, model and training flags from a run's config.json")
    own.add_argument("--apply", default=None, metavar="CSV", help="write corrected list files from an edited label_issues.csv")
    own.add_argument("--config", default=S, metavar="FILE", help="YAML or JSON file of defaults")
    _add_common(parser, "print what was written as JSON")
    add_config_flags(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train paddle.vision models with paddle.Model, in one command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    build_train_parser(sub.add_parser("train", help="train, evaluate and save a model"))
    build_summary_parser(sub.add_parser("summary", help="layer table, parameters and multiply-adds"))
    build_evaluate_parser(sub.add_parser("evaluate", help="loss, top-1/top-5, per-class precision/recall/F1 and confusion matrix of a run"))
    build_predict_parser(sub.add_parser("predict", help="classify image files with an exported model"))
    build_export_parser(sub.add_parser("export", help="export a run's checkpoint for paddle.inference or ONNX, verified"))
    build_report_parser(sub.add_parser("report", help="write RUN/report.html: curves, per-class table, confusion matrix, mistakes"))
    build_compare_parser(sub.add_parser("compare", help="runs side by side, and their evaluation curves overlaid"))
    build_check_data_parser(sub.add_parser("check-data", help="a folder dataset's counts, sizes, unreadable files, duplicates and leakage"))
    build_label_issues_parser(sub.add_parser("label-issues", help="images whose label a model trained without them disagrees with"))
    build_launch_parser(sub.add_parser("launch", help="start this machine's part of a multi-node job (paddle.distributed.launch, --host filled in)"))
    build_calibrate_parser(sub.add_parser("calibrate", help="fit temperature scaling on the evaluation set; ECE before and after"))
    build_lr_find_parser(sub.add_parser("lr-find", help="LR range test: lr_find.png, lr_find.json, a suggested --lr (train's flags)"))
    build_serve_parser(sub.add_parser("serve", help="serve an exported model over HTTP: POST /predict, a page at /, dynamic batching"))
    build_visualdl_parser(sub.add_parser("visualdl", help="serve a run's VisualDL logs (to browsers and curl alike)"))
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults (or the resumed run's config.json), then ``--recipe`` (the flag's, else the config file's), then the config file, then the flags given."""
    values = vars(args).copy()
    for key in ("command", "debug", "json", "list_models", "list_datasets", "start_lr", "end_lr", "steps"):
        values.pop(key, None)
    layers = []
    path = values.pop("config", None)
    if path:
        layers.append((load_config_file(path), f"config file '{path}'"))
    layers.append((values, "command line"))
    return resolve_layers(layers)


def _list_models() -> str:
    from ..model.builtin import MODELS

    return "\n".join(f"{name:20s} {spec.family}" + (f" (inputs padded to {spec.min_size}x{spec.min_size} at least)" if spec.min_size > 28 else "")
                     for name, spec in sorted(MODELS.items()))


def _list_datasets() -> str:
    from ..datasets import DATASETS

    lines = []
    for name, spec in sorted(DATASETS.items()):
        shape = "shape of --synthetic-like" if spec.format == "synthetic" else f"{spec.channels}x{spec.size}x{spec.size}, {spec.num_classes} classes"
        if spec.format == "folder":
            shape = "your own images: --data-dir DIR with train/<class>/... (3x224x224 unless --channels, --image-size)"
        lines.append(f"{name:20s} {shape}")
    return "\n".join(lines)


def _accuracies(figures: Dict[str, Any]) -> str:
    """``top-1 X, top-5 Y``; top-5 is None (and left out) where the classes are 5 or fewer."""
    text = f"top-1 {figures['acc_top1']:.4f}"
    return text if figures.get("acc_top5") is None else f"{text}, top-5 {figures['acc_top5']:.4f}"


def run_train(args: argparse.Namespace) -> int:
    if args.list_models or args.list_datasets:
        print(_list_models() if args.list_models else _list_datasets())
        return 0
    config = config_from_args(args)
    from ..training.distributed import is_main
    from ..training.runner import Runner

    runner = Runner(config)
    results = runner.fit()
    if not is_main():  # a launched job reports once, from rank 0
        return 0
    final = results["final_eval"]
    print(f"hapi_runner: done in {results['total_seconds']:.1f}s: eval loss {final['loss']:.4f}, "
          f"{_accuracies(final)}; results in {results['run_dir']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from ..training.environment import configure_threads
    from ..model.summary import summarize

    configure_threads(config.threads, config.model)
    report = summarize(config, print_table=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        shape = "x".join(map(str, report["input_shape"]))
        print(f"{report['model']} on {report['dataset']} ({shape}): {report['total_params']:,} parameters, "
              f"{report['macs']:,} multiply-adds ({report['macs'] / 1e6:.1f} M)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..deploy.tasks import evaluate_run
    from ..training.metrics import format_per_class

    check_run_options(args)
    if args.tensorrt and args.engine != "inference":
        raise UsageError("--tensorrt applies to --engine inference; add --engine inference or drop --tensorrt.")
    result = evaluate_run(args.run, checkpoint=args.checkpoint, engine=args.engine, dataset=args.dataset,
                          data_dir=args.data_dir, batch_size=args.batch_size, threads=args.threads, device=args.device,
                          download=args.download, tensorrt=args.tensorrt, tta=args.tta)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['dataset']} ({result['num_samples']} images, epoch {result['epoch']}, {result['engine']}): "
          f"loss {result['loss']:.4f}, {_accuracies(result)}, "
          f"{result['images_per_second']:.0f} images/s")
    print(f"calibration: temperature {result['temperature']:.3f}, ECE {result['ece']:.4f} (uncalibrated {result['ece_uncalibrated']:.4f})"
          + (", each image averaged with its mirror" if result["tta"] == "flip" else ""))
    print(format_per_class(result, result["class_names"]))
    print(f"confusion matrix: {result['confusion_files']['csv']} and .png")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..deploy.predict import predict_files

    check_run_options(args)
    if (args.explain_class or args.cam_layer) and not args.explain:
        raise UsageError("--explain-class and --cam-layer choose what --explain draws; add --explain OUT_DIR or drop them.")
    threads = None if args.threads in (None, "auto") else int(args.threads)  # auto: predict's own default, every core
    explain = None
    if args.explain:
        from ..deploy.gradcam import run_explainer

        explain = run_explainer(args.model, args.explain, explain_class=args.explain_class, layer_name=args.cam_layer,
                                device=args.device, threads=args.threads)
    results = predict_files(args.model, args.images, top_k=args.top_k, device=args.device, threads=threads,
                            tensorrt=args.tensorrt, tta=args.tta, unsure_below=args.unsure_below, explain=explain)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        top = ", ".join(f"{t['class_name']} {t['probability']:.3f}" for t in item["top_k"])
        print(f"{item['path']}: " + (f"unsure ({top})" if item["unsure"] else top)
              + (f"; Grad-CAM: {item['explanation']['overlay']}" if "explanation" in item else ""))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from ..deploy.calibrate import calibrate_run

    check_run_options(args)
    record = calibrate_run(args.run, checkpoint=args.checkpoint, tta=args.tta or "none", data_dir=args.data_dir,
                           batch_size=args.batch_size, threads=args.threads, device=args.device, download=args.download)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    where = f"; the export's sidecar {record['sidecar']} now uses it" if record["sidecar"] else "; the run has no export to update"
    print(f"temperature {record['temperature']:.3f} on {record['source']}: ECE {record['ece_before']:.4f} -> {record['ece_after']:.4f}, "
          f"NLL {record['nll_before']:.4f} -> {record['nll_after']:.4f}{where}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..deploy.tasks import export_run

    check_run_options(args)
    report = export_run(args.run, checkpoint=args.checkpoint, fmt=args.format, output=args.output, data_dir=args.data_dir,
                        download=args.download, device=args.device)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    where = report.get("directory") or report.get("file")
    agreement = report.get("top1_agreement")
    check = f"top-1 agreement {agreement:.2%}, largest logit difference {report['max_abs_diff']:.3g}" if agreement is not None else "not verified"
    print(f"exported to {where}: {check}")
    return 0


def run_launch(args: argparse.Namespace) -> int:
    from ..training.launch import LaunchPlan, run_launch as launch

    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    plan = LaunchPlan(args.master, args.nnodes, args.nproc_per_node, args.log_dir, args.dist_timeout, train_args)
    return launch(plan)


def run_lr_find(args: argparse.Namespace) -> int:
    from ..model.names import run_name
    from ..training.lr_find import check_sweep, find_lr
    from ..training.runner import Runner

    check_sweep(args.start_lr, args.end_lr, args.steps)
    config = config_from_args(args)
    if config.lr == AUTO_LR:  # the sweep sets every rate itself
        config = config.replace(lr=DEFAULT_LR)
    runner = Runner(config.replace(time_budget=None))
    finding = find_lr(runner, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    folder = config.save_dir or os.path.join(config.output_root, run_name(config.model, config.dataset), "lr_find")
    json_path, png_path = finding.save(folder)
    if args.json:
        print(json.dumps(finding.to_dict(), indent=2))
        return 0
    print(f"hapi_runner: {finding.summary()}")
    print(f"hapi_runner: the curve: {png_path}; the figures: {json_path}")
    if finding.suggestion is not None:
        print(f"train with: {train_command(config, lr=float(f'{finding.suggestion:.3g}'))}")
    return 0


def train_command(config: TrainConfig, **changes: Any) -> str:
    """The ``hapi-runner train`` command line of ``config`` with ``changes``: the flags of the fields not at their default."""
    import shlex

    words = [PROG, "train"]
    values = {**config.to_dict(), **changes}
    for item in dataclasses.fields(TrainConfig):
        default = item.default_factory() if item.default is dataclasses.MISSING else item.default
        value = values[item.name]
        if value == default or value is None:
            continue
        words.append(flag_of(item))
        if isinstance(value, bool):
            continue
        if isinstance(value, dict):
            words += [f"{k}={v}" for k, v in value.items()]
        else:
            words += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return " ".join(shlex.quote(w) for w in words)


def run_serve(args: argparse.Namespace) -> int:
    from ..deploy.serve import run_server

    return run_server(settings_from_args(args))


RUNNERS = {"train": run_train, "summary": run_summary, "evaluate": run_evaluate, "predict": run_predict, "export": run_export,
           "report": run_report, "compare": run_compare, "check-data": run_check_data, "label-issues": run_label_issues,
           "launch": run_launch, "calibrate": run_calibrate, "lr-find": run_lr_find, "serve": run_serve, "visualdl": run_visualdl}


def _setup_logging() -> None:
    # On the command line the package's lines are all there is: none reaches another handler.
    setup_logging().propagate = False


# What str.splitlines() breaks at, each shown as its escape: a value the user typed may hold one.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def _one_line(exc: BaseException) -> str:
    """The message on one line, whatever characters the values in it hold."""
    return str(exc).translate(_LINE_BREAKS)


def _os_error(exc: OSError) -> str:
    where = f": '{exc.filename}'" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space or choose another --save-dir, and run again (--resume continues from the last checkpoint)"
    else:
        advice = "check the path and its permissions (--debug shows where it happened)"
    return _one_line(f"{exc.strerror or exc}{where}; {advice}.")


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the CLI and returns the exit code (0 ok, 1 runtime failure, 2 usage error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train", *argv]
    debug = "--debug" in argv
    _setup_logging()
    try:
        args = build_parser().parse_args(argv)
        debug = getattr(args, "debug", False)
        return RUNNERS[args.command](args)
    except HapiRunnerError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except OSError as exc:  # a full disk, a lost mount, a permission: the reason and the file
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unforeseen still gets one line
        if debug:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def entry_point() -> None:
    """The ``hapi-runner`` console script."""
    sys.exit(main())
