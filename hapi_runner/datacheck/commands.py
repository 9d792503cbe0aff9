"""What ``hapi-runner check-data`` and ``hapi-runner label-issues`` run, once ``hapi_runner.cli.app`` has parsed them.

The heavy modules (the image cache, Paddle) are imported inside the
functions, so ``hapi-runner --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import os

from ..config.checks import check_path, parse_size
from .names import LABEL_ISSUES_DIR

# Namespace entries of label-issues that are not TrainConfig fields.
_OWN_OPTIONS = ("command", "debug", "json", "folds", "method", "output", "run", "apply", "config", "folder")


def run_check_data(args: argparse.Namespace) -> int:
    from .check import CheckOptions, check_data, headline

    check_path("data_dir", args.data_dir)
    options = CheckOptions(train_list=args.train_list, val_list=args.val_list, image_size=args.image_size,
                           channels=args.channels, val_split=args.val_split, seed=args.seed,
                           near_threshold=args.near_threshold, num_workers=args.num_workers,
                           cache_limit=parse_size("cache_limit", args.cache_limit))
    summary = check_data(args.data_dir, options, output=args.output)
    print(json.dumps(summary, indent=1) if args.json else f"check-data: {headline(summary)}")
    return 0


def label_config(args: argparse.Namespace):
    """The TrainConfig of label-issues: defaults < ``--run``'s config.json < ``--config`` < flags (DIR: a folder dataset)."""
    from ..config.train_config import load_config_file, resolve_layers
    from ..runfolder.layout import CONFIG

    values = {k: v for k, v in vars(args).items() if k not in _OWN_OPTIONS}
    if args.folder is not None:
        values.update(dataset="folder", data_dir=args.folder)
    layers = []
    if args.run:
        check_path("run", args.run)
        run_values = load_config_file(os.path.join(args.run, CONFIG))
        layers.append(({k: v for k, v in run_values.items() if k not in ("resume", "save_dir")}, f"run '{args.run}'"))
    if getattr(args, "config", None):
        layers.append((load_config_file(args.config), f"config file '{args.config}'"))
    layers.append((values, "command line"))
    return resolve_layers(layers)


def _apply(args: argparse.Namespace, config) -> int:
    from ..errors import UsageError
    from .label_issues import apply_decisions

    if config.dataset != "folder":
        raise UsageError(f"--apply writes list files of a folder dataset, and dataset '{config.dataset}' is built in; "
                         f"pass the folder (DIR or --data-dir) that label-issues read.")
    output = None if args.output == LABEL_ISSUES_DIR else args.output
    result = apply_decisions(args.apply, config.data_dir, train_list=config.train_list, val_list=config.val_list,
                             output_dir=output)
    lists = " ".join(f"--{k.replace('_', '-')} {result[k]}" for k in ("train_list", "val_list") if k in result)
    print(json.dumps(result, indent=1) if args.json else
          f"label-issues: {result['relabelled']} relabelled, {result['dropped']} dropped, the images left where they are; "
          f"train on the corrected lists with: hapi-runner train --dataset folder --data-dir {result['data_dir']} {lists}")
    return 0


def run_label_issues(args: argparse.Namespace) -> int:
    config = label_config(args)
    if args.apply:
        return _apply(args, config)
    from .crossfit import cross_fit
    from .label_issues import write_outputs

    fit = cross_fit(config, args.folds, progress=lambda line: print(f"label-issues: {line}", flush=True))
    result = write_outputs(fit, args.output, config.data_dir or config.train_list or config.dataset, args.method)
    print(json.dumps(result, indent=1) if args.json else
          f"label-issues: {result['suspects']} suspect label(s) among {result['train_images'] + result['val_images']} images "
          f"(out-of-sample top-1 {result['accuracy']:.3f}); see {result['page']}; set the action column of {result['csv']} "
          f"(keep, relabel or drop), then run again with --apply {result['csv']}")
    return 0
