"""``data_check.html``: the findings of a data check as one self-contained page (pictures inline, no script).

Built from the report's blocks (:mod:`hapi_runner.report.page`), so it looks
like report.html and escapes every name that comes from the user's folders.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from ..report.figures import thumbnail_png
from ..report.page import document, esc, facts, notes, sample, section, table
from .findings import KIND_TITLES, KINDS
from .inventory import Inventory

SAMPLES_PER_CLASS = 8
PAIRS_SHOWN = 24  # per kind of duplicate; the JSON summary lists them all
THUMB = 96
# Horizontal bars drawn with CSS: no plotting library and nothing to load.
BAR_STYLE = ("<style>.bars td.bar{width:420px} .bars span{display:inline-block;height:12px;background:#4a78b5}"
             " .bars span.val{background:#e39b3a} .pair{display:flex;gap:6px;align-items:flex-start}</style>")
# Long paths in captions break anywhere instead of running under the next tile.
CAPTION_STYLE = "<style>figcaption{overflow-wrap:anywhere}</style>"


def image_png(inventory: Inventory, index: int) -> bytes:
    entry = inventory.entries[index]
    array = np.asarray(entry.store[entry.row])
    return thumbnail_png(array[..., 0] if array.shape[-1] == 1 else array, THUMB)


def _bars(summary: Dict[str, Any]) -> str:
    counts = summary["class_counts"]
    top = max([n for per in counts.values() for n in per.values()] + [1])
    rows = []
    for name in summary["classes"]:
        cells = [f"<td>{esc(name)}</td>"]
        for split in ("train", "val"):
            n = counts.get(split, {}).get(name, 0)
            css = ' class="val"' if split == "val" else ""
            cells.append(f'<td class="num">{n}</td><td class="bar"><span{css} style="width:{round(400 * n / top)}px"></span></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "<tr><th>class</th><th>train</th><th></th><th>validation</th><th></th></tr>"
    return f'<table class="bars" id="class-counts"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _balance_lines(summary: Dict[str, Any]) -> List[str]:
    lines = []
    for split, names in summary["only_in"].items():
        if names:
            lines.append(f"{len(names)} class(es) have {split} images only: {', '.join(names)}")
    for split, item in summary["imbalance"].items():
        ratio = "no images" if item["ratio"] is None else f"{item['ratio']:.1f}x"
        lines.append(f"{split}: largest class {item['largest']} ({item['largest_count']}), smallest {item['smallest']} "
                     f"({item['smallest_count']}): imbalance {ratio}")
    return lines


def _spread(values: Dict[str, float], digits: int = 0) -> str:
    return " / ".join(f"{values[k]:.{digits}f}" for k in ("min", "median", "max"))


def _sizes(summary: Dict[str, Any]) -> str:
    f = summary["image_facts"]
    if not f:
        return "<p>No image could be read.</p>"
    items = [("width (min / median / max)", _spread(f["width"])), ("height", _spread(f["height"])),
             ("aspect ratio w/h", _spread(f["aspect_ratio"], 2)), ("distinct sizes", f["distinct_sizes"]),
             ("modes", ", ".join(f"{k}: {v}" for k, v in f["modes"].items())),
             ("formats", ", ".join(f"{k}: {v}" for k, v in f["formats"].items())),
             (f"--image-size {f['image_size']}", f"short side scaled to {f['short_side']} (typically {f['typical_scaled']}), "
                                                 f"then a {f['image_size']}x{f['image_size']} crop; {f['upscaled']} image(s) "
                                                 f"enlarged, {f['downscaled']} reduced")]
    common = table(["size", "images"], f["sizes"], numeric=[False, True], table_id="sizes")
    return facts(items) + common


def _samples(inventory: Inventory, seed: int) -> str:
    rng = np.random.default_rng(seed)
    blocks = []
    for label, name in enumerate(inventory.class_names):
        members = [i for i, e in enumerate(inventory.entries) if e.label == label and e.error is None and e.split == "train"]
        chosen = sorted(rng.permutation(members)[:SAMPLES_PER_CLASS].tolist()) if members else []
        tiles = "".join(sample(image_png(inventory, i), [f"{inventory.entries[i].width}x{inventory.entries[i].height}"], "")
                        for i in chosen)
        blocks.append(f"<h3>{esc(name)}</h3><div class=\"gallery\" id=\"samples-{label}\">{tiles or 'no readable training image'}</div>")
    return "".join(blocks)


def _pair_tile(inventory: Inventory, pair: Dict[str, Any]) -> str:
    how = "same pixels" if pair["how"] == "exact" else f"near: {pair['bits']} bits, r={pair['correlation']:.3f}"
    parts = []
    for key in ("a", "b"):
        entry = inventory.entries[pair[key]]
        parts.append(sample(image_png(inventory, pair[key]), [f"{entry.split}: {inventory.class_names[entry.label]}",
                                                              f"file: {entry.path}"], "mistake" if pair["kind"] != "within_class" else ""))
    return f'<div class="pair" title="{esc(how)}">{"".join(parts)}<p>{esc(how)}</p></div>'


def _duplicates(inventory: Inventory, pairs: Sequence[Dict[str, Any]], summary: Dict[str, Any]) -> str:
    rows = [[KIND_TITLES[k], summary["duplicates"][k]["exact"], summary["duplicates"][k]["near"]] for k in KINDS]
    body = table(["pairs", "exact (same pixels)", "near (perceptual hash)"], rows, numeric=[False, True, True], table_id="duplicates")
    for kind in KINDS:
        chosen = [p for p in pairs if p["kind"] == kind][:PAIRS_SHOWN]
        if chosen:
            more = sum(p["kind"] == kind for p in pairs) - len(chosen)
            tail = f"<p>{more} more in the --json summary.</p>" if more > 0 else ""
            body += f"<h3>{esc(KIND_TITLES[kind])}</h3><div class=\"gallery\" id=\"pairs-{kind}\">" + \
                "".join(_pair_tile(inventory, p) for p in chosen) + f"</div>{tail}"
    return body


def build_page(inventory: Inventory, pairs: Sequence[Dict[str, Any]], summary: Dict[str, Any], *, title_dir: str, seed: int = 0) -> str:
    """The whole page as text."""
    unreadable = table(["file", "split", "reason"], [[u["path"], u["split"], u["reason"]] for u in summary["unreadable"]],
                       table_id="unreadable") if summary["unreadable"] else "<p>Every file could be read.</p>"
    subtitle = (f"{summary['images']} images, {summary['readable']} readable, {len(summary['classes'])} classes; "
                f"validation: {summary['validation']}")
    sections = [
        BAR_STYLE + CAPTION_STYLE,
        section("Images per class", _bars(summary) + notes(_balance_lines(summary)), "counts"),
        section("Sizes, modes and formats", _sizes(summary), "sizes-section"),
        section("Unreadable files", unreadable, "unreadable-section"),
        section("Duplicates and near duplicates", _duplicates(inventory, pairs, summary), "duplicates-section"),
        section("Samples per class (training)", _samples(inventory, seed), "samples"),
    ]
    return document(f"Data check: {title_dir}", subtitle, sections)

