"""``check-data``: read a folder dataset as training would, and write what was found to data_check.html (and JSON).

A dataset that could be read is a success whatever was found in it; only a
folder or list that cannot be read as a dataset at all is an error.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..config.checks import check_choice, check_int, check_number
from ..datasets.folder_transform import CROP_PCT, resize_short_for
from ..runfolder.atomic import atomic_write_text
from .findings import duplicate_pairs, summarize
from .hashes import NEAR_THRESHOLD
from .inventory import take_inventory
from .names import DATA_CHECK_PAGE
from .page import build_page



@dataclass
class CheckOptions:
    """How to read the dataset (as ``--dataset folder`` reads it) and how close a near duplicate is.

    Attributes:
        train_list, val_list: list files. Default to None (class folders).
        image_size: ``--image-size``. Defaults to 224.
        channels: 1 or 3. Defaults to 3.
        val_split: the stratified fraction held out without a validation set. Defaults to 0.1.
        seed: the seed of that split and of the sample grid. Defaults to 0.
        near_threshold: hash bits a near duplicate may differ in. Defaults to 8.
        num_workers: processes decoding the first pass. Defaults to 0.
        cache_limit: bytes a new image cache may take (0 never caches). Defaults to None (free disk less 10%).
    """

    train_list: Optional[str] = None
    val_list: Optional[str] = None
    image_size: int = 224
    channels: int = 3
    val_split: float = 0.1
    seed: int = 0
    near_threshold: int = NEAR_THRESHOLD
    num_workers: int = 0
    cache_limit: Optional[int] = None

    def check(self) -> None:
        check_int("image_size", self.image_size, minimum=8)
        check_choice("channels", self.channels, (1, 3))
        check_number("val_split", self.val_split, 0.0, 1.0, low_open=True, high_open=True)
        check_int("near_threshold", self.near_threshold, minimum=0, maximum=64)
        check_int("num_workers", self.num_workers, minimum=0)


def check_data(data_dir: Optional[str], options: Optional[CheckOptions] = None, output: Optional[str] = DATA_CHECK_PAGE,
               json_output: Optional[str] = None) -> Dict[str, Any]:
    """Reads the dataset, finds what is worth knowing, writes the page (and the JSON summary); returns the summary.

    Args:
        data_dir: the folder (``train/<class>/...``), or the root of the list files' paths.
        options: see :class:`CheckOptions`. Defaults to its defaults.
        output: the HTML file. Defaults to ``data_check.html`` in the working folder; None writes none.
        json_output: the JSON file. Defaults to None (none).

    Raises:
        UsageError: a bad option, or a folder or list that cannot be read as a dataset (one line).
    """
    options = options or CheckOptions()
    options.check()
    started = time.perf_counter()
    side = resize_short_for(options.image_size, CROP_PCT)
    decode = {"num_workers": options.num_workers, "cache_limit": options.cache_limit}
    inventory = take_inventory(data_dir, train_list=options.train_list, val_list=options.val_list, channels=options.channels,
                               side=side, val_split=options.val_split, seed=options.seed, decode=decode)
    pairs = duplicate_pairs(inventory.entries, options.near_threshold)
    summary = summarize(inventory, pairs, options.image_size, side)
    summary["notes"] = inventory.notes
    if output:
        atomic_write_text(output, build_page(inventory, pairs, summary, title_dir=data_dir or options.train_list or "",
                                             seed=options.seed))
        summary["page"] = os.path.abspath(output)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if json_output:
        atomic_write_text(json_output, json.dumps(summary, indent=1) + "\n")
    return summary


def headline(summary: Dict[str, Any]) -> str:
    """One line: what was read and the findings that matter most."""
    dup = summary["duplicates"]
    leak = dup["across_splits"]["exact"] + dup["across_splits"]["near"]
    conflicts = dup["across_classes"]["exact"] + dup["across_classes"]["near"]
    within = dup["within_class"]["exact"] + dup["within_class"]["near"]
    where = f"; page: {summary['page']}" if summary.get("page") else ""
    return (f"{summary['images']} images in {len(summary['classes'])} classes, {len(summary['unreadable'])} unreadable; "
            f"duplicate pairs: {leak} across train/val, {conflicts} across classes, {within} within a class "
            f"({summary['seconds']:.1f}s){where}")
