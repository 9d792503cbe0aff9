"""`Runner`: a TrainConfig turned into data, a model and a prepared ``paddle.Model``.

Thin by design: ``paddle.Model.prepare/fit/evaluate/predict`` do the work;
the Runner builds their arguments, writes the run folder and collects the
results. There is no training loop here.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .console import setup_logging
from ..runfolder import layout as rundir
from ..runfolder.layout import RunPaths
from ..config.train_config import TrainConfig, read_run_config
from .distributed import is_main, on_main, say, world_size
from .multinode import start as start_multinode
from .environment import (amp_configs, auto_core_count, configure_gpu_flags, configure_threads, default_num_workers,
                          exported_thread_count, select_device)
from ..errors import HapiRunnerError, UsageError
from ..runfolder.fingerprint import run_fingerprint
from ..model.names import python_object_label, run_name
from ..runfolder.atomic import atomic_write_text, recover_litter, write_json

log = logging.getLogger("hapi_runner")


def build_datasets(config: TrainConfig):
    """``(train, eval)`` ImageDatasets for ``config``; eval is a held-out part of train when ``val_split`` is set."""
    from ..model.assembly import load_data

    data = load_data(config)
    return data.train, data.eval


class _EpochSeeder:
    """Makes shuffling and augmentation a function of (seed, epoch), so resumed runs repeat them."""

    def __init__(self, loader, seed: int, epoch_offset: int = 0):
        self.loader = loader
        self.seed = seed
        self.epoch_offset = epoch_offset

    def callback(self):
        from paddle.callbacks import Callback

        seeder = self

        class EpochSeeder(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                seeder.set_epoch(epoch + seeder.epoch_offset)

        return EpochSeeder()

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch, self.seed)


class Runner:
    """Builds everything a TrainConfig describes and trains it with ``paddle.Model``.

    Example:
        >>> from hapi_runner import Runner, TrainConfig
        >>> runner = Runner(TrainConfig(model="lenet", dataset="fashion-mnist-mini", epochs=2))
        >>> results = runner.fit()
        >>> results["final_eval"]["acc_top1"]

    Args:
        config: the run's configuration. Defaults to ``TrainConfig()``.
        network: a ``paddle.nn.Layer`` built in Python, trained instead of
            ``config.model`` (which then records ``<python object: Class>``).
            It must take ``[N, C, H, W]`` images of the dataset (or of
            ``image_size``) and return ``[N, classes]``; it starts from the
            weights it holds (``zero_init_residual`` and ``conv_init`` apply
            to networks the Runner builds). Defaults to None.
        **overrides: fields to change on ``config`` (checked like the rest).

    Attributes:
        config, device, threads, train_data, eval_data, network (the
        ``paddle.nn.Layer``), model (the prepared ``paddle.Model``),
        run_dir (set by :meth:`fit`), finetuning (what ``freeze_backbone``
        or ``backbone_lr_mult`` did, or None).
    """

    def __init__(self, config: Optional[TrainConfig] = None, network: Any = None, **overrides: Any):
        config = config or TrainConfig()
        if network is not None:
            overrides["model"] = _network_label(network)
        self.config = config.replace(**overrides) if overrides else config
        from .lr_find import provisional_lr

        # --lr auto builds with a stand-in rate; the sweep at the end of __init__ replaces it.
        self.config, auto_lr = provisional_lr(self.config)
        cfg = self.config
        by_cost = cfg.threads == "auto" and exported_thread_count() is None  # the name's guess now, the cost once built
        self.threads = configure_threads(cfg.threads, cfg.model)
        import paddle

        setup_logging()  # after Paddle's import, which puts its own handler on the root logger
        from .class_weights import inverse_frequency
        from .feature_cache import check_cacheable
        from .fine_tune import first_phase
        from .regularisation import add_training_augmentation, build_mixing
        from ..model.user import check_model_file

        self.device = select_device(cfg.device, require_gpu=cfg.gpu)
        configure_gpu_flags(self.device, cfg.cudnn_tuning, amp=bool(cfg.amp), deterministic=cfg.deterministic)
        # A job across machines agrees on its settings and data before anyone reads data (None on one machine).
        self.peer_watch = start_multinode(cfg)
        paddle.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.amp = self._amp_level()
        self.num_workers = cfg.num_workers if cfg.num_workers is not None else default_num_workers(self.device)
        check_model_file(cfg.model if network is None else "")  # before the data, which may be downloaded first
        spec = self._load_data()
        add_training_augmentation(self.train_data, cfg)
        self.input_shape = self.train_data.sample_shape
        self.network = self._build_network(network)
        self.thread_choice = _threads_by_cost(self.network, self.input_shape) if by_cost and self.device == "cpu" else None
        self.threads = self.thread_choice.threads if self.thread_choice else self.threads
        parameters, self.finetuning = _finetuning(self.network, cfg)
        check_cacheable(self)  # a network whose head cannot be split off is refused before any folder is made
        self.class_weights = inverse_frequency(self.train_data.labels, spec.num_classes) if cfg.class_weights == "auto" else None
        self.mixing = build_mixing(cfg, len(self.train_data.class_names))
        self.train_loader = self.loader(self.train_data, shuffle=True, mixing=self.mixing)
        self.eval_loader = self.loader(self.eval_data, evaluation=True)
        self.seeder = _EpochSeeder(self.train_loader, cfg.seed)
        self.model = paddle.Model(
            self.network,
            inputs=paddle.static.InputSpec([None, *self.input_shape], "float32", "image"),
            labels=paddle.static.InputSpec([None, 1], "int64", "label"),
        )
        self.prepare(parameters, first_phase(cfg))
        if self.decay_note:
            say(f"hapi_runner: {self.decay_note}")
        self.run_dir: Optional[str] = None
        self.features = None  # the CachedFeatures a frozen backbone's head trained on, if any
        self.lr_finding = None  # the LRFinding of --lr auto, saved into the run folder by fit
        self.records = _plan_run(self, auto_lr)
        self.history = self.checkpoint = self.exporter = self.early_stopping = self.nan_guard = self.graceful_stop = None
        self.ema = None

    # -- building blocks ---------------------------------------------------
    def _build_network(self, network: Any = None):
        """The network for the data: ``network`` as handed in, or the config's, initialised and loaded with pretrained weights.

        A network handed in may hold weights of the user's: only one built here is re-initialised.
        """
        from ..model.assembly import build_for
        from ..model.build import check_forward
        from ..model.builtin import load_pretrained
        from ..model.initialisation import initialise

        cfg = self.config
        built = network if network is not None else build_for(cfg, self.data)
        self.initialisation = initialise(built, cfg) if network is None else ""
        if self.initialisation:
            say(f"hapi_runner: {self.initialisation}")
        if cfg.pretrained:
            weights = _pretrained_path(cfg)
            self.pretrained_report = load_pretrained(built, weights, fresh=_heads_to_reset(built, cfg, weights,
                                                                                        self.train_data.class_names))
        else:
            self.pretrained_report = None
        check_forward(built, self.input_shape, len(self.train_data.class_names), cfg.model)
        return built

    def prepare(self, parameters, schedule: Optional[TrainConfig] = None) -> None:
        """Builds ``optimizer`` (and ``lr``) over ``parameters`` and prepares ``model`` with it, the loss and the metrics.

        ``schedule``: the config whose ``epochs`` the LR schedule spans (a
        fine-tuning phase's). Defaults to None: the run's config.
        """
        from .optim import build_grad_clip, build_optimizer
        from .regularisation import build_run_loss, steps_per_epoch

        from .decay import decay_exempt, decay_note

        cfg = self.config
        parameters = list(parameters)
        exempt = decay_exempt(self.network, parameters, cfg)
        self.decay_note = decay_note(exempt, cfg)
        self.optimizer, self.lr = build_optimizer(schedule or cfg, parameters, steps_per_epoch(cfg, len(self.train_loader)),
                                                  grad_clip=build_grad_clip(cfg.clip_grad), no_decay=exempt)
        self.model.prepare(self.optimizer, build_run_loss(cfg, self.class_weights), _accuracy(len(self.train_data.class_names)),
                           amp_configs=amp_configs(self.amp, cfg.amp_dtype))
        if self.amp:
            from ..paddle_compat import evaluate_under_amp, set_amp_dtype

            set_amp_dtype(self.model, self.amp, cfg.amp_dtype)
            evaluate_under_amp(self.model, self.amp, cfg.amp_dtype)

    def reschedule(self, **changes: Any) -> None:
        """Changes fields that shape the learning rate (``lr``, ``epochs``...) on the config and on the optimizer's schedule.

        The optimizer is kept (and its state), only the rate it reads is rebuilt.
        """
        from .optim import build_scheduler
        from .regularisation import steps_per_epoch

        self.config = self.config.replace(**changes)
        self.lr.set_schedule(build_scheduler(self.config, steps_per_epoch(self.config, len(self.train_loader))))

    def _load_data(self):
        """Sets ``train_data``, ``eval_data``, ``input_size`` and ``folder``; returns the data's DatasetSpec.

        A folder dataset's classes, channels and statistics are known once its
        files are read; its notes (the first says what was loaded) are printed.
        """
        from ..model.assembly import load_data

        data = load_data(self.config, num_workers=self.num_workers)
        self.train_data, self.eval_data, self.input_size = data.train, data.eval, data.input_size
        self.folder = data.folder  # the FolderSplits of a folder dataset: notes, skipped files, preprocessing
        for note in (data.folder.notes if data.folder else []):
            say(f"hapi_runner: {note}")
        self.data = data
        return data.spec

    def loader(self, dataset, shuffle: bool = False, batch_size: Optional[int] = None, evaluation: bool = False,
               mixing=None):
        """A batched DataLoader over ``dataset`` with this run's workers; ``evaluation``: each sample once over all ranks.

        ``mixing`` (a BatchMixing, training loaders only) makes its batches carry soft targets. Defaults to None.
        """
        from ..datasets import make_loader
        from ..model.initialisation import has_batch_norm

        cfg = self.config
        batch_size = batch_size or cfg.batch_size
        # Only a training loader drops its short last batch, only for a network whose BatchNorm statistics it would
        # skew, and only when a whole batch remains for every process.
        drop_last = bool(shuffle and cfg.drop_last and has_batch_norm(self.network) and len(dataset) >= batch_size * world_size())
        return make_loader(dataset, batch_size, shuffle=shuffle, num_workers=self.num_workers, drop_last=drop_last,
                           evaluation=evaluation, pipeline=cfg.pipeline, prefetch_factor=cfg.prefetch_factor,
                           persistent_workers=cfg.persistent_workers, use_shared_memory=cfg.use_shared_memory,
                           mixing=mixing)

    def _amp_level(self) -> Optional[str]:
        if self.config.amp and self.device == "cpu":
            log.warning("amp %s applies to GPU training only; this run is on the CPU and trains in float32.", self.config.amp)
            return None
        return self.config.amp

    @property
    def verbose(self) -> int:
        if self.config.verbose is not None:
            return self.config.verbose
        return 1 if sys.stdout.isatty() else 2

    def describe(self) -> str:
        c, d = self.config, self.train_data
        data = f"synthetic data shaped like {c.synthetic_like}" if d.synthetic else c.dataset
        if self.folder is not None:
            data = f"the images of {c.data_dir or c.train_list}"
        shape = "x".join(str(s) for s in self.input_shape)
        where = f"{self.device}, {self.threads} thread{'s' if self.threads > 1 else ''}" if self.device == "cpu" else self.device
        if self.device == "cpu" and self.thread_choice is not None:
            where += f" ({self.thread_choice.describe()})"
        ranks = world_size()
        if ranks > 1:
            where += f" per process; {ranks} processes, batch {c.batch_size} each ({ranks * c.batch_size} in all)"
        from .startup import describe_parameters

        return (f"{c.model} ({describe_parameters(self.network)}) on {data}: {len(d)} train / {len(self.eval_data)} "
                f"eval images, {shape}, {len(d.class_names)} classes, {where}")

    # -- the four verbs ------------------------------------------------------
    def fit(self, callbacks: Optional[List[Any]] = None) -> Dict[str, Any]:
        """Trains to ``config.epochs`` in total, evaluating every ``eval_freq`` epochs.

        Creates (or, with ``config.resume``, continues) the run folder:
        ``config.json`` first, then ``metrics.csv``, ``curves.png``,
        ``visualdl/`` and ``checkpoints/`` as it goes, ``inference/``,
        ``results.json`` and ``report.html`` at the end (see
        :mod:`hapi_runner.report.end_of_training`). Returns the results dict.

        Args:
            callbacks: extra ``paddle.callbacks.Callback`` objects, run after
                the built-in ones and before checkpointing. Defaults to None.

        Raises:
            NonFiniteLossError: the loss became NaN or infinite (results.json
                records it; the last checkpoint is intact).
            ExportVerificationError: the exported graph disagrees with the
                trained network (results.json records it).
            TrainingInterrupted: SIGINT or SIGTERM; training stopped after the
                batch in progress and the checkpoints are whole.
        """
        from ..callbacks import ExportVerificationError, NonFiniteLossError, TrainingInterrupted
        from ..report.end_of_training import report_at_end

        cfg = self.config
        if self.peer_watch is not None:
            self.peer_watch.phase("agreeing on the run folder")
        checkpoint_folder = self._open_run_dir()
        ordered = self._callbacks(callbacks or [])
        if self.peer_watch is not None:
            ordered.insert(0, self.peer_watch.callback())
        done = self._begin(checkpoint_folder, ordered)
        if done >= cfg.epochs:
            return self._publish(report_at_end(self.outcome(), self._finish_trained_run(done)))
        started = time.perf_counter()
        try:
            self._fit_model(done, ordered)
        except (NonFiniteLossError, ExportVerificationError, TrainingInterrupted) as exc:
            reason = {"error": type(exc).__name__, "message": str(exc), **(getattr(self.nan_guard, "reason", None) or {})}
            self._publish(self._results(time.perf_counter() - started, resumed_from=done, stop_reason=reason, evaluate=False))
            raise
        finally:
            self.graceful_stop.uninstall()
            if self.peer_watch is not None:
                self.peer_watch.stop()
        return self._publish(report_at_end(self.outcome(), self._results(time.perf_counter() - started, resumed_from=done)))

    def _fit_model(self, done: int, callbacks: List[Any]) -> None:
        """Trains from epoch ``done`` to the end: in two phases with ``fine_tune``, on cached features when frozen."""
        from .feature_cache import fit_frozen
        from .fine_tune import fit_in_phases

        cfg = self.config
        if cfg.fine_tune is not None:
            fit_in_phases(self, done, callbacks)
        elif cfg.freeze_backbone:
            fit_frozen(self, cfg.epochs - done, callbacks)
        else:
            self.fit_images(cfg.epochs - done, callbacks)

    def fit_images(self, epochs: int, callbacks: List[Any]) -> None:
        """``paddle.Model.fit`` of the whole network on the images for ``epochs`` epochs, with ``callbacks``."""
        cfg = self.config
        self.model.fit(self.train_loader, self.eval_loader, epochs=epochs, eval_freq=cfg.eval_freq, log_freq=cfg.log_freq,
                       verbose=self.verbose, callbacks=callbacks, accumulate_grad_batches=cfg.accumulate_grad_batches)

    def _begin(self, checkpoint_folder: Optional[str], ordered: List[Any]) -> int:
        """Puts the checkpoint back when resuming, then writes config.json and the opening lines; the epochs already done."""
        from .fine_tune import enter_phase_of
        from .regularisation import describe_techniques
        from ..runfolder.resume import restore, set_epoch_offset

        cfg = self.config
        done = 0
        if checkpoint_folder:
            self._check_schedule_unchanged()
            enter_phase_of(self, checkpoint_folder)
            done = restore(self.model, checkpoint_folder, self.fingerprint(), self.checkpoint.sources()).epoch
            if done >= cfg.epochs and rundir.is_finished(self.run_dir):
                raise UsageError(f"the checkpoint is at epoch {done} and --epochs is {cfg.epochs}; pass --epochs above {done} to train on.")
            set_epoch_offset([*ordered, self.seeder], done)
        # Only now, with every check passed, is anything in the run folder changed.
        if is_main():
            recover_litter(self.run_dir)  # half-written files, or an export set aside, of a process killed mid-write
            self._write_config()
        say(f"hapi_runner: {self.describe()} -> {self.run_dir}")
        if self.folder is None:  # a folder's first note, printed when it was read, says this already
            from .startup import describe_data

            say(f"hapi_runner: {describe_data(self.train_data)}")
        self._write_bad_images()
        for line in describe_techniques(cfg, self.mixing):
            say(f"hapi_runner: {line}")
        if checkpoint_folder:
            say(f"hapi_runner: resuming after epoch {done} of {cfg.epochs} from {checkpoint_folder}")
        return done

    def evaluate(self, data=None, batch_size: Optional[int] = None) -> Dict[str, float]:
        """Loss, top-1 and top-5 on ``data`` (an ImageDataset; default: the eval set), every sample once.

        The loss is the mean over every sample, as in fit's evaluations:
        hapi's ``evaluate`` alone returns the last batch's.
        """
        from ..callbacks import LossMean
        from .log_values import metric_logs

        loader = self.eval_loader if data is None and batch_size is None else \
            self.loader(data or self.eval_data, batch_size=batch_size, evaluation=True)
        logs = self.model.evaluate(loader, verbose=0, callbacks=[LossMean()])

        result = metric_logs(logs)
        result["num_samples"] = len(loader.batch_sampler.sampler) if hasattr(loader.batch_sampler, "sampler") else len(data or self.eval_data)
        return result

    def predict(self, data=None, batch_size: Optional[int] = None) -> np.ndarray:
        """Class probabilities ``[N, classes]`` for ``data`` (default: the eval set)."""
        loader = self.loader(data or self.eval_data, batch_size=batch_size)
        logits = np.asarray(self.model.predict(loader, verbose=0, stack_outputs=True)[0], dtype=np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def save(self, path: str, training: bool = True) -> None:
        """``paddle.Model.save``: ``path.pdparams`` (+ ``.pdopt``) when training, else an inference model."""
        self.model.save(path, training=training)

    def load(self, path: str, skip_mismatch: bool = False, reset_optimizer: bool = False) -> None:
        """``paddle.Model.load``: weights, and the optimizer state when ``path.pdopt`` exists."""
        self.model.load(path, skip_mismatch=skip_mismatch, reset_optimizer=reset_optimizer)

    # -- run folder and callbacks ---------------------------------------------
    def fingerprint(self) -> Dict[str, Any]:
        """What a checkpoint must match to be resumed into this run (a folder's class names too)."""
        names = self.train_data.class_names if self.folder is not None else None
        return run_fingerprint(self.config, self.input_shape, len(self.train_data.class_names), network=self.network,
                               class_names=names)

    def _write_bad_images(self) -> None:
        """``bad_images.txt`` in the run folder: each file ``skip_bad_images`` left out, with the reason."""
        if self.folder is None or not self.folder.bad_images or not is_main():
            return
        path = RunPaths(self.run_dir).bad_images
        atomic_write_text(path, "".join(f"{file}\t{' '.join(reason.split())}\n" for file, reason in self.folder.bad_images))
        log.warning("%d unreadable image(s) skipped; their list: %s", len(self.folder.bad_images), path)

    def _check_schedule_unchanged(self) -> None:
        """A cosine schedule is laid out over ``epochs``: resuming with another count would bend it (or train at 0)."""
        cfg = self.config
        try:
            before = read_run_config(self.run_dir)
        except HapiRunnerError:
            return  # no readable config.json: nothing to compare with
        if cfg.lr_schedule == "cosine" and before.lr_schedule == "cosine" and before.epochs != cfg.epochs:
            raise UsageError(
                f"this run's cosine schedule spans {before.epochs} epochs; resuming with --epochs {cfg.epochs} would "
                f"reshape it. Resume with --epochs {before.epochs}, or start a new run from the weights with "
                f"--pretrained {os.path.join(RunPaths(self.run_dir).checkpoint(), rundir.PARAMS_FILE)}.")

    def _write_config(self) -> None:
        """``config.json``, with what --lr auto and --time-budget decided (a resumed run keeps its own); the LR sweep's files."""
        from ..config.train_config import run_records

        records = self.records or (run_records(self.run_dir) if self.config.resume else {})
        write_json(RunPaths(self.run_dir).config, {**self.config.to_dict(), **records})
        if self.lr_finding is not None:
            self.lr_finding.save(self.run_dir)

    def _finish_trained_run(self, done: int) -> Dict[str, Any]:
        """Completes a run killed after its last checkpoint: the export and results.json, no training."""
        say(f"hapi_runner: all {done} epochs were trained before the run stopped; exporting and writing the results")
        started = time.perf_counter()
        if self.exporter is not None:
            self.exporter.set_model(self.model)
            self.exporter.epoch = done
            self.exporter.export("end of training")
        return self._results(time.perf_counter() - started, resumed_from=done)

    def _open_run_dir(self) -> Optional[str]:
        """Sets ``run_dir``; returns the checkpoint folder to resume from, if any.

        In a launched job rank 0 alone chooses (and creates) the folder and
        every rank is told the same path; a refusal stops every rank.
        """
        self.run_dir, folder = on_main(self._choose_run_dir)
        return folder

    def _choose_run_dir(self) -> Tuple[str, Optional[str]]:
        """``(run folder, checkpoint folder to resume from or None)``; a new folder is created."""
        from ..runfolder.resume import find_checkpoint

        cfg = self.config
        name = run_name(cfg.model, cfg.dataset)
        if not cfg.resume:
            return rundir.create(rundir.resolve_run_dir(cfg.save_dir, cfg.output_root, name, cfg.overwrite)), None
        source = cfg.resume
        if source == "latest":
            source = cfg.save_dir or rundir.latest_run(cfg.output_root, name)
            if source is None:
                raise UsageError(f"--resume: no run of {name} under '{cfg.output_root}' has a checkpoint; "
                                 f"pass the run folder (--resume PATH) or train without --resume first.")
        begun = rundir.run_folder_of(source)
        if begun and not rundir.has_checkpoint(begun) and not rundir.is_finished(begun):
            return begun, None  # stopped before its first checkpoint: it starts again, in its folder, with its config
        folder = find_checkpoint(source)
        run_dir = os.path.dirname(os.path.dirname(folder))  # run/checkpoints/epoch_N
        if cfg.save_dir and os.path.realpath(cfg.save_dir) != os.path.realpath(run_dir):
            raise UsageError(f"--resume continues in the run's own folder '{run_dir}'; drop --save-dir '{cfg.save_dir}' or make it that folder.")
        return run_dir, folder

    def _callbacks(self, extra: List[Any]) -> List[Any]:
        """The callbacks of a run, in the order they must run.

        LossMean first, so every later callback sees mean losses; the progress
        logger next, so it prints them; NanGuard before every callback that
        keeps state, so none acts on a broken batch; user callbacks after
        the built-in ones; the checkpoint after everything whose state it saves;
        the export last, because a failed check raises from ``on_train_end``.
        """
        from ..callbacks import (Curves, EarlyStopping, GracefulStop, History, LossMean, ModelCheckpoint, NanGuard,
                                OptimizerStepLR, ReduceLROnPlateau, RunProgress, VisualDLLogger)
        from .regularisation import build_ema
        from ..runfolder.relaunch import interruption_hint

        cfg, run = self.config, self.run_dir
        self.nan_guard = NanGuard()
        self.graceful_stop = GracefulStop(lambda: interruption_hint(run))
        self.history = History(RunPaths(run).metrics if is_main() else None)
        named: Dict[str, Any] = {"history": self.history}
        # Our own progress logger, after LossMean, so the line printed at the end of each pass shows the mean loss
        # (hapi would otherwise put its logger first and print the last batch's), and counting the run's epochs.
        progress = [RunProgress(cfg.log_freq, verbose=self.verbose)] if self.verbose else []
        # The EMA right after NanGuard (it never averages a broken step) and before every callback that looks
        # at the weights: it swaps its weights in for evaluation and at the end, before best, export and results.
        self.ema = build_ema(cfg)
        if self.ema is not None:
            named["ema"] = self.ema
        ordered: List[Any] = [LossMean(), *progress, self.nan_guard, *([self.ema] if self.ema else []), self.graceful_stop,
                              self.history, self.seeder.callback(),
                              Curves(self.history, RunPaths(run).curves, title=f"{cfg.model} on {cfg.dataset}")]
        if cfg.visualdl:
            named["visualdl"] = VisualDLLogger(RunPaths(run).visualdl, log_freq=cfg.log_freq, hparams=cfg.to_dict())
        if cfg.reduce_lr_on_plateau:
            named["reduce_lr"] = ReduceLROnPlateau(factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        self.early_stopping = None
        if cfg.early_stopping_patience is not None:
            self.early_stopping = named["early_stopping"] = EarlyStopping(
                cfg.monitor, mode=cfg.mode, patience=cfg.early_stopping_patience, min_delta=cfg.min_delta,
                baseline=cfg.baseline, start_from_epoch=cfg.start_from_epoch, restore_best=cfg.restore_best)
        ordered += [named[k] for k in ("visualdl", "reduce_lr", "early_stopping") if k in named]
        ordered += list(extra)
        self.exporter = self._exporter()
        if self.exporter is not None:
            named["export"] = self.exporter
        self.checkpoint = ModelCheckpoint(
            RunPaths(run).checkpoints, save_freq=cfg.save_freq, keep_last=cfg.keep_last, monitor=cfg.monitor,
            mode=cfg.mode, min_delta=cfg.min_delta, fingerprint=self.fingerprint(), state_sources=named, ema=self.ema)
        ordered.append(self.checkpoint)
        if self.exporter is not None:
            ordered.append(self.exporter)
        # In hapi's own LRScheduler's place: it steps the schedule per optimizer step under accumulation.
        ordered.append(OptimizerStepLR())
        return ordered

    def _exporter(self):
        """The StaticExport of the run (its sidecar says how to prepare an image, and which weights), or None."""
        from ..callbacks import StaticExport
        from ..deploy.layout import build_sidecar

        cfg = self.config
        if not cfg.export:
            return None
        spec = self.train_data.spec
        folder = {"image_preprocessing": self.folder.preprocessing} if self.folder is not None else {}
        resized = cfg.image_size is not None and self.folder is None  # a folder's crop is its own preprocessing
        sidecar = build_sidecar(spec.mean, spec.std, self.input_shape, class_names=self.train_data.class_names,
                                model=cfg.model, dataset=cfg.dataset,
                                image_size=self.input_size if resized else spec.size,
                                **({"resize_to": self.input_size} if resized else {}),
                                synthetic=self.train_data.synthetic, **folder, **({"weights": "ema"} if self.ema else {}))
        verify = self.eval_data.transform(self.eval_data.images[:64])
        return StaticExport(RunPaths(self.run_dir).inference, self.input_shape, sidecar, verify_batch=verify,
                            on_best=cfg.export_on_best, monitor=cfg.monitor, mode=cfg.mode, device=self.device,
                            network=self.network)

    # -- results -------------------------------------------------------------
    def outcome(self):
        """What the end-of-training report needs of this run, after ``fit``: a :class:`TrainingOutcome`."""
        from ..report.end_of_training import TrainingOutcome

        return TrainingOutcome(run_dir=self.run_dir, config=self.config, network=self.network, eval_data=self.eval_data,
                               amp=self.amp, restored_epoch=getattr(self.early_stopping, "restored_epoch", None))

    def _publish(self, results: Dict[str, Any]) -> Dict[str, Any]:
        """Writes results.json, once per fit, with everything the run and its report learnt."""
        if is_main():
            write_json(RunPaths(self.run_dir).results, results)
        return results

    def _results(self, total_seconds: float, resumed_from: int = 0, stop_reason: Optional[Dict[str, Any]] = None,
                 evaluate: bool = True) -> Dict[str, Any]:
        """results.json's content: final and best evaluation, epochs, times, the export's check, where and how it ran."""
        import paddle

        rows = self.history.rows
        last = rows[-1] if rows else {}
        if last.get("eval_acc_top1") is not None or not evaluate:
            final = {"loss": last.get("eval_loss"), "acc_top1": last.get("eval_acc_top1"), "acc_top5": last.get("eval_acc_top5")}
        else:  # the last epoch had no evaluation: measure the final weights
            final = self.evaluate()
            final.pop("num_samples", None)
        best_row = self.history.best()
        train_seconds = self.history.train_seconds
        images = sum((r["images_per_second"] or 0) * r["seconds"] for r in rows)
        stopper = self.early_stopping
        if stop_reason is None and stopper is not None and stopper.stopped_early:
            stop_reason = {"early_stopping": stopper.stop_reason}
        results = {
            "model": self.config.model,
            "dataset": self.config.dataset,
            "synthetic": self.train_data.synthetic,
            "class_weights": self.class_weights,
            "final_eval": final,
            "best": {"epoch": best_row["epoch"], "acc_top1": best_row["eval_acc_top1"]} if best_row else None,
            "epochs_run": len(rows),
            "resumed_from_epoch": resumed_from or None,
            "train_seconds": train_seconds,
            "total_seconds": total_seconds,
            "images_per_second": images / train_seconds if train_seconds else None,
            "stopped_early": bool(stopper is not None and stopper.stopped_early),
            "stop_reason": stop_reason,
            "export": _export_result(self.exporter),
            "paddle_version": paddle.__version__,
            "device": self.device,
            "threads": self.threads,
            "run_dir": self.run_dir,
        }
        return results


def _export_result(exporter) -> Optional[Dict[str, Any]]:
    """results.json's ``export``: where it went and how well it matched, or ``{"error": ...}`` when Paddle could not export."""
    if exporter is None:
        return None
    if exporter.report:
        return {k: exporter.report.get(k) for k in ("directory", "top1_agreement", "max_abs_diff")}
    return {"error": exporter.error} if exporter.error else None


def _threads_by_cost(network, input_shape):
    """``--threads auto`` once the network is built: the count its multiply-adds per image call for, set and returned."""
    from .auto_threads import choose_threads

    return choose_threads(network, input_shape, auto_core_count())


def _accuracy(num_classes: int):
    """hapi's Accuracy metric: top-1 and top-5, or top-1 alone (still named ``acc_top1``) where top-5 is always 1."""
    import paddle

    from .metrics import TOP_K, shows_top_k

    if shows_top_k(num_classes):
        return paddle.metric.Accuracy(topk=(1, TOP_K))
    return paddle.metric.Accuracy(topk=(1,), name="acc_top1")


def _network_label(network) -> str:
    """``config.model`` for a network handed to the Runner; UsageError if it is not a Layer."""
    import paddle

    if not isinstance(network, paddle.nn.Layer):
        raise UsageError(f"network must be a paddle.nn.Layer (an instance, built), got {type(network).__name__}; "
                         f"for a class or function, pass model='FILE.py:NAME' instead.")
    return python_object_label(network)


def _pretrained_path(config: TrainConfig) -> str:
    """The weights file of ``--pretrained``: a path as given, or paddle.vision's ImageNet file for ``imagenet``."""
    from ..model.finetune import IMAGENET, imagenet_weights

    if config.pretrained == IMAGENET and not os.path.exists(IMAGENET):
        return imagenet_weights(config.model, download=config.download)
    return config.pretrained


def _heads_to_reset(network, config: TrainConfig, weights: str, class_names) -> List[str]:
    """The classifier to keep at its fresh initialisation when loading ``weights``: with ``--reset-head``, or
    when the weights are a checkpoint of a run with other classes (said in one line). Else nothing."""
    from ..model.finetune import classifier_name, head_reset_reason

    reason = None if config.reset_head else head_reset_reason(weights, class_names)
    if not config.reset_head and reason is None:
        return []
    if config.head is not None:
        network.classifier_layer = config.head
    try:
        name = classifier_name(network)
    except UsageError:
        if config.reset_head:
            raise
        return []
    if reason is not None:
        say(f"hapi_runner: {reason}: the classifier ({name}) starts from a fresh initialisation, not from the weights "
            f"(as --reset-head does)")
    return [name]


def _finetuning(network, config: TrainConfig):
    """``(parameters to optimise, what fine-tuning did or None)``; says it in one line when it does anything."""
    freeze = config.freeze_backbone or config.fine_tune is not None  # fine_tune's first phase trains the head alone
    if not freeze and config.backbone_lr_mult == 1.0:
        return network.parameters(), None
    if config.head is not None:
        network.classifier_layer = config.head
    from ..model.finetune import apply_finetuning, describe_finetuning

    report = apply_finetuning(network, freeze, config.backbone_lr_mult)
    say(f"hapi_runner: {describe_finetuning(report)}")
    return report.pop("trainable"), report


def _plan_run(runner: Runner, auto_lr: bool) -> Dict[str, Any]:
    """Runs ``--lr auto``'s sweep, then ``--time-budget``'s measure; returns their records for config.json.

    A resumed run keeps the plan its config.json holds: its epochs and rate are already the planned ones.
    """
    records: Dict[str, Any] = {}
    if auto_lr:
        from .lr_find import apply_auto_lr

        records["lr_find"] = apply_auto_lr(runner)
    if runner.config.time_budget and not runner.config.resume:
        from .time_budget import apply_time_budget

        records["time_budget_plan"] = apply_time_budget(runner)
    return records

