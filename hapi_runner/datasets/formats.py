"""Readers for the on-disk formats of the datasets hapi_runner uses offline.

Two formats are read here, with numpy only (no Paddle import), so that a
damaged or mismatched file is caught before any training starts:

* IDX, the format of MNIST and Fashion-MNIST (``train-images-idx3-ubyte.gz``
  and friends), gzip-compressed or raw.
* The "python version" CIFAR archives ``cifar-10-python.tar.gz`` and
  ``cifar-100-python.tar.gz``: a tar.gz of pickled batches.

Every failure is raised as :class:`~hapi_runner.errors.DataFileError` whose
message is one line: the file, what is wrong with it, and what to do.
"""

import gzip
import io
import logging
import os
import pickle
import struct
import tarfile
import zlib

import numpy as np

from hapi_runner.config.checks import check_choice
from hapi_runner.datasets.registry import CIFAR10_CLASSES, CIFAR100_CLASSES
from hapi_runner.errors import DataFileError

log = logging.getLogger("hapi_runner")

__all__ = ["read_idx", "read_mnist_split", "read_cifar"]

_REPLACE = "delete it so it can be downloaded again, or put an intact copy there"
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08
_IDX_LABELS_NDIM = 1
_IDX_IMAGES_NDIM = 3
_MNIST_NUM_CLASSES = 10
_CIFAR_ROW = 3 * 32 * 32
# Archives already warned about lacking their label names: each split reads the archive, the warning is said once.
_WARNED_NO_META = set()


def _error(path, problem, fix=_REPLACE):
    """Builds the one-line DataFileError for ``path``.

    Library exceptions (zlib, tarfile) may carry newlines or runs of spaces;
    collapsing whitespace keeps the CLI's "one line per failure" promise.
    """
    error = DataFileError(f"{os.fspath(path)}: {' '.join(f'{problem}; {fix}'.split())}")
    # Kept apart, so a caller that knows more (sources: Paddle's checksums) can say it in the same line.
    error.path, error.problem = os.fspath(path), " ".join(problem.split())
    return error


def _check_file(path):
    if not os.path.exists(path):
        raise _error(path, "no such file", "put a copy of the file there")
    if not os.path.isfile(path):
        raise _error(path, "is not a regular file", "point to the file itself, not a folder")


def _read_bytes(path):
    _check_file(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise _error(path, f"cannot be read ({exc.strerror or exc})",
                     "check its permissions") from exc


def _gunzip(path, raw):
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise _error(path, "gzip data is truncated (the download was probably cut short)") from exc
    except (OSError, zlib.error) as exc:
        raise _error(path, f"gzip data is corrupt ({exc})") from exc


def read_idx(path):
    """Reads an IDX file of unsigned bytes (the MNIST format) into an array.

    The file may be gzip-compressed or raw. Compression is recognised from the
    content, so a raw file is read whatever its name, but a file whose name
    ends in ``.gz`` must really be gzip.

    Args:
        path: Path of the ``*-ubyte`` or ``*-ubyte.gz`` file.

    Returns:
        A writable ``uint8`` array of shape ``[N]`` for a label file
        (magic ``0x00000801``) or ``[N, H, W]`` for an image file
        (magic ``0x00000803``).

    Raises:
        DataFileError: The file is missing, unreadable, not gzip although
            named ``.gz``, truncated, has another magic number, or its payload
            is shorter or longer than its header announces.
    """
    data = _read_bytes(path)
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(path, data)
    elif os.fspath(path).endswith(".gz"):
        raise _error(path, "is not gzip-compressed although its name ends in .gz")

    if len(data) < 4:
        raise _error(path, f"is too short for an IDX header ({len(data)} bytes)")
    zero1, zero2, dtype, ndim = data[:4]
    if (zero1, zero2, dtype) != (0, 0, _IDX_UBYTE) or ndim not in (_IDX_LABELS_NDIM, _IDX_IMAGES_NDIM):
        raise _error(
            path,
            f"bad IDX magic number 0x{data[:4].hex()} (expected 0x00000801 for labels "
            "or 0x00000803 for images), so it is not an MNIST-format file",
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise _error(path, f"IDX header is cut short ({len(data)} of {header_size} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header_size
    if actual != expected:
        shape = "x".join(str(d) for d in dims)
        how = "truncated" if actual < expected else "has trailing bytes"
        raise _error(path, f"IDX payload {how}: header says {shape} = {expected} bytes, "
                           f"file holds {actual}")
    # bytearray makes the array writable: paddle.to_tensor warns on read-only arrays.
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header_size).reshape(dims)


def read_mnist_split(image_path, label_path):
    """Reads one split (train or test) of MNIST or Fashion-MNIST.

    Args:
        image_path: The IDX image file, e.g. ``train-images-idx3-ubyte.gz``.
        label_path: The IDX label file, e.g. ``train-labels-idx1-ubyte.gz``.

    Returns:
        ``(images, labels)``: ``uint8`` images of shape ``[N, 1, H, W]``
        (channel-first, as Paddle's vision models expect) and ``int64``
        labels of shape ``[N]`` with values in ``0..9``.

    Raises:
        DataFileError: Either file is unreadable or malformed (see
            :func:`read_idx`), the two are swapped or of the wrong kind, their
            counts differ, or a label is outside ``0..9``.
    """
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim == _IDX_LABELS_NDIM and labels.ndim == _IDX_IMAGES_NDIM:
        raise _error(image_path, f"holds labels and {os.fspath(label_path)} holds images: "
                                 "the image and label files are swapped",
                     "pass the images file first and the labels file second")
    if images.ndim != _IDX_IMAGES_NDIM:
        raise _error(image_path, "holds labels (IDX 1-D), but an image file (IDX 3-D) was expected",
                     "point to the *-images-idx3-ubyte file")
    if labels.ndim != _IDX_LABELS_NDIM:
        raise _error(label_path, "holds images (IDX 3-D), but a label file (IDX 1-D) was expected",
                     "point to the *-labels-idx1-ubyte file")
    if len(images) != len(labels):
        raise _error(label_path, f"holds {len(labels)} labels but {os.fspath(image_path)} "
                                 f"holds {len(images)} images: the files are from different splits "
                                 "or one is damaged",
                     "replace both with an intact matching pair")
    if labels.size and labels.max() >= _MNIST_NUM_CLASSES:
        bad = int(np.argmax(labels >= _MNIST_NUM_CLASSES))
        raise _error(label_path, f"label {int(labels[bad])} at index {bad} is outside 0..9")
    return images[:, np.newaxis], labels.astype(np.int64)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays, lists, dicts and scalars.

    A downloaded archive is untrusted input, and a plain pickle may run any
    code; the CIFAR batches need nothing beyond these few numpy builders.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, "latin1").
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_layout(num_classes, mode):
    """Returns (batch members, meta member, label key, names key) for one archive."""
    if num_classes == 10:
        root = "cifar-10-batches-py/"
        batches = [f"{root}data_batch_{i}" for i in range(1, 6)] if mode == "train" else [f"{root}test_batch"]
        return batches, f"{root}batches.meta", b"labels", b"label_names"
    root = "cifar-100-python/"
    return [root + mode], f"{root}meta", b"fine_labels", b"fine_label_names"


def _open_tar(path, gz):
    try:
        return tarfile.open(fileobj=gz, mode="r:")
    except EOFError as exc:
        raise _error(path, "archive is truncated (the download was probably cut short)") from exc
    except tarfile.ReadError as exc:
        # tarfile reports a gzip failure inside the first header as a ReadError too.
        if str(exc).startswith("zlib error"):
            raise _error(path, f"archive is corrupt ({exc})") from exc
        raise _error(path, f"is gzip data but not a tar archive ({exc})") from exc


def _read_members(path, names, optional=()):
    """Reads the named members of a tar.gz archive in one sequential pass.

    One pass matters: random access into a tar.gz re-decompresses from the
    start for every backward seek. The gzip stream is then read to its end,
    because only there does gzip check its CRC; without that a flipped bit in
    the pixels would go unnoticed. A member of ``names`` that is missing is
    an error; one of ``optional`` is simply absent from the result.
    """
    wanted = set(names) | set(optional)
    found = {}
    try:
        with open(path, "rb") as raw:
            if raw.read(2) != _GZIP_MAGIC:
                raise _error(path, "is not gzip-compressed, so it is not a tar.gz archive")
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as gz, _open_tar(path, gz) as tar:
                for member in tar:
                    name = member.name[2:] if member.name.startswith("./") else member.name
                    if name in wanted and member.isfile():
                        found[name] = tar.extractfile(member).read()
                while gz.read(1 << 20):
                    pass
    except EOFError as exc:
        raise _error(path, "archive is truncated (the download was probably cut short)") from exc
    except (tarfile.TarError, OSError, zlib.error) as exc:
        raise _error(path, f"archive is corrupt ({exc})") from exc
    for name in names:
        if name not in found:
            raise _error(path, f"archive has no member '{name}' (is it the right CIFAR archive, "
                               "cifar-10-python.tar.gz or cifar-100-python.tar.gz?)")
    return found


def _unpickle(path, member, raw):
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - pickle raises nearly anything on bad input
        raise _error(path, f"member '{member}' is not a readable pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise _error(path, f"member '{member}' holds a {type(obj).__name__}, expected a dict")
    return obj


def _batch_arrays(path, member, batch, label_key, num_classes):
    for key in (b"data", label_key):
        if key not in batch:
            keys = ", ".join(repr(k) for k in batch)
            raise _error(path, f"member '{member}' has no key {key!r} (it has {keys})")
    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != _CIFAR_ROW or data.dtype != np.uint8:
        raise _error(path, f"member '{member}' has data of shape {data.shape} and dtype {data.dtype}, "
                           f"expected uint8 of shape (N, {_CIFAR_ROW})")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _error(path, f"member '{member}' has non-integer labels ({exc})") from exc
    if labels.shape != (len(data),):
        raise _error(path, f"member '{member}' has {labels.size} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.argmax((labels < 0) | (labels >= num_classes)))
        raise _error(path, f"member '{member}' has label {int(labels[bad])} at index {bad}, "
                           f"outside 0..{num_classes - 1}")
    return data, labels


def _class_names(path, member, meta, names_key, num_classes):
    names = meta.get(names_key)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        count = len(names) if isinstance(names, (list, tuple)) else "no"
        raise _error(path, f"member '{member}' has {count} {names_key.decode()} entries, "
                           f"expected {num_classes}")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    except UnicodeDecodeError as exc:
        raise _error(path, f"member '{member}' has a class name that is not UTF-8 ({exc})") from exc


def _published_class_names(path, member, num_classes):
    """The class names published with the dataset, for an archive packed without its ``member`` of names.

    paddle.vision's reader needs only the data members, and subsets are
    packed that way; the names are then the dataset's own, said once per archive.
    """
    key = os.path.realpath(path)
    if key not in _WARNED_NO_META:
        _WARNED_NO_META.add(key)
        log.warning("%s: archive has no member '%s'; using the class names published with CIFAR-%d",
                    os.fspath(path), member, num_classes)
    return list(CIFAR10_CLASSES if num_classes == 10 else CIFAR100_CLASSES)


def read_cifar(path, num_classes, mode):
    """Reads one split of CIFAR-10 or CIFAR-100 from its python-version archive.

    Args:
        path: ``cifar-10-python.tar.gz`` (when ``num_classes`` is 10) or
            ``cifar-100-python.tar.gz`` (when it is 100), as published at
            https://www.cs.toronto.edu/~kriz/cifar.html.
        num_classes: 10 or 100. CIFAR-100 is read with its 100 fine labels.
        mode: ``'train'`` (50000 images) or ``'test'`` (10000 images).

    Returns:
        ``(images, labels, class_names)``: ``uint8`` images of shape
        ``[N, 3, 32, 32]`` (channel-first), ``int64`` labels of shape ``[N]``
        in ``0..num_classes-1``, and the class names as a list of ``str``:
        those of the archive's ``batches.meta`` (CIFAR-10) or ``meta``
        (CIFAR-100) member, or the published ones, with a warning, when the
        archive has no such member.

    Raises:
        UsageError: ``num_classes`` or ``mode`` has a value not listed above.
        DataFileError: The archive is missing, truncated or not a tar archive,
            lacks a data member, or a batch has missing keys, a wrong shape or
            labels out of range.
    """
    check_choice("num_classes", num_classes, (10, 100))
    check_choice("mode", mode, ("train", "test"))
    _check_file(path)
    batches, meta_member, label_key, names_key = _cifar_layout(num_classes, mode)
    raw = _read_members(path, batches, optional=[meta_member])

    images, labels = [], []
    for member in batches:
        batch = _unpickle(path, member, raw[member])
        data, batch_labels = _batch_arrays(path, member, batch, label_key, num_classes)
        images.append(data)
        labels.append(batch_labels)
    if meta_member in raw:
        meta = _unpickle(path, meta_member, raw[meta_member])
        class_names = _class_names(path, meta_member, meta, names_key, num_classes)
    else:
        class_names = _published_class_names(path, meta_member, num_classes)
    # The rows are stored channel-planar (1024 R, then G, then B), so a plain reshape is CHW.
    images = np.concatenate(images).reshape(-1, 3, 32, 32)
    return images, np.concatenate(labels), class_names
