"""The command line: ``hapi-runner train|summary``, ``python -m hapi_runner``, ``train.py``.

Flags map one to one onto :class:`TrainConfig` fields. Precedence: the
dataclass defaults, then ``--config FILE``, then the flags given. Every flag
is declared with ``default=SUPPRESS`` so only what the user typed overrides
the lower layers. Failures print one line and exit 2 (usage) or 1 (runtime);
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
import traceback
import warnings
from typing import List, Optional

from . import __version__
from .datasets.registry import PIPELINES
from .config import (AMP_DTYPES, AMP_LEVELS, LR_SCHEDULES, OPTIMIZERS, STEMS, TrainConfig, load_config_file,
                     resolve_layers)
from .recipes import ABOUT, RECIPES
from .errors import HapiRunnerError, UsageError

PROG = "hapi-runner"
COMMANDS = ("train", "summary", "evaluate", "predict", "export")
S = argparse.SUPPRESS


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so every error is one line.

    Abbreviated flags are refused: ``--epoch 3`` silently meaning ``--epochs 3`` hides typos.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _add_model_args(group, with_data_dir: bool = True) -> None:
    group.add_argument("--model", default=S, help="model name (--list-models); default lenet")
    group.add_argument("--dataset", default=S, help="dataset name (--list-datasets); default fashion-mnist-mini")
    if with_data_dir:
        group.add_argument("--data-dir", default=S, help="folder searched first for the dataset files")
    group.add_argument("--synthetic-like", default=S, help="with --dataset synthetic: the dataset whose shape to imitate; default cifar10")
    group.add_argument("--stem", choices=STEMS, default=S, help="'cifar': 3x3 stride-1 first conv, no max-pool (ResNets); default: paddle.vision's")


def build_train_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    data = parser.add_argument_group("model and data")
    _add_model_args(data)
    data.add_argument("--synthetic-size", type=int, default=S, help="training images of --dataset synthetic; default 1024")
    data.add_argument("--val-split", type=float, default=S, metavar="FRACTION", help="hold out this fraction of the train set for evaluation; default: evaluate on the test split")
    data.add_argument("--no-augment", dest="augment", action="store_const", const=False, default=S, help="turn off the training augmentation (random crop and flip on Cifar)")
    data.add_argument("--no-normalize", dest="normalize", action="store_const", const=False, default=S,
                      help="feed raw 0-255 pixels instead of (pixel/255 - mean)/std, as seed 002 does")
    data.add_argument("--no-download", dest="download", action="store_const", const=False, default=S, help="never download; fail if the files are not found")
    data.add_argument("--pretrained", default=S, metavar="PATH", help="initial weights (.pdparams); tensors of another shape are skipped with a warning")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=S, help="epochs in total; default 5")
    opt.add_argument("--batch-size", type=int, default=S, help="images per batch (per device); default 64")
    opt.add_argument("--optimizer", choices=OPTIMIZERS, default=S, help="default momentum")
    opt.add_argument("--lr", type=float, default=S, help="learning rate; default 0.01")
    opt.add_argument("--momentum", type=float, default=S, help="default 0.9")
    opt.add_argument("--weight-decay", type=float, default=S, help="L2Decay for momentum/sgd/adam, decoupled for adamw; default 1e-4")
    opt.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=S, help="default constant")
    opt.add_argument("--lr-step-epochs", type=int, nargs="+", default=S, metavar="EPOCH", help="step: the period; multistep: the milestones; default 30")
    opt.add_argument("--lr-gamma", type=float, default=S, help="factor at each step; default 0.1")
    opt.add_argument("--warmup-epochs", type=int, default=S, help="linear warm-up from 0; default 0")
    opt.add_argument("--seed", type=int, default=S, help="default 0")
    opt.add_argument("--recipe", choices=sorted(RECIPES), default=S,
                     help="a named set of hyper-parameters (hapi_runner/recipes.py): "
                          + "; ".join(f"{k}: {v}" for k, v in sorted(ABOUT.items()))
                          + ". A config file and flags beat it; default none")

    hw = parser.add_argument_group("hardware")
    hw.add_argument("--device", default=S, help="auto, cpu, gpu or gpu:N; default auto (a GPU if one is visible)")
    hw.add_argument("--gpu", action="store_const", const=True, default=S, help="require a GPU: fail rather than train on the CPU")
    hw.add_argument("--threads", default=S, help="CPU math threads, N or auto (1 for lenet, all cores otherwise); default auto")
    hw.add_argument("--amp", type=str.upper, choices=AMP_LEVELS, default=S, help="mixed precision on GPU; ignored with a warning on CPU")
    hw.add_argument("--amp-dtype", choices=AMP_DTYPES, default=S, help="the low-precision type of --amp; default float16 (bfloat16 needs Ampere or newer)")
    hw.add_argument("--no-cudnn-tuning", dest="cudnn_tuning", action="store_const", const=False, default=S,
                    help="GPU: skip cuDNN's exhaustive convolution search (and, with --amp, its persistent batch norm)")

    data_in = parser.add_argument_group("input pipeline")
    data_in.add_argument("--pipeline", choices=PIPELINES, default=S,
                         help="batched: transform whole batches with numpy in the collate; per-sample: the same transforms "
                              "one image at a time in the Dataset, Paddle's default collate; default batched")
    data_in.add_argument("--num-workers", type=int, default=S, help="DataLoader worker processes; default 0 on CPU, min(4, cores) on GPU")
    data_in.add_argument("--prefetch-factor", type=int, default=S, help="batches each worker prepares ahead; default 2")
    data_in.add_argument("--persistent-workers", action="store_const", const=True, default=S,
                         help="keep workers between epochs (augmentation is then no longer a function of the epoch, "
                              "so a resumed run sees other crops); default off")
    data_in.add_argument("--no-shared-memory", dest="use_shared_memory", action="store_const", const=False, default=S,
                         help="workers pass batches through pipes instead of /dev/shm; default: shared memory")

    run = parser.add_argument_group("run folder and logging")
    run.add_argument("--save-dir", default=S, help="run folder; default: a new output/<model>-<dataset>/run_NNN")
    run.add_argument("--output-root", default=S, help="parent of the numbered run folders; default output")
    run.add_argument("--overwrite", action="store_const", const=True, default=S, help="allow a --save-dir that holds a finished run")
    run.add_argument("--eval-freq", type=int, default=S, help="evaluate every N epochs; default 1")
    run.add_argument("--log-freq", type=int, default=S, help="print every N steps; default 20")
    run.add_argument("--verbose", type=int, default=S, help="0 quiet, 1 progress bar, 2 log lines; default 1 on a terminal, else 2")

    run.add_argument("--no-visualdl", dest="visualdl", action="store_const", const=False, default=S, help="do not write VisualDL logs")

    ckpt = parser.add_argument_group("checkpoints and resume")
    ckpt.add_argument("--save-freq", type=int, default=S, help="write checkpoints/epoch_N every N epochs (and the last); default 1")
    ckpt.add_argument("--keep-last", type=int, default=S, metavar="K", help="keep the K newest epoch checkpoints (best and last always stay); default: all")
    ckpt.add_argument("--resume", nargs="?", const="latest", default=S, metavar="PATH",
                      help="continue a run: its folder, a checkpoint, or nothing for the latest run of this model and dataset")
    ckpt.add_argument("--monitor", default=S, help="metric that decides 'best' (acc_top1, acc_top5, loss; train_ prefix for training metrics); default acc_top1")
    ckpt.add_argument("--mode", choices=("min", "max"), default=S, help="whether the monitor should go down or up; default: loss min, accuracies max")

    stop = parser.add_argument_group("early stopping and LR on plateau")
    stop.add_argument("--early-stopping-patience", type=int, default=S, metavar="EPOCHS", help="stop after this many epochs without improvement; default off")
    stop.add_argument("--min-delta", type=float, default=S, help="smallest change that counts as an improvement; default 0")
    stop.add_argument("--baseline", type=float, default=S, help="value the monitor must beat before anything counts; default none")
    stop.add_argument("--start-from-epoch", type=int, default=S, help="epochs before early stopping starts counting; default 0")
    stop.add_argument("--restore-best", action="store_const", const=True, default=S, help="put the best weights back at the end")
    stop.add_argument("--reduce-lr-on-plateau", action="store_const", const=True, default=S, help="multiply the LR by --plateau-factor when eval loss stalls (works with schedules)")
    stop.add_argument("--plateau-factor", type=float, default=S, help="default 0.1")
    stop.add_argument("--plateau-patience", type=int, default=S, metavar="EPOCHS", help="default 2")

    exp = parser.add_argument_group("static-graph export")
    exp.add_argument("--no-export", dest="export", action="store_const", const=False, default=S, help="skip the export to <run>/inference at the end")
    exp.add_argument("--export-on-best", action="store_const", const=True, default=S, help="export at each new best instead of at the end only")

    misc = parser.add_argument_group("other")
    misc.add_argument("--config", default=S, metavar="FILE", help="YAML or JSON file of defaults (keys as the flags, - or _)")
    misc.add_argument("--list-models", action="store_true", help="print the model names and exit")
    misc.add_argument("--list-datasets", action="store_true", help="print the dataset names and exit")
    misc.add_argument("--json", action="store_true", help="print results.json to stdout at the end")
    misc.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def build_summary_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = parser.add_argument_group("model and data")
    _add_model_args(group, with_data_dir=False)
    parser.add_argument("--config", default=S, metavar="FILE", help="YAML or JSON file of defaults")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, without the layer table")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _add_common(parser: argparse.ArgumentParser, json_help: str) -> None:
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def build_evaluate_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", metavar="RUN", help="a run folder written by train")
    parser.add_argument("--checkpoint", default=None, help="last (default), best, or a checkpoint path")
    parser.add_argument("--engine", choices=("dygraph", "inference"), default="dygraph",
                        help="dygraph (paddle.Model) or inference (the exported graph through paddle.inference); default dygraph")
    parser.add_argument("--dataset", default=None, help="evaluate on another dataset of the same shape; default: the run's")
    parser.add_argument("--data-dir", default=None, help="folder searched first for the dataset files")
    parser.add_argument("--no-download", dest="download", action="store_false", help="never download")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    parser.add_argument("--threads", default=None, help="CPU threads, N or auto; default: the run's")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N; default cpu")
    parser.add_argument("--tensorrt", choices=("fp32", "fp16"), default=None, help="with --engine inference on a GPU: TensorRT at this precision")
    _add_common(parser, "print one JSON object")
    return parser


def build_predict_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("model", metavar="RUN_OR_MODEL_DIR", help="a run folder or an exported model folder")
    parser.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+", help="PNG, JPEG, BMP or .npy files, or folders of them")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image; default 5")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads; default: every core")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N; default cpu")
    parser.add_argument("--tensorrt", choices=("fp32", "fp16"), default=None, help="on a GPU: TensorRT at this precision")
    _add_common(parser, "print a JSON list, one object per file")
    return parser


def build_export_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", metavar="RUN", help="a run folder written by train")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or a checkpoint path")
    parser.add_argument("--format", choices=("paddle", "onnx"), default="paddle",
                        help="paddle (paddle.inference) or onnx (needs pip install 'hapi-runner[onnx]'); default paddle")
    parser.add_argument("--output", default=None, help="default: RUN/inference (paddle) or RUN/onnx")
    parser.add_argument("--data-dir", default=None, help="where the evaluation files are, for the verification batch")
    parser.add_argument("--no-download", dest="download", action="store_false", help="never download")
    _add_common(parser, "print the verification report as JSON")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train paddle.vision models with paddle.Model, in one command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    build_train_parser(sub.add_parser("train", help="train, evaluate and save a model"))
    build_summary_parser(sub.add_parser("summary", help="layer table, parameters and multiply-adds"))
    build_evaluate_parser(sub.add_parser("evaluate", help="loss, top-1/top-5, per-class accuracy and confusion matrix of a run"))
    build_predict_parser(sub.add_parser("predict", help="classify image files with an exported model"))
    build_export_parser(sub.add_parser("export", help="export a run's checkpoint for paddle.inference or ONNX, verified"))
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then ``--recipe`` (the flag's, else the config file's), then the config file, then the flags given."""
    values = vars(args).copy()
    for key in ("command", "debug", "json", "list_models", "list_datasets"):
        values.pop(key, None)
    layers = []
    path = values.pop("config", None)
    if path:
        layers.append((load_config_file(path), f"config file '{path}'"))
    layers.append((values, "command line"))
    return resolve_layers(layers)


def _list_models() -> str:
    from .models import MODELS

    return "\n".join(f"{name:20s} {spec.family}" + (f" (inputs padded to {spec.min_size}x{spec.min_size} at least)" if spec.min_size > 28 else "")
                     for name, spec in sorted(MODELS.items()))


def _list_datasets() -> str:
    from .datasets import DATASETS

    lines = []
    for name, spec in sorted(DATASETS.items()):
        shape = "shape of --synthetic-like" if spec.format == "synthetic" else f"{spec.channels}x{spec.size}x{spec.size}, {spec.num_classes} classes"
        lines.append(f"{name:20s} {shape}")
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    if args.list_models or args.list_datasets:
        print(_list_models() if args.list_models else _list_datasets())
        return 0
    config = config_from_args(args)
    from .distributed import is_main
    from .runner import Runner

    runner = Runner(config)
    results = runner.fit()
    if not is_main():  # a launched job reports once, from rank 0
        return 0
    final = results["final_eval"]
    print(f"hapi_runner: done in {results['total_seconds']:.1f}s: eval loss {final['loss']:.4f}, "
          f"top-1 {final['acc_top1']:.4f}, top-5 {final['acc_top5']:.4f}; results in {results['run_dir']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from .environment import configure_threads
    from .summary import summarize

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
    from .deploy.run import evaluate_run

    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {args.batch_size}.")
    if args.tensorrt and args.engine != "inference":
        raise UsageError("--tensorrt applies to --engine inference; add --engine inference or drop --tensorrt.")
    result = evaluate_run(args.run, checkpoint=args.checkpoint, engine=args.engine, dataset=args.dataset,
                          data_dir=args.data_dir, batch_size=args.batch_size, threads=args.threads, device=args.device,
                          download=args.download, tensorrt=args.tensorrt)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['dataset']} ({result['num_samples']} images, epoch {result['epoch']}, {result['engine']}): "
          f"loss {result['loss']:.4f}, top-1 {result['acc_top1']:.4f}, top-5 {result['acc_top5']:.4f}, "
          f"{result['images_per_second']:.0f} images/s")
    print(f"confusion matrix: {result['confusion_files']['csv']} and .png")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .deploy.predict import predict_files

    results = predict_files(args.model, args.images, top_k=args.top_k, device=args.device, threads=args.threads,
                            tensorrt=args.tensorrt)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        top = ", ".join(f"{t['class_name']} {t['probability']:.3f}" for t in item["top_k"])
        print(f"{item['path']}: {top}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .deploy.run import export_run

    report = export_run(args.run, checkpoint=args.checkpoint, fmt=args.format, output=args.output,
                        data_dir=args.data_dir, download=args.download)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    where = report.get("directory") or report.get("file")
    agreement = report.get("top1_agreement")
    check = f"top-1 agreement {agreement:.2%}, largest logit difference {report['max_abs_diff']:.3g}" if agreement is not None else "not verified"
    print(f"exported to {where}: {check}")
    return 0


RUNNERS = {"train": run_train, "summary": run_summary, "evaluate": run_evaluate, "predict": run_predict, "export": run_export}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (it may have been replaced since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging() -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("hapi_runner: %(levelname)s: %(message)s"))
    logger = logging.getLogger("hapi_runner")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    # Paddle installs a handler on the root logger; without this each line would print twice.
    logger.propagate = False
    # Paddle warns at import that ccache is missing; it only matters for compiling custom ops.
    warnings.filterwarnings("ignore", message="No ccache found")
    # hapi's own train_batch calls paddle.to_tensor on tensors; nothing a user can act on.
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")


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
