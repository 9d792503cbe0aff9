"""Files whose bytes are identical in two lists: a cheap leakage check training can afford on every start.

Only files of a size found in both lists are read and hashed, so a dataset
without such copies costs one ``stat`` per file (the image cache's key has
already made those). It finds byte-identical copies only; ``hapi-runner
check-data`` finds copies with the same pixels and near duplicates as well.
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Sequence, Tuple

_BLOCK = 1 << 20


def _sizes(paths: Sequence[str]) -> Dict[str, int]:
    sizes = {}
    for path in paths:
        try:
            sizes[path] = os.path.getsize(path)
        except OSError:  # an unreadable file is reported by the decoder, with its reason
            continue
    return sizes


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def identical_across(first: Sequence[str], second: Sequence[str]) -> List[Tuple[str, str]]:
    """``(path in first, path in second)`` for every pair of byte-identical files, one pair per file of ``second``.

    Args:
        first: e.g. the training files.
        second: e.g. the validation files.
    """
    first_sizes, second_sizes = _sizes(first), _sizes(second)
    shared = set(first_sizes.values()) & set(second_sizes.values())
    by_digest: Dict[str, str] = {}
    for path, size in first_sizes.items():
        if size in shared:
            try:
                by_digest.setdefault(_digest(path), path)
            except OSError:
                continue
    pairs = []
    for path, size in second_sizes.items():
        if size not in shared:
            continue
        try:
            match = by_digest.get(_digest(path))
        except OSError:
            continue
        if match is not None:  # the very same file listed in both counts too
            pairs.append((match, path))
    return pairs


def leakage_note(train_paths: Sequence[str], val_paths: Sequence[str]) -> List[str]:
    """One line for the user when validation holds copies of training files, else nothing."""
    pairs = identical_across(train_paths, val_paths)
    if not pairs:
        return []
    return [f"{len(pairs)} validation file(s) are byte-identical copies of training files (the first: {pairs[0][1]}); "
            f"their accuracy is not a held-out figure: run 'hapi-runner check-data' on the dataset to see every "
            f"duplicate and near duplicate"]
