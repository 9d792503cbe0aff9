"""The findings of a data check as one JSON-ready dict: counts, sizes, unreadable files, duplicates.

Nothing here is an error: a dataset with duplicates or a missing class is
still a dataset; the page and the summary say what was found and what it
means for training.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..datasets.image_decode import resized_shape
from .hashes import exact_groups, exact_key, grey_thumbnail, near_pairs, phash_bits
from .inventory import MODE_NAMES, Entry, Inventory

SPLITS = ("train", "val")
# The kinds of duplicate pair, the most harmful first: a pair that crosses splits is leakage whatever its labels.
KINDS = ("across_splits", "across_classes", "within_class")
KIND_TITLES = {"across_splits": "across train and validation (leakage)", "across_classes": "across classes (one image, two labels)",
               "within_class": "within a class"}


def class_counts(inventory: Inventory) -> Dict[str, Dict[str, int]]:
    """``{split: {class name: readable images}}`` for the splits that have images."""
    counts: Dict[str, Dict[str, int]] = {}
    for split in SPLITS:
        labels = [e.label for e in inventory.entries if e.split == split and e.error is None]
        if labels:
            found = np.bincount(labels, minlength=len(inventory.class_names))
            counts[split] = {name: int(n) for name, n in zip(inventory.class_names, found)}
    return counts


def balance(counts: Dict[str, Dict[str, int]]) -> Dict[str, Any]:
    """Classes present in one split only, and largest/smallest per split."""
    present = {split: {name for name, n in per.items() if n} for split, per in counts.items()}
    only = {}
    if len(present) == 2:
        only = {split: sorted(present[split] - present[other]) for split, other in (("train", "val"), ("val", "train"))}
    imbalance = {}
    for split, per in counts.items():
        largest = max(per, key=per.get)
        smallest = min(per, key=per.get)
        ratio = per[largest] / per[smallest] if per[smallest] else None
        imbalance[split] = {"largest": largest, "largest_count": per[largest], "smallest": smallest,
                            "smallest_count": per[smallest], "ratio": ratio}
    return {"only_in": only, "imbalance": imbalance}


def _spread(values: Sequence[float]) -> Dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"min": float(array.min()), "median": float(np.median(array)), "max": float(array.max())}


def image_facts(entries: List[Entry], image_size: int, side: int) -> Dict[str, Any]:
    """Sizes, aspect ratios, modes and formats of the readable files, and what ``--image-size`` makes of them."""
    good = [e for e in entries if e.error is None]
    if not good:
        return {}
    shorts = [min(e.width, e.height) for e in good]
    scaled = Counter(resized_shape(e.width, e.height, side) for e in good).most_common(1)[0][0]
    return {
        "width": _spread([e.width for e in good]), "height": _spread([e.height for e in good]),
        "aspect_ratio": _spread([e.width / e.height for e in good]),
        "sizes": [[f"{w}x{h}", n] for (w, h), n in Counter((e.width, e.height) for e in good).most_common(10)],
        "distinct_sizes": len({(e.width, e.height) for e in good}),
        "modes": {m if MODE_NAMES.get(m, m) == m else f"{m} ({MODE_NAMES[m]})": n for m, n in Counter(e.mode for e in good).most_common()},
        "formats": dict(Counter(e.fmt for e in good).most_common()),
        "image_size": image_size, "short_side": side, "typical_scaled": f"{scaled[0]}x{scaled[1]}",
        "upscaled": int(sum(s < side for s in shorts)), "downscaled": int(sum(s > side for s in shorts)),
    }


def _kind(a: Entry, b: Entry) -> str:
    if a.split != b.split:
        return "across_splits"
    return "across_classes" if a.label != b.label else "within_class"


def hash_all(entries: List[Entry]) -> Tuple[List[int], List[str], np.ndarray, np.ndarray]:
    """``(indices of readable entries, exact keys, pHash bits, thumbnails)``, from the decoded images."""
    readable = [i for i, e in enumerate(entries) if e.error is None]
    keys, thumbs = [], []
    for i in readable:
        array = entries[i].store[entries[i].row]
        keys.append(exact_key(array, entries[i].width, entries[i].height))
        thumbs.append(grey_thumbnail(array))
    thumbnails = np.stack(thumbs) if thumbs else np.zeros((0, 32, 32), np.float32)
    return readable, keys, phash_bits(thumbnails), thumbnails


def duplicate_pairs(entries: List[Entry], threshold: int) -> List[Dict[str, Any]]:
    """Every exact pair (each copy with the first of its group) and near pair, each with its kind."""
    readable, keys, bits, thumbnails = hash_all(entries)
    pairs = []
    for group in exact_groups(keys):
        for other in group[1:]:
            pairs.append((readable[group[0]], readable[other], "exact", 0, 1.0))
    for i, j, distance, corr in near_pairs(bits, thumbnails, threshold):
        if keys[i] != keys[j]:
            pairs.append((readable[i], readable[j], "near", distance, corr))
    out = []
    for a, b, how, distance, corr in pairs:
        first, second = sorted((a, b), key=lambda k: (entries[k].split != "train", k))  # training's copy first
        out.append({"a": first, "b": second, "how": how, "bits": distance, "correlation": corr,
                    "kind": _kind(entries[first], entries[second])})
    order = {kind: n for n, kind in enumerate(KINDS)}
    return sorted(out, key=lambda p: (order[p["kind"]], p["how"] != "exact", p["bits"], p["a"], p["b"]))


def summarize(inventory: Inventory, pairs: List[Dict[str, Any]], image_size: int, side: int) -> Dict[str, Any]:
    """The JSON summary: what was read, counts, balance, image facts, unreadable files and duplicate pairs."""
    entries = inventory.entries
    counts = class_counts(inventory)

    def pair_row(p):
        return {"kind": p["kind"], "how": p["how"], "bits": p["bits"], "correlation": p["correlation"],
                "first": entries[p["a"]].path, "first_split": entries[p["a"]].split,
                "first_class": inventory.class_names[entries[p["a"]].label],
                "second": entries[p["b"]].path, "second_split": entries[p["b"]].split,
                "second_class": inventory.class_names[entries[p["b"]].label]}

    return {
        "images": len(entries), "readable": sum(e.error is None for e in entries),
        "classes": inventory.class_names, "validation": inventory.validation,
        "class_counts": counts, **balance(counts), "image_facts": image_facts(entries, image_size, side),
        "unreadable": [{"path": e.path, "split": e.split, "reason": e.error} for e in entries if e.error],
        "duplicates": {kind: {how: sum(p["kind"] == kind and p["how"] == how for p in pairs) for how in ("exact", "near")}
                       for kind in KINDS},
        "duplicate_pairs": [pair_row(p) for p in pairs],
    }
