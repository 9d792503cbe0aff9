"""label-issues: confident learning on probabilities with a known answer, then flipped labels found by real cross-fitting."""

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hapi_runner.cli.app import main
from hapi_runner.datacheck.confident import find_label_issues, thresholds_of
from hapi_runner.datacheck.crossfit import stratified_folds
from hapi_runner.datacheck.label_issues import read_decisions
from hapi_runner.errors import DataFileError, UsageError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tools.report_screenshot import find_browser, screenshot  # noqa: E402

CLASSES = ("blob", "horiz", "vert")


def noisy_probabilities(n=600, classes=4, flip=0.1, seed=0):
    """Given labels with ``flip`` of them changed, and probabilities that favour the true class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, n)
    given = true.copy()
    flipped = rng.random(n) < flip
    given[flipped] = (true[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), true] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return true, given, flipped, probs


def test_a_confidently_other_example_is_flagged_with_its_class():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    assert np.allclose(thresholds_of(labels, probs), [(0.9 + 0.8 + 0.1) / 3, (0.8 + 0.7 + 0.9) / 3])
    for method in ("both", "cj", "noise-rate"):
        issues = find_label_issues(labels, probs, method)
        assert issues.indices.tolist() == [2] and issues.suggested.tolist() == [1]
    issues = find_label_issues(labels, probs)
    assert issues.confident_joint.tolist() == [[2, 1], [0, 2]]  # 0.3, 0.7 reaches neither threshold
    assert np.isclose(issues.noise_matrix.sum(), 1.0) and np.isclose(issues.noise_matrix[0, 1], 1 / 6)


@pytest.mark.parametrize("method, precision, recall", [("both", 0.85, 0.6), ("cj", 0.85, 0.6), ("noise-rate", 0.7, 0.75)])
def test_flipped_labels_are_found_and_ranked_first(method, precision, recall):
    true, given, flipped, probs = noisy_probabilities()
    issues = find_label_issues(given, probs, method)
    hits = flipped[issues.indices]
    assert hits.mean() >= precision and hits.sum() / flipped.sum() >= recall
    assert (issues.suggested[hits] == true[issues.indices][hits]).mean() > 0.8
    assert np.all(np.diff(issues.self_confidence[issues.indices]) >= 0)  # most suspicious first


@pytest.mark.parametrize("labels, probs, method, match", [
    ([0, 1], np.full((3, 2), 0.5), "both", "do not match"),
    ([0, 2], np.full((2, 2), 0.5), "both", "labels must lie"),
    ([0, 1], np.full((2, 2), 0.5), "prune", "method"),
])
def test_bad_inputs_are_one_line(labels, probs, method, match):
    with pytest.raises(UsageError, match=match):
        find_label_issues(labels, probs, method)


def test_folds_deal_every_class_evenly_and_repeat_with_the_seed():
    labels = np.repeat([0, 1, 2], [9, 6, 4])
    folds = stratified_folds(labels, 3, seed=5)
    for cls in range(3):
        counts = np.bincount(folds[labels == cls], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(folds, stratified_folds(labels, 3, seed=5))
    with pytest.raises(UsageError, match="folds"):
        stratified_folds(labels, 1)


def stripes(kind, rng):
    image = rng.normal(60, 20, (28, 28))
    if kind == "horiz":
        image[::4, :] += 150
    elif kind == "vert":
        image[:, ::4] += 150
    else:
        image[8:20, 8:20] += 150
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "L")


@pytest.fixture
def flipped_tree(tmp_path):
    """30 images per class, 3 of each filed under the next class; returns (folder, {flipped path: true class})."""
    rng = np.random.default_rng(0)
    flipped = {}
    for c, kind in enumerate(CLASSES):
        for k in range(30):
            given = CLASSES[(c + 1) % 3] if k < 3 else kind
            path = tmp_path / "data" / "train" / given / f"{kind}_{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            stripes(kind, rng).save(path)
            if k < 3:
                flipped[str(path)] = kind
    return tmp_path / "data", flipped


def tree_digest(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_flipped_files_are_found_by_cross_fitting_and_applied_without_touching_the_images(flipped_tree, tmp_path, capsys):
    data, flipped = flipped_tree
    before = tree_digest(data)
    out = tmp_path / "issues"
    assert main(["label-issues", str(data), "--model", "lenet", "--channels", "1", "--image-size", "28", "--epochs", "3",
                 "--batch-size", "16", "--threads", "1", "--val-split", "0.2", "--folds", "3", "--output", str(out)]) == 0
    assert "suspect label(s)" in capsys.readouterr().out
    with open(out / "label_issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    found = {r["path"]: r["suggested_label"] for r in rows}
    assert set(found) <= set(flipped) and len(found) >= 6  # every suspect was flipped, and most flips were caught
    assert all(flipped[p] == s for p, s in found.items())
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        row["action"] = "relabel"
    rows[0]["action"] = "drop"
    with open(out / "label_issues.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["label-issues", str(data), "--apply", str(out / "label_issues.csv")]) == 0
    with open(out / "train_list.csv", newline="") as fh:
        listed = {str(data / r["path"]): r["label"] for r in csv.DictReader(fh)}
    assert len(listed) == 90 - 1 and rows[0]["path"] not in listed
    assert all(listed[r["path"]] == flipped[r["path"]] for r in rows[1:])
    assert tree_digest(data) == before  # nothing moved, renamed or rewritten
    if find_browser() is not None:
        with Image.open(screenshot(str(out / "label_issues.html"), str(tmp_path / "shot.png"), 1000, 1200)) as shot:
            pixels = np.asarray(shot.convert("RGB"), dtype=np.float64)
        assert pixels.std() > 20 and (pixels < 240).any(axis=2).mean() > 0.03


@pytest.mark.parametrize("cells, error, match", [
    ("a.png,blob,maybe", DataFileError, "action 'maybe' is not one of keep, relabel, drop"),
    ("a.png,cat,relabel", DataFileError, "class 'cat' is not a class"),
])
def test_an_edited_csv_with_a_bad_row_is_named_by_line(tmp_path, cells, error, match):
    path = tmp_path / "edited.csv"
    path.write_text("path,suggested_label,action\nb.png,vert,keep\n" + cells + "\n")
    with pytest.raises(error, match=f"{path} line 3: {match}"):
        read_decisions(str(path), CLASSES)
    with pytest.raises(UsageError, match="does not exist"):
        read_decisions(str(tmp_path / "none.csv"), CLASSES)


TINY_NET = """
import paddle.nn as nn


class Tiny(nn.Layer):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2D(in_channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2D(2),
                                  nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.body(x)
"""


def test_a_built_in_dataset_and_a_network_from_a_file_work_too(tmp_path, capsys):
    (tmp_path / "tiny.py").write_text(TINY_NET)
    out = tmp_path / "issues"
    assert main(["label-issues", "--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "64",
                 "--model", f"{tmp_path / 'tiny.py'}:Tiny", "--epochs", "1", "--batch-size", "16", "--threads", "1",
                 "--folds", "2", "--output", str(out), "--json"]) == 0
    printed = capsys.readouterr().out
    written = json.loads(printed[printed.index("\n{") + 1:])  # after one progress line per fold
    with open(out / "label_issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["path"].startswith(f"{r['split']}[") for r in rows)  # built-in images are named by split and index
    assert written["suspects"] == len(rows) and written["train_images"] == 64
    assert main(["label-issues", "--dataset", "synthetic", "--apply", str(out / "label_issues.csv")]) == 2
    assert "folder dataset" in capsys.readouterr().err
