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
from typing import Any, Dict, List, Optional, Tuple, Union

from ..runfolder import layout as rundir
from .checks import (check_bool, check_choice, check_int, check_list, check_number, check_optional_number, check_path,
                     check_recipe_args, check_text, is_int, parse_device, parse_duration, parse_size, parse_threads,
                     suggest, suggest_name)
from ..datasets.registry import AUGMENTATIONS, DATASETS, PIPELINES, folder_datasets, synthetic_choices
from ..errors import HapiRunnerError, UsageError
from ..model.names import check_model, is_user_model, run_name
from ..model.initialisation import CONV_INITS
from .recipes import ABOUT, PADDLE_FIRST_EPOCHS, RECIPES, recipe_values

OPTIMIZERS = ("momentum", "sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine", "step", "multistep")
STEMS = ("default", "cifar")
AMP_LEVELS = ("O1", "O2")
MAX_SEED = 2**32 - 1
NORMALIZE_STATS = ("imagenet", "data")
CLASS_WEIGHTS = ("auto",)
# Options that only a dataset of your own images reads, with their defaults.
FOLDER_ONLY = {"train_list": None, "val_list": None, "channels": None, "normalize_stats": None, "eval_crop_pct": 0.875,
               "skip_bad_images": False, "cache_limit": None}
AMP_DTYPES = ("float16", "bfloat16")
DEFAULT_LR = 0.01
AUTO_LR = "auto"
# Keys config.json holds beside the fields: what --lr auto and --time-budget decided. A record, not a setting:
# reading config.json back leaves them out (run_records returns them).
RECORDS = ("lr_find", "time_budget_plan")


def lr_value(text: str):
    """``--lr``'s value: a number, or ``auto``."""
    import argparse

    if str(text).strip().lower() == AUTO_LR:
        return AUTO_LR
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number such as 0.01, or auto; got {text!r}") from None




def _flags_of(group: str):
    """A field maker for one ``--help`` group: ``make(default, help, **flag)`` is a field whose metadata builds its flag.

    The metadata a field's flag is built from (``hapi_runner.cli.app``):

    * ``group``, ``help``: the ``--help`` section and text; the help gets
      ``default: X`` appended, X taken from the field's default, never
      written by hand.
    * ``means``: what the default means, shown after it (required wording
      for a None default, which otherwise reads ``none``).
    * ``flag``: the flag name when it is not ``--<name>`` (booleans default to
      ``--no-<name>`` when True, ``--<name>`` when False).
    * ``metavar``, ``choices``, ``nargs``, ``const``, ``type``: as
      ``argparse.add_argument`` takes them; ``type`` defaults to the field's
      annotation (``int``, ``float``, the items of ``List[int]``).
    """

    def make(default: Any, help: str, **flag: Any):
        metadata = {"group": group, "help": help, **flag}
        if isinstance(default, (list, dict)):
            return field(default_factory=lambda: type(default)(default), metadata=metadata)
        return field(default=default, metadata=metadata)

    return make


_data = _flags_of("model and data")
_optim = _flags_of("optimisation")
_hardware = _flags_of("hardware")
_pipeline = _flags_of("input pipeline")
_run = _flags_of("run folder and logging")
_checkpoints = _flags_of("checkpoints and resume")
_stopping = _flags_of("early stopping and LR on plateau")
_export = _flags_of("static-graph export")
_regular = _flags_of("regularisation")
_RECIPE_HELP = ("a named set of hyper-parameters (hapi_runner/config/recipes.py): "
                + "; ".join(f"{k}: {v}" for k, v in sorted(ABOUT.items())) + ". A config file and flags beat it")


@dataclass
class TrainConfig:
    """Everything a training run needs, with the defaults train.py uses.

    The defaults reproduce seed 002's optimiser (Momentum 0.9, lr 0.01,
    L2Decay 1e-4, batch 64) on the embedded Fashion-MNIST subset with LeNet.
    Field names are the CLI flag names with ``-`` written as ``_`` and the
    keys a config file may use; each field's metadata is its flag (see
    :func:`_flags_of`), so ``--help`` shows these defaults.
    """

    model: str = _data("lenet", "a built-in model (--list-models), or your own network: FILE.py:NAME or package.module:NAME")
    dataset: str = _data("fashion-mnist-mini", "dataset name (--list-datasets)")
    data_dir: Optional[str] = _data(None, f"folder searched first for the dataset files (read by {', '.join(folder_datasets())}); "
                                          f"with --dataset folder, the folder holding train/<class>/... (and val/<class>/...)",
                                    means="the dataset cache, then a download")
    synthetic_like: str = _data("cifar10", "with --dataset synthetic: the dataset whose shape to imitate")
    synthetic_size: int = _data(1024, "training images of --dataset synthetic")
    val_split: float = _data(0.0, "hold out this fraction of the train set for evaluation", metavar="FRACTION",
                             means="evaluate on the test split; folders without a validation folder: 0.1")
    train_list: Optional[str] = _data(None, "folder: the training images as a list file (`path label` per line, or a CSV with "
                                            "path and label columns), paths relative to --data-dir", metavar="FILE",
                                      means="the class folders of DATA_DIR/train")
    val_list: Optional[str] = _data(None, "folder: the validation images as a list file, like --train-list", metavar="FILE",
                                    means="DATA_DIR/val (or valid, validation, test), else --val-split")
    channels: Optional[int] = _data(None, "folder: decode images as 1 (grey) or 3 (RGB) channels", choices=(1, 3),
                                    means="3 for folders")
    normalize_stats: Optional[str] = _data(None, "folder: the mean/std that normalise the input: ImageNet's, or computed on "
                                                 "the training images", choices=NORMALIZE_STATS, means="imagenet")
    eval_crop_pct: float = _data(0.875, "folder: the centre crop's share of the resized short side in evaluation (and in "
                                        "training without augmentation); 1.0 with --image-size equal to the images' side "
                                        "feeds them as they are", metavar="FRACTION")
    skip_bad_images: bool = _data(False, "folder: train without the unreadable images (listed in RUN/bad_images.txt) instead of stopping")
    cache_limit: Optional[str] = _data(None, "folder: disk the decoded-image cache may take (20G, 500M; 0 never caches: "
                                             "decode every epoch)", metavar="SIZE", means="the free disk less 10% of it")
    class_weights: Optional[str] = _data(None, "auto: weight the loss by inverse class frequency of the training set "
                                               "(mean weight 1)", choices=CLASS_WEIGHTS, means="every class weighs 1")
    augment: bool = _data(True, "turn off the training augmentation (random crop and flip on Cifar, random resized crop and flip on folders)")
    train_augment: Optional[str] = _data(None, "built-in datasets: the training augmentation, in place of the dataset's own: "
                                               "'flip' (random horizontal flip), 'crop-flip' (4-pixel-padded random crop and "
                                               "flip) or 'none'", choices=AUGMENTATIONS,
                                         means="crop-flip on Cifar, none on the MNIST family")
    normalize: bool = _data(True, "feed raw 0-255 pixels instead of (pixel/255 - mean)/std, as seed 002 does")
    download: bool = _data(True, "never download; fail if the files are not found")
    stem: str = _data("default", "'cifar': 3x3 stride-1 first conv, no max-pool (ResNets)", choices=STEMS, means="paddle.vision's")
    zero_init_residual: bool = _data(True, "from scratch (no --pretrained): keep the scale of the last BatchNorm in each residual "
                                           "block at its usual 1 instead of starting it at 0 (each block then starts as "
                                           "the identity, as timm's ResNets do)")
    conv_init: str = _data("paddle", "networks with BatchNorm, from scratch: the convolutions' initial weights: "
                                     "Paddle's own (Kaiming normal over fan-in) or Kaiming normal over fan-out "
                                     "(torchvision, timm; measured neutral here, docs/accuracy.md)",
                           choices=CONV_INITS)
    pretrained: Optional[str] = _data(None, "initial weights: a .pdparams file, or 'imagenet' for paddle.vision's published "
                                            "weights of the model; tensors of another shape are skipped with a warning",
                                      metavar="PATH|imagenet")
    model_kwargs: Dict[str, Any] = _data({}, "more arguments of a --model FILE.py:NAME network, values read as YAML scalars",
                                         nargs="+", metavar="KEY=VALUE", type=str, means="none")
    image_size: Optional[int] = _data(None, "feed every image at N x N (built-in datasets resized, bilinear, once at load; folders: random resized crops of that "
                                            "side for training, the short side resized to N / --eval-crop-pct and centre-cropped for evaluation)",
                                      metavar="N", means="the dataset's size, padded to the model's minimum; 224 for folders")
    epochs: int = _optim(5, "epochs in total")
    batch_size: int = _optim(64, "images per batch (per device)")
    optimizer: str = _optim("momentum", "the optimizer", choices=OPTIMIZERS)
    lr: Union[float, str] = _optim(DEFAULT_LR, "learning rate, or auto: run the LR finder (hapi-runner lr-find) first and "
                                               "train at its suggestion (the valley)", type=lr_value, metavar="LR|auto")
    momentum: float = _optim(0.9, "the momentum of --optimizer momentum")
    weight_decay: float = _optim(1e-4, "L2Decay for momentum/sgd/adam, decoupled for adamw")
    decay_norm_and_bias: bool = _optim(True, "networks with BatchNorm: leave BatchNorm scales and shifts and all biases out of "
                                             "--weight-decay (timm's filter_bias_and_bn), decaying only the weights of "
                                             "convolutions and linear layers")
    drop_last: bool = _optim(True, "networks with BatchNorm: train on the last, smaller batch of each epoch too (its few "
                                   "images skew the BatchNorm statistics), instead of leaving them to the next epoch's shuffle")
    lr_schedule: str = _optim("constant", "the learning-rate schedule", choices=LR_SCHEDULES)
    lr_step_epochs: List[int] = _optim([30], "step: the period; multistep: the milestones", metavar="EPOCH")
    lr_gamma: float = _optim(0.1, "factor at each step")
    warmup_epochs: int = _optim(0, "linear warm-up from 0")
    time_budget: Optional[str] = _optim(None, "finish within this time (90s, 20m, 1.5h): the first steps and an evaluation "
                                              "are timed, then --epochs and the schedule's length are set to fit; the plan "
                                              "is printed and kept in config.json", metavar="TIME", means="off")
    freeze_backbone: bool = _optim(False, "train the classifier only (README: Fine-tuning says which layer that is)")
    backbone_lr_mult: float = _optim(1.0, "train every layer but the classifier at F times --lr", metavar="F")
    head: Optional[str] = _optim(None, "the layer --freeze-backbone and --backbone-lr-mult treat as the classifier: a sublayer "
                                 "name such as fc or classifier", metavar="NAME",
                                 means="the network's classifier_layer, else the last Linear layer")
    reset_head: bool = _optim(False, "with --pretrained: the classifier (--head) starts from a fresh initialisation, "
                                     "not from the weights file's (whose classes may be others); on by itself when the "
                                     "file is a checkpoint of a run with other class names")
    fine_tune: Optional[List[int]] = _optim(
        None, "two phases, as fastai's fine_tune: F epochs of the classifier alone (the backbone frozen, on cached "
              "features), then U epochs of every layer (the backbone at --backbone-lr-mult), each with its own warm-up and "
              "--lr-schedule; --epochs becomes F+U", metavar="F,U", nargs=None, type=str,
        means="one phase")
    feature_cache: bool = _optim(True, "with --freeze-backbone: run the frozen layers on every image in every epoch, in "
                                       "dygraph, instead of once through paddle.inference with the features cached")
    feature_views: int = _optim(1, "cached features: views kept per training image; 1 is the evaluation transform (no "
                                   "augmentation), N adds N-1 augmented views and epoch e trains on view e mod N", metavar="N")
    seed: int = _optim(0, "seeds the weights, shuffling and augmentation")
    label_smoothing: float = _regular(0.0, "label smoothing of the loss, in [0, 1) (also in the evaluation loss)", metavar="EPS")
    mixup: float = _regular(0.0, "Mixup of training batches: the Beta alpha", metavar="ALPHA", means="off")
    cutmix: float = _regular(0.0, "CutMix of training batches: the Beta alpha (with --mixup: one of the two per batch)",
                             metavar="ALPHA", means="off")
    mix_prob: float = _regular(1.0, "probability that a training batch is mixed (--mixup, --cutmix)", metavar="P")
    randaugment: Optional[float] = _regular(None, "RandAugment of training images: two operations at magnitude M (0-10)",
                                            metavar="M", means="off")
    random_erasing: float = _regular(0.0, "probability that a training image gets a box of noise", metavar="P", means="off")
    ema: Optional[float] = _regular(None, "evaluate, keep as best and export an EMA of the weights with this decay, in (0, 1)",
                                    metavar="DECAY", means="off")
    clip_grad: Optional[float] = _regular(None, "clip the global gradient norm to NORM", metavar="NORM", means="off")
    accumulate_grad_batches: int = _regular(1, "batches per optimizer step (the LR schedule counts optimizer steps)",
                                            metavar="K")
    recipe: Optional[str] = _optim(None, _RECIPE_HELP, choices=sorted(RECIPES))
    device: str = _hardware("auto", "auto, cpu, gpu or gpu:N", means="a GPU if one is visible")
    gpu: bool = _hardware(False, "require a GPU: fail rather than train on the CPU")
    dist_timeout: int = _hardware(300, "a job on several machines: seconds without a finished step (a lost node or link) before "
                                       "every rank stops with one line naming the lost rank", metavar="SECONDS")
    threads: str = _hardware("auto", "CPU math threads, N or auto", means="1 for a network under 10 M multiply-adds per image, all cores otherwise")
    amp: Optional[str] = _hardware(None, "mixed precision on GPU; ignored with a warning on CPU", type=str.upper,
                                   choices=AMP_LEVELS, means="off")
    amp_dtype: str = _hardware("float16", "the low-precision type of --amp (bfloat16 needs Ampere or newer)", choices=AMP_DTYPES)
    cudnn_tuning: bool = _hardware(True, "GPU: skip cuDNN's exhaustive convolution search (and, with --amp, its persistent batch norm)")
    deterministic: bool = _hardware(False, "GPU: deterministic cuDNN algorithms (FLAGS_cudnn_deterministic); skips the exhaustive "
                                           "convolution search, which cuDNN refuses alongside them")
    pipeline: str = _pipeline("batched", "batched: transform whole batches with numpy in the collate; per-sample: the same "
                                         "transforms one image at a time in the Dataset, Paddle's default collate", choices=PIPELINES)
    num_workers: Optional[int] = _pipeline(None, "DataLoader worker processes", means="0 on CPU, min(4, cores) on GPU")
    prefetch_factor: int = _pipeline(2, "batches each worker prepares ahead")
    persistent_workers: bool = _pipeline(False, "keep workers between epochs (augmentation is then no longer a function of "
                                                "the epoch, so a resumed run sees other crops)")
    use_shared_memory: bool = _pipeline(True, "workers pass batches through pipes instead of /dev/shm", flag="--no-shared-memory")
    save_dir: Optional[str] = _run(None, "run folder", means="a new <output-root>/<model>-<dataset>/run_NNN")
    output_root: str = _run("output", "parent of the numbered run folders")
    overwrite: bool = _run(False, "allow a --save-dir that holds a finished run")
    eval_freq: int = _run(1, "evaluate every N epochs")
    log_freq: int = _run(20, "print every N steps")
    verbose: Optional[int] = _run(None, "0 quiet, 1 progress bar, 2 log lines", means="1 on a terminal, else 2")
    visualdl: bool = _run(True, "do not write VisualDL logs")
    report: bool = _run(True, "do not write report.html and results.json's per-class figures at the end (they cost one more "
                              "pass over the eval set, made only when cheap; hapi-runner report RUN writes them later)")
    save_freq: int = _checkpoints(1, "write checkpoints/epoch_N every N epochs (and the last)")
    keep_last: Optional[int] = _checkpoints(None, "keep the K newest epoch checkpoints (best and last always stay)", metavar="K",
                                            means="all")
    resume: Optional[str] = _checkpoints(None, "continue a run from its own config.json, the flags given on top: its folder, "
                                               "a checkpoint, or nothing for the latest run of this model and dataset",
                                         nargs="?", const="latest", metavar="PATH", means="a new run")
    monitor: str = _checkpoints("acc_top1", "metric that decides 'best' (acc_top1, acc_top5, loss; train_ prefix for training metrics)")
    mode: Optional[str] = _checkpoints(None, "whether the monitor should go down or up", choices=("min", "max"),
                                       means="loss min, accuracies max")
    early_stopping_patience: Optional[int] = _stopping(None, "stop after this many epochs without improvement", metavar="EPOCHS",
                                                       means="off")
    min_delta: float = _stopping(0.0, "smallest change that counts as an improvement")
    baseline: Optional[float] = _stopping(None, "value the monitor must beat before anything counts")
    start_from_epoch: int = _stopping(0, "epochs before early stopping starts counting")
    restore_best: bool = _stopping(False, "put the best weights back at the end")
    reduce_lr_on_plateau: bool = _stopping(False, "multiply the LR by --plateau-factor when eval loss stalls (works with schedules)")
    plateau_factor: float = _stopping(0.1, "the factor of --reduce-lr-on-plateau")
    plateau_patience: int = _stopping(2, "epochs without a lower eval loss before --reduce-lr-on-plateau acts", metavar="EPOCHS")
    export: bool = _export(True, "skip the export to <run>/inference at the end")
    export_on_best: bool = _export(False, "export at each new best instead of at the end only")

    def __post_init__(self) -> None:
        self.validate()

    # -- checks -----------------------------------------------------------
    def validate(self) -> None:
        """Checks every field; raises UsageError naming the first bad one.

        Normalises as it goes: ``amp`` upper case, ``device`` and ``threads``
        as :func:`parse_device` and :func:`parse_threads` write them,
        ``lr_step_epochs`` a list.
        """
        self._check_names()
        self._check_counts()
        self._check_numbers()
        self._check_regularisation()
        self._check_settings()
        self._check_fine_tune()

    def _check_fine_tune(self) -> None:
        """``fine_tune`` as ``[F, U]``, each at least 1; it sets ``epochs`` and leaves no room for ``freeze_backbone``."""
        if self.reset_head and not self.pretrained:
            raise UsageError("--reset-head starts the classifier afresh instead of from the --pretrained weights; "
                             "pass --pretrained FILE (or imagenet) with it, or drop it.")
        if self.fine_tune is None:
            return
        pair = self.fine_tune
        if isinstance(pair, str):
            pair = parse_epoch_pair("fine_tune", pair)
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise UsageError(f"fine_tune must be two epoch counts F,U (frozen, then unfrozen), got {pair!r}.")
        self.fine_tune = [check_int("fine_tune", value, minimum=1) for value in pair]
        if self.freeze_backbone:
            raise UsageError("--fine-tune freezes the backbone for its first phase only and then trains every layer; "
                             "drop --freeze-backbone.")
        self.epochs = sum(self.fine_tune)

    def _check_names(self) -> None:
        """The fields that name one of a fixed set."""
        check_model(self.model)
        self.model_kwargs = parse_model_kwargs(self.model_kwargs)
        check_choice("dataset", self.dataset, sorted(DATASETS))
        check_choice("synthetic_like", self.synthetic_like, synthetic_choices())
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("stem", self.stem, STEMS)
        check_choice("conv_init", self.conv_init, CONV_INITS)
        if self.amp is not None:
            self.amp = str(self.amp).upper()
            check_choice("amp", self.amp, AMP_LEVELS)
        check_choice("amp_dtype", self.amp_dtype, AMP_DTYPES)
        check_choice("pipeline", self.pipeline, PIPELINES)
        if self.recipe is not None:
            check_choice("recipe", self.recipe, sorted(RECIPES))
        if self.mode is not None:
            check_choice("mode", self.mode, ("min", "max"))
        if self.train_augment is not None:
            check_choice("train_augment", self.train_augment, AUGMENTATIONS)

    def _check_counts(self) -> None:
        """The integer fields: counts, frequencies, epochs and the seed."""
        if is_int(self.synthetic_size) and self.synthetic_size > 1_000_000:
            raise UsageError(f"synthetic_size must be at most 1000000 (images held in memory), got {self.synthetic_size}.")
        for name in ("epochs", "batch_size", "eval_freq", "log_freq", "synthetic_size", "save_freq", "plateau_patience",
                     "prefetch_factor", "dist_timeout"):
            check_int(name, getattr(self, name), minimum=1)
        if self.image_size is not None:
            check_int("image_size", self.image_size, minimum=1, maximum=4096)
        check_int("feature_views", self.feature_views, minimum=1, maximum=64)
        if self.head is not None:
            check_text("head", self.head, "a sublayer name such as fc or classifier")
        for name in ("warmup_epochs", "seed", "start_from_epoch"):
            check_int(name, getattr(self, name), minimum=0)
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            # The warm-up would end after the run: the rate never reaches lr, and a cosine or step schedule never starts.
            raise UsageError(f"warmup_epochs {self.warmup_epochs} is not below epochs {self.epochs}: the rate would never reach "
                             f"lr {self.lr} and the {self.lr_schedule} schedule would never run; pass --warmup-epochs below "
                             f"{self.epochs} (0: none), or --epochs {self.warmup_epochs + 1} or more.")
        if self.seed > MAX_SEED:  # numpy's and Paddle's seeds are 32-bit
            raise UsageError(f"seed must be <= {MAX_SEED}, got {self.seed}.")
        for name, minimum in (("num_workers", 0), ("keep_last", 1), ("early_stopping_patience", 1), ("verbose", 0)):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=minimum)
        self.lr_step_epochs = [check_int("lr_step_epochs", e, minimum=1)
                               for e in check_list("lr_step_epochs", self.lr_step_epochs, "a non-empty list of epochs")]
        if self.lr_schedule == "multistep" and self.lr_step_epochs != sorted(self.lr_step_epochs):
            raise UsageError(f"lr_step_epochs must be increasing for multistep, got {self.lr_step_epochs}.")

    def _check_numbers(self) -> None:
        """The real-valued fields, each within its range."""
        if self.lr == AUTO_LR:
            if self.resume:
                raise UsageError("--lr auto and --resume: a resumed run keeps the rate its config.json holds; drop --lr auto.")
        else:
            check_number("lr", self.lr, low=0.0, low_open=True)
        parse_duration("time_budget", self.time_budget)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("lr_gamma", self.lr_gamma, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("val_split", self.val_split, low=0.0, high=1.0, high_open=True)
        check_number("min_delta", self.min_delta, low=0.0)
        check_number("backbone_lr_mult", self.backbone_lr_mult, low=0.0, high=1000.0)
        check_optional_number("baseline", self.baseline)
        check_number("plateau_factor", self.plateau_factor, low=0.0, high=1.0, low_open=True, high_open=True)

    def _check_regularisation(self) -> None:
        """The training techniques, normalised: floats, ``None`` where off (``clip_grad`` 0 is off)."""
        checked = check_recipe_args(
            label_smoothing=self.label_smoothing, mixup=self.mixup, cutmix=self.cutmix, mix_prob=self.mix_prob,
            randaugment=self.randaugment, random_erasing=self.random_erasing, ema=self.ema, clip_grad=self.clip_grad,
            accumulate_grad_batches=self.accumulate_grad_batches)
        for name, value in checked.items():
            setattr(self, name, value)

    @property
    def mixes(self) -> bool:
        """True when training batches may be mixed (and so carry soft targets)."""
        return self.mix_prob > 0 and (self.mixup > 0 or self.cutmix > 0)

    def _check_settings(self) -> None:
        """Paths, switches, the monitor and the hardware, and the combinations that contradict each other."""
        for name in ("data_dir", "save_dir", "pretrained", "resume", "output_root"):
            check_path(name, getattr(self, name), optional=name != "output_root")
        for item in fields(self):
            if item.type in ("bool", bool):
                check_bool(item.name, getattr(self, item.name))
        check_text("monitor", self.monitor, "a metric name such as acc_top1 or loss")
        _check_monitor(self.monitor)
        self.device = parse_device(self.device)
        self.threads = parse_threads(self.threads)
        if self.gpu and self.device == "cpu":
            raise UsageError("--gpu and --device cpu contradict each other: drop one of them.")
        _check_data_dir(self.dataset, self.data_dir)
        if self.model_kwargs and not is_user_model(self.model):
            raise UsageError(f"model_kwargs apply to a --model FILE.py:NAME or package.module:NAME network, not to "
                             f"{self.model}; drop --model-kwargs.")
        if self.train_augment is not None and self.dataset == "folder":
            raise UsageError("--train-augment applies to the built-in datasets; a folder trains with random resized crops "
                             "and flips: drop --train-augment (--no-augment turns them off).")
        if self.train_augment not in (None, "none") and not self.augment:
            raise UsageError(f"--train-augment {self.train_augment} and --no-augment contradict each other: drop one of them.")
        self._check_folder_options()

    def _check_folder_options(self) -> None:
        """The options of ``--dataset folder``: refused with another dataset, which would ignore them."""
        for name in ("train_list", "val_list"):
            check_path(name, getattr(self, name))
        if self.channels is not None:
            check_choice("channels", self.channels, (1, 3))
        if self.normalize_stats is not None:
            check_choice("normalize_stats", self.normalize_stats, NORMALIZE_STATS)
        check_number("eval_crop_pct", self.eval_crop_pct, low=0.0, high=1.0, low_open=True)
        parse_size("cache_limit", self.cache_limit)
        if self.class_weights is not None:
            check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        if self.dataset != "folder":
            given = [name for name, default in FOLDER_ONLY.items() if getattr(self, name) != default]
            if given:
                flag = given[0].replace("_", "-")
                raise UsageError(f"--{flag} applies to --dataset folder (your own images), not to '{self.dataset}'; "
                                 f"drop --{flag}, or pass --dataset folder --data-dir DIR.")
            return
        if not self.data_dir and not self.train_list:
            raise UsageError("--dataset folder needs --data-dir DIR (holding train/<class>/... and optionally val/<class>/...) "
                             "or --train-list FILE.")
        if not self.normalize:
            raise UsageError("--no-normalize does not apply to --dataset folder, whose inputs are normalised by "
                             "--normalize-stats imagenet|data; drop --no-normalize.")
        if self.val_list and not self.train_list:
            raise UsageError("--val-list needs --train-list too; pass both lists, or neither to read DATA_DIR/train and DATA_DIR/val.")

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
        """The defaults, then recipe ``name`` (``hapi_runner.config.recipes``), then ``overrides``.

        ``TrainConfig(recipe=name)`` only records the name; this (or
        ``--recipe`` on the command line) applies the recipe's values.
        """
        return resolve_layers([({"recipe": name, **overrides}, "arguments")])

    @classmethod
    def for_resume(cls, run: str = "latest", **overrides: Any) -> "TrainConfig":
        """The config that continues ``run``, as ``train.py --resume RUN`` makes it.

        The run's own ``config.json``, then ``overrides``. ``TrainConfig(resume=run)``
        instead resumes with the fields it is given and the defaults for the
        rest (``epochs`` 5, say), which the run's checkpoint may refuse.

        Args:
            run: the run folder, a checkpoint in it, or ``latest`` (the newest
                run of ``overrides``' model and dataset, or their defaults,
                under ``output_root``). Defaults to ``latest``.
            **overrides: fields to change, e.g. ``epochs=30`` to train on.
        """
        return resolve_layers([({**overrides, "resume": run}, "arguments")])


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
            raise UsageError(f"{source}: unknown key '{raw_key}'.{suggest_name(key, known)} Allowed keys: {', '.join(known)}.")
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

    When the layers name a run to resume (``resume``: a run folder or a
    checkpoint in it, or ``latest``) and that run has a ``config.json``, the
    run's config takes the defaults' place, so a resumed run keeps its epochs,
    schedule and data unless a layer changes them:
    run's config.json < (another recipe) < layers[0] < layers[1] ...
    """
    base = _resumed_run_config(layers)
    recipe = _last_value(layers, "recipe")
    config = base or TrainConfig()
    if recipe is not None and (base is None or recipe != base.recipe):
        config = from_mapping({**recipe_values(recipe), "recipe": recipe}, base=config, source=f"recipe '{recipe}'")
    for values, source in layers:
        config = from_mapping({k: v for k, v in values.items() if str(k).replace("-", "_") != "recipe"}, base=config, source=source)
    return config


def _last_value(layers: List[Tuple[Dict[str, Any], str]], name: str) -> Any:
    """The value of field ``name`` in the highest layer that sets it (keys with ``-`` or ``_``), else its default."""
    value = next(f.default for f in fields(TrainConfig) if f.name == name)
    for values, _ in layers:
        for key, given in values.items():
            if str(key).replace("-", "_") == name:
                value = given
    return value


def _resumed_run_config(layers: List[Tuple[Dict[str, Any], str]]) -> Optional[TrainConfig]:
    """The config of the run the layers resume, or None (no resume, or no ``config.json`` to read)."""
    resume = check_path("resume", _last_value(layers, "resume"))
    if not resume:
        return None
    if resume != "latest":
        run = rundir.run_folder_of(resume)
    else:
        save_dir = check_path("save_dir", _last_value(layers, "save_dir"))
        name = run_name(_last_value(layers, 'model'), _last_value(layers, 'dataset'))
        run = save_dir or rundir.latest_run(check_path("output_root", _last_value(layers, "output_root")), name)
    if run is None or not os.path.isfile(os.path.join(run, rundir.CONFIG)):
        return None  # nothing to start from: the Runner says what is missing
    return load_run_config(run)


def read_run_config(run_dir: str) -> TrainConfig:
    """The TrainConfig a run was trained with (its ``config.json``), as written.

    Raises:
        UsageError: ``run_dir`` is not a folder, or holds no ``config.json``.
        HapiRunnerError: ``config.json`` cannot be read or holds no mapping.
    """
    return from_mapping(_run_config_values(run_dir), source=os.path.join(run_dir, rundir.CONFIG))


def load_run_config(run_dir: str) -> TrainConfig:
    """The config a run folder's ``config.json`` holds, as the base of a resume of that folder.

    ``save_dir`` becomes ``run_dir`` (the run may have been moved since) and
    ``resume`` is cleared; a ``data_dir`` recorded for a dataset that reads no
    folder (older versions accepted one) is dropped.

    Raises:
        HapiRunnerError: ``config.json`` cannot be read or holds no mapping.
        UsageError: it holds an unknown key or a bad value.
    """
    values = {**_run_config_values(run_dir), "save_dir": run_dir, "resume": None}
    spec = DATASETS.get(str(values.get("dataset")))
    if spec is not None and not spec.reads_data_dir:
        values["data_dir"] = None
    return from_mapping(values, source=os.path.join(run_dir, rundir.CONFIG))


def run_records(run_dir: str) -> Dict[str, Any]:
    """The :data:`RECORDS` a run folder's ``config.json`` holds (none when it has no readable one)."""
    try:
        values = _run_config_values(run_dir, records=True)
    except HapiRunnerError:
        return {}
    return {key: values[key] for key in RECORDS if key in values}


def _run_config_values(run_dir: str, records: bool = False) -> Dict[str, Any]:
    """The mapping in ``run_dir``'s ``config.json``; without ``records``, the :data:`RECORDS` left out. Defaults to False."""
    path = os.path.join(run_dir, rundir.CONFIG)
    if not os.path.isdir(run_dir):
        raise UsageError(f"run folder '{run_dir}' does not exist; pass a folder written by hapi-runner train (output/<model>-<dataset>/run_NNN).")
    if not os.path.isfile(path):
        raise UsageError(f"'{run_dir}' has no {rundir.CONFIG}, so it is not a hapi_runner run folder; pass one written by hapi-runner train.")
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise HapiRunnerError(f"{path} cannot be read ({type(exc).__name__}: {exc}); the run folder is damaged.") from exc
    if not isinstance(values, dict):
        raise HapiRunnerError(f"{path} holds {type(values).__name__}, not a mapping of keys to values; the run folder is damaged.")
    return values if records else {**PADDLE_FIRST_EPOCHS, **{k: v for k, v in values.items() if k not in RECORDS}}


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
        raise UsageError(f"config file '{path}' cannot be read: {exc}.") from exc
    data = _parse_config_text(path, text, yaml_file=path.endswith((".yaml", ".yml")))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of keys to values, got {type(data).__name__}.")
    return data


def _parse_config_text(path: str, text: str, yaml_file: bool = True) -> Any:
    """The document in ``text`` (YAML or JSON); a parse error names the file, the problem and where."""
    if not yaml_file:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"config file '{path}' is not valid JSON: {_parse_problem(exc)}.") from exc
    try:
        import yaml
    except ImportError as exc:
        raise UsageError(f"config file '{path}': reading YAML needs PyYAML: pip install pyyaml (or write the file as JSON).") from exc
    try:
        return _load_yaml(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date PyYAML reads as a timestamp, such as 2024-02-30
        raise UsageError(f"config file '{path}' is not valid YAML: {_parse_problem(exc)}.") from exc


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


def parse_model_kwargs(value: Any) -> Dict[str, Any]:
    """``model_kwargs`` as a mapping: given one (a config file), or ``KEY=VALUE`` strings (the flag), values read as YAML scalars.

    ``layers=[3, 4, 6, 3]`` is a list, ``width=0.5`` a float, ``name=abc`` a string.
    """
    if value is None:  # a config file's empty `model_kwargs:`
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = []
        for text in value:
            key, sep, raw = str(text).partition("=")
            if not sep or not key.strip():
                raise UsageError(f"model_kwargs: '{text}' is not KEY=VALUE; write e.g. --model-kwargs layers=[3,4,6,3] width=64.")
            items.append((key.strip(), _yaml_scalar(key.strip(), raw)))
    else:
        raise UsageError(f"model_kwargs must be a mapping of argument names to values (or KEY=VALUE strings), got {value!r}.")
    for key, _ in items:
        if not isinstance(key, str) or not key.isidentifier():
            raise UsageError(f"model_kwargs: {key!r} is not a Python argument name.")
    return dict(items)


def _yaml_scalar(key: str, raw: str) -> Any:
    import yaml

    try:
        return _load_yaml(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError) as exc:
        raise UsageError(f"model_kwargs: the value of {key} ('{raw}') is not valid YAML: {_parse_problem(exc)}.") from exc


# What paddle.Model reports with the loss and Accuracy(topk=(1, 5)) the Runner prepares.
RUN_METRICS = ("loss", "acc_top1", "acc_top5")


def parse_epoch_pair(name: str, text: str) -> List[int]:
    """``"3,2"`` as ``[3, 2]``; UsageError naming ``name`` when it is not two integers joined by a comma."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise UsageError(f"{name} must be two epoch counts F,U such as 3,2 (F frozen, then U unfrozen), got {text!r}.")
    return [int(part) for part in parts]


def _check_data_dir(dataset: str, data_dir: Optional[str]) -> None:
    """A ``data_dir`` the dataset would never read is refused: training on other data than meant, silently, is worse."""
    if data_dir is None or DATASETS[dataset].reads_data_dir:
        return
    source = "is generated" if DATASETS[dataset].format == "synthetic" else "is embedded in the package"
    raise UsageError(f"data_dir '{data_dir}' is not read by dataset '{dataset}', which {source}; the datasets that read "
                     f"a folder are {', '.join(folder_datasets())}: add --dataset NAME (folder for your own images), or drop --data-dir.")


def _check_monitor(monitor: str) -> None:
    """The monitor must be a metric a run logs (checked before any folder is made)."""
    from .monitor import split_monitor

    _, name = split_monitor(monitor)
    if name not in RUN_METRICS:
        choices = [*RUN_METRICS, *(f"train_{m}" for m in RUN_METRICS)]
        raise UsageError(f"monitor '{monitor}' is not a metric a run logs; choose one of: {', '.join(choices)}.{suggest(monitor, choices)}")
