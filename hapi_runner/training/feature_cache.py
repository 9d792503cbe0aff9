"""Cached backbone features: the frozen layers run once per image through ``paddle.inference``, the head trains on them.

With ``--freeze-backbone`` the layers before the head never change, so
running them on every image in every epoch (in dygraph, the slowest way
Paddle has) computes the same numbers again and again. Here they are
exported as a static graph (:func:`hapi_runner.deploy.export.save_static`,
batch norm in eval mode), run once over the training and evaluation images
with ``paddle.inference`` (:class:`hapi_runner.deploy.inference.InferenceModel`,
oneDNN on the CPU), and kept as memory-mapped float32 arrays. The head is
then an ordinary ``paddle.Model`` fit on feature batches, with the run's
optimizer, loss, metrics and callbacks; it is the network's own sublayer
(:func:`hapi_runner.model.head_split.head_network`), so checkpoints, resume,
export, ``evaluate`` and ``predict`` see the whole network as usual.

Views: ``feature_views`` 1 (the default) keeps one view per training image,
the evaluation transform: no augmentation at all. N > 1 keeps that view and
N-1 augmented ones (the training transform as it is in epochs 1..N-1), and
epoch e trains on view e mod N: N times the feature pass buys N fixed
augmentations instead of a fresh one per epoch.

The cache is ``<cache root>/features/<key>/`` (the image cache's root,
``$HAPI_RUNNER_CACHE`` or ``~/.cache/hapi_runner``), holding ``train.npy``
``[N, views, *feature shape]``, ``eval.npy`` ``[M, 1, ...]`` and
``meta.json``. The key hashes the frozen layers' weights, the head's name,
each view's transform and the images (a folder's file paths, sizes and
modification times; a built-in dataset's pixels) with their labels, so any
change computes new features. It is built in a ``.tmp-`` folder and renamed
into place when complete, so a crash never leaves a cache that is trusted
half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from ..datasets.image_cache import cache_root
from ..runfolder.atomic import TMP_PREFIX, fsync_dir, remove_litter, write_json, writer_suffix
from .distributed import say, world_size

FEATURES_DIR = "features"
TRAIN_FILE, EVAL_FILE, META_FILE = "train.npy", "eval.npy", "meta.json"
FORMAT_VERSION = 1
_PROGRESS_SECONDS = 15.0


class FeatureViews:
    """The transform of a cached-feature dataset: picks view ``epoch mod views`` of ``[B, views, ...]`` features.

    It has the parts of a :class:`~hapi_runner.datasets.pipeline.BatchTransform`
    the loaders and the run's epoch seeder use (``set_epoch``, ``epoch``, ``seed``).
    """

    out_size = None

    def __init__(self, views: int, seed: int = 0):
        self.views = int(views)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int, worker: int = 0) -> None:
        self.epoch = epoch

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(features[:, self.epoch % self.views], dtype=np.float32)


@dataclass
class CachedFeatures:
    """The features of one run: datasets to train and evaluate the head on, and where they came from."""

    train: Any  # ImageDataset of [N, views, *shape] features
    eval: Any
    head: str
    shape: List[int]
    folder: str
    seconds: float
    reused: bool


def why_not_cached(runner) -> Optional[str]:
    """Why ``runner``'s frozen backbone cannot run from cached features, or None when it can."""
    cfg = runner.config
    if cfg.mixes:
        return "--mixup/--cutmix mix images, not features"
    if world_size() > 1:
        return "a distributed run computes no shared feature cache"
    if runner.amp:
        return "--amp trains in low precision, which the cached features are not"
    return None


def check_cacheable(runner) -> None:
    """UsageError when ``runner`` would train on cached features but its head cannot be split off (see
    :func:`hapi_runner.model.head_split.check_split`)."""
    from ..model.head_split import check_split

    cfg = runner.config
    frozen = cfg.freeze_backbone or cfg.fine_tune is not None
    if frozen and cfg.feature_cache and why_not_cached(runner) is None:
        batch = runner.eval_data.transform(runner.eval_data.images[:2])
        check_split(runner.network, runner.finetuning["classifier"], batch, cfg.model)


def fit_frozen(runner, epochs: int, callbacks: List[Any]) -> None:
    """Trains ``runner``'s head, its backbone frozen, for ``epochs`` epochs: on cached features unless they cannot serve."""
    if runner.config.feature_cache:
        reason = why_not_cached(runner)
        if reason is None:
            runner.features = fit_on_features(runner, epochs, callbacks)
            return
        say(f"hapi_runner: the frozen layers run on every batch (no feature cache): {reason}")
    runner.fit_images(epochs, callbacks)


def fit_on_features(runner, epochs: int, callbacks: List[Any]) -> CachedFeatures:
    """Trains ``runner``'s head for ``epochs`` epochs on cached features, with the run's callbacks.

    The optimizer is the run's own (it holds the head's parameters alone),
    so a checkpoint written here resumes into the run's ``paddle.Model``.
    """
    import paddle
    from paddle.static import InputSpec

    from ..datasets import make_loader
    from ..model.head_split import head_network
    from .regularisation import build_run_loss

    cfg = runner.config
    features = cached_features(runner)
    model = paddle.Model(head_network(runner.network, features.head),
                         inputs=InputSpec([None, *features.shape], "float32", "features"),
                         labels=InputSpec([None, 1], "int64", "label"))
    model.prepare(runner.optimizer, build_run_loss(cfg, runner.class_weights), paddle.metric.Accuracy(topk=(1, 5)))
    train_loader = make_loader(features.train, cfg.batch_size, shuffle=True)
    eval_loader = make_loader(features.eval, cfg.batch_size, shuffle=False, evaluation=True)
    # The run's seeder shuffles the loader it holds and sets its transform's epoch (here: the view).
    images_loader, runner.seeder.loader = runner.seeder.loader, train_loader
    try:
        model.fit(train_loader, eval_loader, epochs=epochs, eval_freq=cfg.eval_freq, log_freq=cfg.log_freq,
                  verbose=runner.verbose, callbacks=callbacks, accumulate_grad_batches=cfg.accumulate_grad_batches)
    finally:
        runner.seeder.loader = images_loader
    return features


def cached_features(runner) -> CachedFeatures:
    """The features of ``runner``'s frozen layers on its train and eval images, from the cache or computed now."""
    cfg = runner.config
    head = runner.finetuning["classifier"]
    views = _views(runner)
    key = feature_key(runner.network, head, cfg.model, [(runner.train_data, views), (runner.eval_data, views[:1])])
    root = os.path.join(cache_root(), FEATURES_DIR)
    folder = os.path.join(root, key)
    started = time.perf_counter()
    reused = os.path.isfile(os.path.join(folder, META_FILE))
    if reused:
        say(f"hapi_runner: training the head '{head}' on cached features from {folder}")
    else:
        _build(runner, head, views, root, folder)
    train, evaluation = (np.load(os.path.join(folder, name), mmap_mode="r") for name in (TRAIN_FILE, EVAL_FILE))
    return CachedFeatures(train=_dataset(runner.train_data, train, len(views), cfg.seed),
                          eval=_dataset(runner.eval_data, evaluation, 1, cfg.seed), head=head,
                          shape=[int(s) for s in train.shape[2:]], folder=folder,
                          seconds=time.perf_counter() - started, reused=reused)


def _views(runner) -> List[Tuple[Any, Optional[int]]]:
    """``(transform, epoch or None)`` per view: the evaluation transform, then the training one at epochs 1..N-1."""
    return [(runner.eval_data.transform, None)] + [(runner.train_data.transform, k) for k in range(1, runner.config.feature_views)]


def _dataset(images_data, features: np.ndarray, views: int, seed: int):
    from ..datasets.pipeline import ImageDataset

    return ImageDataset(features, images_data.labels, images_data.class_names, images_data.spec,
                        FeatureViews(views, seed), images_data.synthetic)


def feature_key(network, head: str, label: str, datasets: List[Tuple[Any, List[Tuple[Any, Optional[int]]]]]) -> str:
    """The cache key: the frozen layers' weights, the head's name, and each dataset's images, labels and view transforms."""
    digest = hashlib.sha256(json.dumps({"version": FORMAT_VERSION, "model": label, "head": head}).encode())
    for name, value in network.state_dict().items():
        if name != head and not name.startswith(head + "."):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value.numpy()).tobytes())
    for dataset, views in datasets:
        digest.update(_images_key(dataset).encode())
        for transform, epoch in views:
            digest.update(f"{describe_transform(transform)}@{epoch}".encode())
    return digest.hexdigest()[:24]


def _images_key(dataset) -> str:
    """A folder's files by path, size and modification time; in-memory images by their pixels; the labels too."""
    digest = hashlib.sha256(np.ascontiguousarray(dataset.labels).tobytes())
    paths = getattr(dataset, "paths", None)
    if paths is not None:
        for path in paths:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
        digest.update(np.ascontiguousarray(dataset.images).tobytes())
    return digest.hexdigest()


def describe_transform(obj: Any, depth: int = 0) -> str:
    """A stable text of what a transform does: its settings, without its random state or epoch."""
    if isinstance(obj, np.ndarray):
        return f"array{list(obj.shape)}{obj.dtype}:{hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()[:16]}"
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(describe_transform(v, depth + 1) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join(f"{k}:{describe_transform(v, depth + 1)}" for k, v in sorted(obj.items(), key=str)) + "}"
    settings = getattr(obj, "__dict__", None)
    if settings is None or depth > 3:
        return type(obj).__name__
    kept = {k: v for k, v in settings.items() if k not in ("rng", "epoch")}
    return f"{type(obj).__name__}{describe_transform(kept, depth + 1)}"


def _build(runner, head: str, views, root: str, folder: str) -> None:
    """Exports the frozen layers, runs them over the images into a staging folder, and renames it to ``folder``."""
    from ..deploy.export import save_static
    from ..deploy.inference import InferenceModel
    from ..model.head_split import head_removed

    os.makedirs(root, exist_ok=True)
    remove_litter(root)  # staging folders of builds killed mid-way
    staging = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.path.basename(folder)}-", suffix=writer_suffix(), dir=root)
    try:
        started = time.perf_counter()
        with head_removed(runner.network, head):
            save_static(runner.network, os.path.join(staging, "frozen", "model"), runner.input_shape)
        engine = InferenceModel(os.path.join(staging, "frozen", "model"), runner.device, threads=runner.threads)
        total = len(runner.train_data) * len(views) + len(runner.eval_data)
        say(f"hapi_runner: computing the frozen layers' features once ({len(runner.train_data)} train images x "
            f"{len(views)} view{'s' if len(views) > 1 else ''}, {len(runner.eval_data)} eval images) with {engine.engine}")
        progress = _Progress(total)
        batch = runner.config.batch_size
        _compute(engine, runner.train_data, views, batch, os.path.join(staging, TRAIN_FILE), progress)
        _compute(engine, runner.eval_data, views[:1], batch, os.path.join(staging, EVAL_FILE), progress)
        shutil.rmtree(os.path.join(staging, "frozen"))
        write_json(os.path.join(staging, META_FILE), {"version": FORMAT_VERSION, "model": runner.config.model, "head": head,
                                                       "views": len(views), "train_images": len(runner.train_data),
                                                       "eval_images": len(runner.eval_data), "engine": engine.engine,
                                                       "seconds": round(time.perf_counter() - started, 3)})
        fsync_dir(staging)
        try:
            os.replace(staging, folder)
        except OSError:
            if not os.path.isdir(folder):
                raise
            shutil.rmtree(staging)  # another run built the same features meanwhile: theirs are as good
        fsync_dir(root)
        say(f"hapi_runner: features of {total} images in {time.perf_counter() - started:.1f} s, cached in {folder}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _compute(engine, dataset, views, batch_size: int, path: str, progress: "_Progress") -> None:
    """``[N, len(views), *shape]`` float32 features of ``dataset``'s images, written into a memory map at ``path``."""
    out = None
    count = len(dataset)
    for view, (transform, epoch) in enumerate(views):
        if epoch is not None:
            transform.set_epoch(epoch)
        for start in range(0, count, batch_size):
            index = np.arange(start, min(count, start + batch_size))
            features = engine.predict(transform(dataset.images[index]))
            if out is None:
                out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                                shape=(count, len(views), *features.shape[1:]))
            out[index, view] = features
            progress.add(len(index))
    out.flush()
    del out


class _Progress:
    """Prints how far the feature pass is, every 15 s (it is the one long step of a cached run)."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        self.started = self.last = time.perf_counter()

    def add(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last >= _PROGRESS_SECONDS and self.done < self.total:
            self.last = now
            rate = self.done / (now - self.started)
            say(f"hapi_runner: features {self.done}/{self.total} images ({self.done / self.total:.0%}), "
                f"{rate:.1f} images/s, about {(self.total - self.done) / rate:.0f} s left")
