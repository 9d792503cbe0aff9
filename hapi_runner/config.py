"""`TrainConfig`: the single source of truth for a run.

CLI flags, config files (YAML or JSON) and the Python API all end up here, and
every field is checked when the object is made, so a bad value fails before
any data is read or any file is written. This module does not import Paddle:
the thread count has to be chosen before Paddle is imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from .checks import (check_bool, check_choice, check_int, check_number, check_path, is_int, parse_device, parse_threads,
                     suggest)
from .datasets.registry import DATASETS, PIPELINES, synthetic_choices
from .errors import UsageError
from .models import MODELS
from .recipes import RECIPES, recipe_values

OPTIMIZERS = ("momentum", "sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine", "step", "multistep")
STEMS = ("default", "cifar")
AMP_LEVELS = ("O1", "O2")
MAX_SEED = 2**32 - 1
AMP_DTYPES = ("float16", "bfloat16")


@dataclass
class TrainConfig:
    """Everything a training run needs, with the defaults train.py uses.

    The defaults reproduce seed 002's optimiser (Momentum 0.9, lr 0.01,
    L2Decay 1e-4, batch 64) on the embedded Fashion-MNIST subset with LeNet.
    Field names are the CLI flag names with ``-`` written as ``_`` and the
    keys a config file may use.
    """

    # model and data
    model: str = "lenet"
    dataset: str = "fashion-mnist-mini"
    data_dir: Optional[str] = None
    synthetic_like: str = "cifar10"
    synthetic_size: int = 1024
    val_split: float = 0.0
    augment: bool = True
    normalize: bool = True
    download: bool = True
    stem: str = "default"
    pretrained: Optional[str] = None
    # optimisation
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "momentum"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: str = "constant"
    lr_step_epochs: List[int] = field(default_factory=lambda: [30])
    lr_gamma: float = 0.1
    warmup_epochs: int = 0
    seed: int = 0
    recipe: Optional[str] = None
    # hardware
    device: str = "auto"
    gpu: bool = False
    threads: str = "auto"
    amp: Optional[str] = None
    amp_dtype: str = "float16"
    cudnn_tuning: bool = True
    deterministic: bool = field(default=False, metadata={"help": (
        "deterministic cuDNN algorithms on a GPU (sets FLAGS_cudnn_deterministic and skips the exhaustive "
        "convolution search, which cuDNN refuses together with it); slower")})
    # input pipeline
    pipeline: str = "batched"
    num_workers: Optional[int] = None
    prefetch_factor: int = 2
    persistent_workers: bool = False
    use_shared_memory: bool = True
    # run folder and logging
    save_dir: Optional[str] = None
    output_root: str = "output"
    overwrite: bool = False
    eval_freq: int = 1
    log_freq: int = 20
    verbose: Optional[int] = None
    visualdl: bool = True
    # checkpoints and resume
    save_freq: int = 1
    keep_last: Optional[int] = None
    resume: Optional[str] = None
    monitor: str = "acc_top1"
    mode: Optional[str] = None
    # early stopping and LR on plateau
    early_stopping_patience: Optional[int] = None
    min_delta: float = 0.0
    baseline: Optional[float] = None
    start_from_epoch: int = 0
    restore_best: bool = False
    reduce_lr_on_plateau: bool = False
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    # static-graph export
    export: bool = True
    export_on_best: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # -- checks -----------------------------------------------------------
    def validate(self) -> None:
        """Checks every field; raises UsageError naming the first bad one."""
        check_choice("model", self.model, sorted(MODELS))
        check_choice("dataset", self.dataset, sorted(DATASETS))
        check_choice("synthetic_like", self.synthetic_like, synthetic_choices())
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("stem", self.stem, STEMS)
        if self.amp is not None:
            self.amp = str(self.amp).upper()
            check_choice("amp", self.amp, AMP_LEVELS)
        check_choice("amp_dtype", self.amp_dtype, AMP_DTYPES)
        check_choice("pipeline", self.pipeline, PIPELINES)
        if self.recipe is not None:
            check_choice("recipe", self.recipe, sorted(RECIPES))
        if is_int(self.synthetic_size) and self.synthetic_size > 1_000_000:
            raise UsageError(f"synthetic_size must be at most 1000000 (images held in memory), got {self.synthetic_size}.")
        for name in ("epochs", "batch_size", "eval_freq", "log_freq", "synthetic_size", "save_freq", "plateau_patience",
                     "prefetch_factor"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_epochs", "seed", "start_from_epoch"):
            check_int(name, getattr(self, name), minimum=0)
        if self.seed > MAX_SEED:  # numpy's and Paddle's seeds are 32-bit
            raise UsageError(f"seed must be <= {MAX_SEED}, got {self.seed}.")
        for name in ("data_dir", "save_dir", "pretrained", "resume", "output_root"):
            check_path(name, getattr(self, name), optional=name != "output_root")
        for name, minimum in (("num_workers", 0), ("keep_last", 1), ("early_stopping_patience", 1)):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=minimum)
        if self.mode is not None:
            check_choice("mode", self.mode, ("min", "max"))
        if not isinstance(self.monitor, str) or not self.monitor:
            raise UsageError(f"monitor must be a metric name such as acc_top1 or loss, got {self.monitor!r}.")
        _check_monitor(self.monitor)
        check_number("min_delta", self.min_delta, low=0.0)
        if self.baseline is not None:
            check_number("baseline", self.baseline)
        check_number("plateau_factor", self.plateau_factor, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("lr_gamma", self.lr_gamma, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("val_split", self.val_split, low=0.0, high=1.0, high_open=True)
        if not isinstance(self.lr_step_epochs, (list, tuple)) or not self.lr_step_epochs:
            raise UsageError(f"lr_step_epochs must be a non-empty list of epochs, got {self.lr_step_epochs!r}.")
        self.lr_step_epochs = [int(check_int("lr_step_epochs", e, minimum=1)) for e in self.lr_step_epochs]
        if self.lr_schedule == "multistep" and self.lr_step_epochs != sorted(self.lr_step_epochs):
            raise UsageError(f"lr_step_epochs must be increasing for multistep, got {self.lr_step_epochs}.")
        self.device = parse_device(self.device)
        self.threads = parse_threads(self.threads)
        if self.verbose is not None:
            check_int("verbose", self.verbose, minimum=0)
        for name in ("augment", "normalize", "download", "gpu", "overwrite", "visualdl", "restore_best", "reduce_lr_on_plateau",
                     "export", "export_on_best", "cudnn_tuning", "deterministic", "persistent_workers", "use_shared_memory"):
            check_bool(name, getattr(self, name))
        if self.gpu and self.device == "cpu":
            raise UsageError("--gpu and --device cpu contradict each other: drop one of them.")

    # -- conversions ------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of what makes two runs' weights compatible.

        Only the fields that fix the network's shape: model, stem, and the data
        it sees (dataset, or the shape a synthetic set imitates).
        """
        key = {"model": self.model, "stem": self.stem, "dataset": self.dataset}
        if self.dataset == "synthetic":
            key["synthetic_like"] = self.synthetic_like
        blob = json.dumps(key, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed, checked again.

        Changing ``recipe`` lays the new recipe's values over this config
        first; the other changes then apply on top.
        """
        recipe = changes.get("recipe")
        if recipe is not None and recipe != self.recipe:
            base = from_mapping({**recipe_values(recipe), "recipe": recipe}, base=self, source=f"recipe '{recipe}'")
            return from_mapping(changes, base=base)
        return from_mapping(changes, base=self)

    @classmethod
    def from_recipe(cls, name: str, **overrides: Any) -> "TrainConfig":
        """The defaults, then recipe ``name`` (``hapi_runner.recipes``), then ``overrides``.

        ``TrainConfig(recipe=name)`` only records the name; this (or
        ``--recipe`` on the command line) applies the recipe's values.
        """
        return resolve_layers([({"recipe": name, **overrides}, "arguments")])


def field_names() -> List[str]:
    return [f.name for f in fields(TrainConfig)]


def from_mapping(values: Dict[str, Any], base: Optional[TrainConfig] = None, source: str = "config") -> TrainConfig:
    """Builds a TrainConfig from ``base`` (or the defaults) updated by ``values``.

    Keys may use ``-`` or ``_``. An unknown key is an error naming the key and
    the closest known one.
    """
    known = field_names()
    merged = (base or TrainConfig()).to_dict()
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            raise UsageError(f"{source}: unknown key '{raw_key}'.{suggest(key, known)} Allowed keys: {', '.join(known)}.")
        merged[key] = value
    try:
        return TrainConfig(**merged)
    except TypeError as exc:  # a value of a type the checks could not even compare
        raise UsageError(f"{source}: {exc}") from None


def resolve_layers(layers: List[Tuple[Dict[str, Any], str]]) -> TrainConfig:
    """Lays ``(values, source)`` mappings over the defaults, lowest first, with the recipe beneath them all.

    The recipe is the last one any layer names; its values go on the
    defaults before any layer, so a config file and flags beat it:
    defaults < recipe < layers[0] < layers[1] ...
    """
    recipe = None
    for values, _ in layers:
        for key, value in values.items():
            if str(key).replace("-", "_") == "recipe":
                recipe = value
    config = TrainConfig()
    if recipe is not None:
        config = from_mapping({**recipe_values(recipe), "recipe": recipe}, source=f"recipe '{recipe}'")
    for values, source in layers:
        config = from_mapping({k: v for k, v in values.items() if str(k).replace("-", "_") != "recipe"}, base=config, source=source)
    return config


def load_config_file(path: str) -> Dict[str, Any]:
    """Reads a YAML (.yaml/.yml) or JSON file into a dict of config keys."""
    if os.path.isdir(path):
        raise UsageError(f"config file '{path}' is a folder; pass the path of a .yaml or .json file.")
    if not os.path.isfile(path):
        raise UsageError(f"config file '{path}' does not exist; pass the path of a .yaml or .json file.")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file '{path}' cannot be read: {exc}.") from None
    try:
        if path.endswith((".yaml", ".yml")):
            data = _load_yaml(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml and json raise many kinds; all mean the same to the user
        first = _parse_problem(exc)
        raise UsageError(f"config file '{path}' is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: {first}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of keys to values, got {type(data).__name__}.")
    return data


def _load_yaml(text: str):
    """``yaml.safe_load``, but ``1e-3`` is a float as in YAML 1.2 and JSON (PyYAML's YAML 1.1 reads it as a string)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return yaml.load(text, Loader=Loader)


def _parse_problem(exc: Exception) -> str:
    """One line from a YAML or JSON parse error: what is wrong, and where."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:  # yaml.MarkedYAMLError
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# What paddle.Model reports with the loss and Accuracy(topk=(1, 5)) the Runner prepares.
RUN_METRICS = ("loss", "acc_top1", "acc_top5")


def _check_monitor(monitor: str) -> None:
    """The monitor must be a metric a run logs (checked before any folder is made)."""
    from .utils import split_monitor

    _, name = split_monitor(monitor)
    if name not in RUN_METRICS:
        choices = [*RUN_METRICS, *(f"train_{m}" for m in RUN_METRICS)]
        raise UsageError(f"monitor '{monitor}' is not a metric a run logs; choose one of: {', '.join(choices)}.{suggest(monitor, choices)}")
