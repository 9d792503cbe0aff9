"""Decode each image once: a memory-mapped uint8 cache of a file list, or decoding on every access when it will not fit.

A cache is a folder ``<root>/folder-<key>/`` (root ``~/.cache/hapi_runner``,
or ``$HAPI_RUNNER_CACHE``) holding ``pixels.u8`` (every image's ``[H, W, C]``
bytes, one after the other), ``index.npy`` (offset, height, width per image),
``stats.npy`` (per-image channel sums, for ``normalize_stats="data"``, made
only when asked for: they cost a tenth of a decode) and
``meta.json`` (the images that could not be read, and why). The key hashes
the format version, the channel count, the short side and every file's path,
size and modification time, so an edited, added or removed file makes a new
cache. It is built in a ``.tmp-`` folder named with the writer's pid and
renamed into place only when complete: a crash leaves litter that the next
build removes, never a cache that is trusted half-written. Workers (a process
pool) decode the first pass in parallel, each writing its images straight
into the memory map.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataFileError
from ..runfolder.atomic import TMP_PREFIX, atomic_write_bytes, atomic_write_text, fsync_dir, remove_litter, remove_path, writer_suffix
from . import image_decode as decoding

CACHE_VERSION = 1
# A cache is refused when it would leave less than this share of its disk free.
FREE_DISK_SHARE = 0.10
_CHUNK = 16


def cache_root() -> str:
    """``$HAPI_RUNNER_CACHE``, else ``~/.cache/hapi_runner``."""
    return os.environ.get("HAPI_RUNNER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hapi_runner")


def default_cache_limit(root: str) -> int:
    """Bytes a new cache may take under ``root``: the free space less 10% of the disk."""
    probe_dir = root
    while not os.path.isdir(probe_dir) and os.path.dirname(probe_dir) != probe_dir:
        probe_dir = os.path.dirname(probe_dir)
    usage = shutil.disk_usage(probe_dir)
    return max(0, int(usage.free - FREE_DISK_SHARE * usage.total))


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000.0
    return f"{count:.1f} TB"


def cache_key(paths: Sequence[str], channels: int, side: int) -> str:
    """A hash of the format version, channels, side, and each file's path, size and modification time."""
    digest = hashlib.sha256(f"v{CACHE_VERSION} c{channels} s{side} n{len(paths)}\n".encode())
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise DataFileError(f"{path}: cannot be read ({exc.strerror}); restore the file or remove it from the dataset.") from exc
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


class _Images:
    """Images by position: ``images[i]`` one array, ``images[a:b]`` or ``images[[i, j]]`` a list of them."""

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.image(int(key))
        positions = range(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64).ravel()
        return [self.image(int(p)) for p in positions]


class CachedImages(_Images):
    """Images of a cache, read through a memory map; indexing gives ``[H, W, C]`` views (a list for many)."""

    def __init__(self, folder: str, rows: np.ndarray, index: np.ndarray):
        self.folder = folder
        self.rows = np.asarray(rows, dtype=np.int64)
        self.index = index
        self._pixels = None

    def __getstate__(self):
        # A worker started by spawn reopens the map instead of receiving every pixel pickled.
        return {**self.__dict__, "_pixels": None}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = np.memmap(os.path.join(self.folder, "pixels.u8"), dtype=np.uint8, mode="r")
        return self._pixels

    def image(self, position: int) -> np.ndarray:
        offset, height, width, channels = self.index[self.rows[position]]
        return self.pixels[offset:offset + height * width * channels].reshape(height, width, channels)

    def subset(self, indices) -> "CachedImages":
        return CachedImages(self.folder, self.rows[np.asarray(indices, dtype=np.int64)], self.index)


class DecodingImages(_Images):
    """The same interface as :class:`CachedImages`, decoding the files on every access (no cache)."""

    def __init__(self, paths: Sequence[str], channels: int, side: int):
        self.paths = list(paths)
        self.channels = channels
        self.side = side

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, position: int) -> np.ndarray:
        path = self.paths[position]
        try:
            return decoding.decode_image(path, self.channels, self.side)
        except decoding.DECODE_ERRORS as exc:
            raise DataFileError(f"{path}: cannot be decoded any more ({exc}); it changed since the run started: "
                                f"restore it, or start again with skip_bad_images.") from exc

    def subset(self, indices) -> "DecodingImages":
        return DecodingImages([self.paths[i] for i in np.asarray(indices, dtype=np.int64)], self.channels, self.side)


@dataclass
class DecodeReport:
    """What the first pass found.

    Attributes:
        images: the store (:class:`CachedImages` or :class:`DecodingImages`), every file included.
        bad: ``{index: reason}`` of files that could not be read.
        stats: float64 ``[N, 2C + 1]``: per image, channel sums, channel sums of squares, pixel
            count; None unless asked for.
        cache_dir: the cache folder, or None when decoding every epoch.
        decoded: how many images this call decoded (0 when the cache was reused).
        notes: lines for the user (the cache was reused, made, or would not fit).
    """

    images: object
    bad: Dict[int, str]
    stats: Optional[np.ndarray]
    cache_dir: Optional[str]
    decoded: int
    notes: List[str] = field(default_factory=list)


_LEVELS = np.arange(256, dtype=np.float64)


def _image_stats(array: np.ndarray) -> np.ndarray:
    """``[sums, sums of squares, pixel count]`` per channel, from every other pixel.

    One histogram over (channel, level) gives exact sums at a tenth of the
    cost of float arithmetic; half the pixels estimate a mean and std as
    well as all of them, at half the cost again.
    """
    flat = array.reshape(-1, array.shape[-1])[::2]
    hists = np.stack([np.bincount(flat[:, c], minlength=256) for c in range(flat.shape[1])]).astype(np.float64)
    return np.concatenate([hists @ _LEVELS, hists @ (_LEVELS * _LEVELS), [flat.shape[0]]])


def _decode_chunk(task) -> List[Tuple[int, Optional[str], Optional[np.ndarray]]]:
    """Decodes one chunk, writing into the map when there is one: ``(index, error or None, stats)`` per image."""
    pixels_path, items, channels, side, with_stats = task
    pixels = np.memmap(pixels_path, dtype=np.uint8, mode="r+") if pixels_path else None
    results = []
    for index, path, offset, height, width in items:
        try:
            array = decoding.decode_image(path, channels, side)
        except decoding.DECODE_ERRORS as exc:
            results.append((index, f"{type(exc).__name__}: {exc}", None))
            continue
        if array.shape != (height, width, channels):
            results.append((index, f"decoded as {array.shape[1]}x{array.shape[0]}, its header says {width}x{height}", None))
            continue
        if pixels is not None:
            pixels[offset:offset + array.size] = array.reshape(-1)
        results.append((index, None, _image_stats(array) if with_stats else None))
    if pixels is not None:
        pixels.flush()
    return results


def _probe_all(paths: Sequence[str], channels: int, side: int) -> Tuple[np.ndarray, Dict[int, str]]:
    """``[N, 4]`` offset, height, width, channels from the headers, and the files whose header is unreadable."""
    index = np.zeros((len(paths), 4), dtype=np.int64)
    bad, offset = {}, 0
    for i, path in enumerate(paths):
        try:
            height, width = decoding.probe(path, side)
        except decoding.DECODE_ERRORS as exc:
            bad[i] = f"{type(exc).__name__}: {exc}"
            height = width = 0
        index[i] = (offset, height, width, channels)
        offset += height * width * channels
    return index, bad


def _run_pass(paths, index, bad, *, pixels_path, channels, side, num_workers, with_stats) -> Optional[np.ndarray]:
    """Decodes every readable file (into ``pixels_path`` when given); adds failures to ``bad``; returns the stats."""
    stats = np.zeros((len(paths), 2 * channels + 1), dtype=np.float64)
    todo = [(i, paths[i], *map(int, index[i, :3])) for i in range(len(paths)) if i not in bad]
    tasks = [(pixels_path, todo[k:k + _CHUNK], channels, side, with_stats) for k in range(0, len(todo), _CHUNK)]
    if num_workers > 0 and len(tasks) > 1:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(num_workers, len(tasks))) as pool:
            chunks = list(pool.imap_unordered(_decode_chunk, tasks))
    else:
        chunks = [_decode_chunk(task) for task in tasks]
    for chunk in chunks:
        for i, error, row in chunk:
            if error is None:
                stats[i] = row if with_stats else 0.0
            else:
                bad[i] = error
    return stats if with_stats else None


def _read_cache(folder: str, count: int, channels: int):
    """``(index, stats, bad)`` of a complete cache folder, or None when it is absent or does not add up."""
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        index = np.load(os.path.join(folder, "index.npy"))
        size = os.path.getsize(os.path.join(folder, "pixels.u8"))
    except (OSError, ValueError):
        return None
    if meta.get("version") != CACHE_VERSION or index.shape != (count, 4) or size != meta.get("total_bytes"):
        return None
    try:
        stats = np.load(os.path.join(folder, "stats.npy"))
    except (OSError, ValueError):
        stats = None
    if stats is not None and stats.shape != (count, 2 * channels + 1):
        stats = None
    return index, stats, {int(k): v for k, v in meta.get("bad", {}).items()}


def _stats_of_cache(folder: str, store: "CachedImages", bad: Dict[int, str], channels: int) -> np.ndarray:
    """Per-image stats of a cache made without them, from its pixels (no decoding), saved beside them."""
    stats = np.zeros((len(store), 2 * channels + 1), dtype=np.float64)
    for i in range(len(store)):
        if i not in bad:
            stats[i] = _image_stats(store.image(i))
    buffer = io.BytesIO()
    np.save(buffer, stats)
    atomic_write_bytes(os.path.join(folder, "stats.npy"), buffer.getvalue())
    return stats


def _build_cache(root, key, paths, index, bad, *, channels, side, num_workers, with_stats) -> Tuple[str, np.ndarray]:
    """Decodes everything into a ``.tmp-`` folder and renames it to the cache; returns (folder, stats)."""
    final = os.path.join(root, f"folder-{key}")
    tmp = os.path.join(root, f"{TMP_PREFIX}folder-{key}{writer_suffix()}")
    total = int((index[:, 1] * index[:, 2] * index[:, 3]).sum())
    os.makedirs(tmp)
    try:
        pixels_path = os.path.join(tmp, "pixels.u8")
        with open(pixels_path, "wb") as fh:
            fh.truncate(total)
        stats = _run_pass(paths, index, bad, pixels_path=pixels_path if total else None, channels=channels, side=side,
                          num_workers=num_workers, with_stats=with_stats)
        with open(pixels_path, "rb+") as fh:
            os.fsync(fh.fileno())
        np.save(os.path.join(tmp, "index.npy"), index)
        if stats is not None:
            np.save(os.path.join(tmp, "stats.npy"), stats)
        meta = {"version": CACHE_VERSION, "count": len(paths), "channels": channels, "side": side,
                "total_bytes": os.path.getsize(pixels_path), "bad": {str(k): v for k, v in sorted(bad.items())}}
        atomic_write_text(os.path.join(tmp, "meta.json"), json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same cache first: theirs is as good as ours
            remove_path(tmp)
        fsync_dir(root)
    except BaseException:
        remove_path(tmp)
        raise
    return final, stats


def decode_once(paths: Sequence[str], channels: int, side: int, *, cache_limit: Optional[int] = None,
                num_workers: int = 0, root: Optional[str] = None, with_stats: bool = False) -> DecodeReport:
    """Reads every file once: from its cache when one exists, else decoding it (into a new cache when it fits).

    Args:
        paths: the image files.
        channels: 1 or 3.
        side: the short side images are stored at.
        cache_limit: bytes a new cache may take; 0 never caches. Defaults
            to None: the free disk less 10% of its size.
        num_workers: processes decoding the first pass; 0 decodes here.
            Defaults to 0.
        root: the cache folder. Defaults to :func:`cache_root`.
        with_stats: also the per-image channel statistics. Defaults to False.

    Returns:
        A :class:`DecodeReport`; its ``bad`` files are in ``images`` too (as
        empty images): the caller decides whether to stop or to skip them.
    """
    root = root or cache_root()
    key = cache_key(paths, channels, side)
    folder = os.path.join(root, f"folder-{key}")
    found = _read_cache(folder, len(paths), channels)
    if found is not None:
        index, stats, bad = found
        store = CachedImages(folder, np.arange(len(paths)), index)
        if with_stats and stats is None:
            stats = _stats_of_cache(folder, store, bad, channels)
        return DecodeReport(store, bad, stats, folder, 0, [f"image cache {folder} reused ({len(paths)} images)"])
    index, bad = _probe_all(paths, channels, side)
    total = int((index[:, 1] * index[:, 2] * index[:, 3]).sum())
    os.makedirs(root, exist_ok=True)
    limit = default_cache_limit(root) if cache_limit is None else cache_limit
    decodable = len(paths) - len(bad)
    if total > limit:
        why = "the cache_limit" if cache_limit is not None else "free disk less 10%"
        stats = _run_pass(paths, index, bad, pixels_path=None, channels=channels, side=side, num_workers=num_workers,
                          with_stats=with_stats)
        note = (f"image cache of {format_bytes(total)} would not fit in {format_bytes(limit)} ({why}); "
                f"decoding every epoch instead (slower)")
        return DecodeReport(DecodingImages(paths, channels, side), bad, stats, None, decodable, [note])
    remove_path(folder)  # a damaged cache under the key (it did not add up): replaced
    remove_litter(root)
    folder, stats = _build_cache(root, key, paths, index, bad, channels=channels, side=side,
                                 num_workers=num_workers, with_stats=with_stats)
    found = _read_cache(folder, len(paths), channels)
    if found is None:
        raise DataFileError(f"{folder}: the image cache just written cannot be read back; check the disk, "
                            f"or set HAPI_RUNNER_CACHE to another folder.")
    index, _, bad = found
    return DecodeReport(CachedImages(folder, np.arange(len(paths)), index), bad, stats, folder, decodable,
                        [f"image cache {folder} made ({len(paths)} images, {format_bytes(total)})"])
