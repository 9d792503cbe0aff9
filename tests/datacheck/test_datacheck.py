"""check-data: planted duplicates, leakage, a conflicting label, an unreadable file and a one-split class, found and nothing else."""

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from folder_images import class_tree, fashion, truncated_png
from hapi_runner.cli.app import main
from hapi_runner.datacheck.check import CheckOptions, check_data
from hapi_runner.datacheck.hashes import exact_key, grey_thumbnail, hamming, near_pairs, phash_bits
from hapi_runner.datasets.folder import load_folder_splits
from hapi_runner.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tools.report_screenshot import find_browser, screenshot  # noqa: E402


def near_copy(source: Path, target: Path, scale: float = 1.5, quality: int = 80) -> Path:
    """A resized, JPEG-recompressed copy: the same picture, other pixels."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        copy = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy.save(target, "JPEG", quality=quality)
    return target


@pytest.fixture
def planted(tmp_path):
    """A 3-class tree (train: 6 real images each, val: 2 of bag and coat) and what was planted in it."""
    data = tmp_path / "data"
    class_tree(data, 6, junk=False)
    class_tree(data, 2, classes=("bag", "coat"), split="val", offset=200, junk=False)
    train = data / "train"
    plants = {
        ("exact", "within_class"): (train / "bag/img0.png", shutil.copy(train / "bag/img0.png", train / "bag/again.png")),
        ("exact", "across_classes"): (train / "coat/img2.png", shutil.copy(train / "coat/img2.png", train / "dress/coat_copy.png")),
        ("exact", "across_splits"): (train / "dress/img4.webp", shutil.copy(train / "dress/img4.webp", data / "val/coat/leak.webp")),
        ("near", "across_splits"): (train / "bag/img0.png", near_copy(train / "bag/img0.png", data / "val/bag/resized.jpg")),
        ("near", "within_class"): (train / "dress/img2.JPEG", near_copy(train / "dress/img2.JPEG", train / "dress/sub9/larger.jpg", 2.0, 90)),
    }
    broken = truncated_png(train / "coat/broken.png", fashion(1, 300)[0][0])
    return data, {k: (str(Path(a)), str(Path(b))) for k, (a, b) in plants.items()}, str(broken)


def test_finds_what_was_planted_and_nothing_else(planted, tmp_path):
    data, plants, broken = planted
    summary = check_data(str(data), CheckOptions(image_size=28), output=str(tmp_path / "page.html"))
    found = {(p["how"], p["kind"], frozenset((p["first"], p["second"]))) for p in summary["duplicate_pairs"]}
    # bag/img0 has an exact copy in its class and a near copy in val: the copy and the near copy are near each other too.
    expected = {(how, kind, frozenset(pair)) for (how, kind), pair in plants.items()}
    expected.add(("near", "across_splits", frozenset((str(data / "train/bag/again.png"), str(data / "val/bag/resized.jpg")))))
    assert found == expected
    assert summary["duplicates"]["across_splits"] == {"exact": 1, "near": 2}
    assert summary["unreadable"] == [{"path": broken, "split": "train", "reason": "OSError: image file is truncated"}]
    assert summary["only_in"] == {"train": ["dress"], "val": []}
    assert summary["class_counts"]["train"] == {"bag": 7, "coat": 6, "dress": 8}
    assert summary["imbalance"]["train"]["ratio"] == pytest.approx(8 / 6)
    facts = summary["image_facts"]
    assert facts["short_side"] == 32 and facts["formats"]["JPEG"] >= 2 and "P (palette)" in facts["modes"]


def test_a_validation_split_is_taken_as_training_takes_it(tmp_path):
    data = tmp_path / "data"
    class_tree(data, 10, classes=("a", "b"), junk=False)
    summary = check_data(str(data), CheckOptions(image_size=28, val_split=0.2), output=None)
    splits = load_folder_splits(str(data), image_size=28, val_split=0.2)
    assert summary["class_counts"]["val"] == {"a": 2, "b": 2}
    assert "stratified 20%" in summary["validation"]
    assert summary["readable"] == len(splits.train) + len(splits.val)


def test_the_cli_exits_0_with_findings_and_2_with_one_line_for_a_folder_it_cannot_read(planted, tmp_path, capsys):
    data, _, _ = planted
    page = tmp_path / "check.html"
    assert main(["check-data", str(data), "--image-size", "28", "--output", str(page), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["page"] == str(page) and page.stat().st_size > 10_000
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    for bad in ([str(tmp_path / "missing")], [str(tmp_path / "empty")], [str(data), "--channels", "2"]):
        assert main(["check-data", *bad, "--output", str(tmp_path / "x.html")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hapi-runner: error:") and err.count("\n") == 1


def test_training_points_at_check_data_when_validation_copies_training(planted):
    data, plants, _ = planted
    splits = load_folder_splits(str(data), image_size=28, skip_bad_images=True)
    line = [n for n in splits.notes if "check-data" in n]
    assert len(line) == 1 and line[0].startswith("1 validation file(s)") and plants[("exact", "across_splits")][1] in line[0]
    (data / "val/coat/leak.webp").unlink()
    assert not [n for n in load_folder_splits(str(data), image_size=28, skip_bad_images=True).notes if "check-data" in n]


def _png_bytes(array, fmt="PNG", **kw):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **kw)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("L"))


def test_hashes_separate_copies_from_other_images():
    grey, _ = fashion(40, 500)
    copies = [np.asarray(Image.fromarray(_png_bytes(g, "JPEG", quality=75)).resize((28, 28))) for g in grey]
    bits = phash_bits(np.stack([grey_thumbnail(a[..., None]) for a in [*grey, *copies]]))
    distance = hamming(bits, bits)
    assert np.array_equal(distance, (bits[:, None, :] != bits[None, :, :]).sum(-1))  # the matrix product counts bits
    thumbs = np.stack([grey_thumbnail(a[..., None]) for a in [*grey, *copies]])
    pairs = {(i, j) for i, j, _, _ in near_pairs(bits, thumbs)}
    assert {(k, k + 40) for k in range(40)} <= pairs
    assert all(j == i + 40 for i, j in pairs)
    lossless = _png_bytes(grey[0], "BMP")
    assert exact_key(lossless[..., None], 28, 28) == exact_key(grey[0][..., None], 28, 28)
    assert exact_key(copies[0][..., None], 28, 28) != exact_key(grey[0][..., None], 28, 28)


@pytest.mark.parametrize("options, match", [(dict(near_threshold=65), "near_threshold"), (dict(channels=2), "channels"),
                                            (dict(val_split=1.5), "val_split")])
def test_bad_options_are_refused(tmp_path, options, match):
    with pytest.raises(UsageError, match=match):
        check_data(str(tmp_path), CheckOptions(**options), output=None)


@pytest.mark.skipif(find_browser() is None, reason="no headless Chromium (apt-get install -y chromium)")
def test_the_page_renders_in_a_real_browser(planted, tmp_path):
    data, _, _ = planted
    page = tmp_path / "page.html"
    check_data(str(data), CheckOptions(image_size=28), output=str(page))
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    with Image.open(screenshot(str(page), str(tmp_path / "shot.png"), 1200, 2400)) as shot:
        pixels = np.asarray(shot.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20 and 0.03 < (pixels < 240).any(axis=2).mean() < 0.9
    blue_bars = (np.abs(pixels - [0x4A, 0x78, 0xB5]).sum(axis=2) < 30).sum()
    assert blue_bars > 500  # the class histogram's bars were drawn


def test_a_paddleclas_list_is_read_as_training_reads_it_and_a_file_listed_twice_is_a_duplicate(tmp_path):
    data = tmp_path / "data"
    paths = class_tree(data, 4, classes=("a", "b"), nested=False, junk=False)
    lines = [f"{Path(p).relative_to(data)} {0 if '/a/' in str(p) else 1}" for p in paths]
    (data / "train.txt").write_text("\n".join(lines + [lines[0]]) + "\n")
    (data / "val.txt").write_text(lines[-1] + "\n")
    summary = check_data(str(data), CheckOptions(image_size=28, train_list=str(data / "train.txt"),
                                                  val_list=str(data / "val.txt")), output=None)
    assert summary["class_counts"] == {"train": {"0": 5, "1": 4}, "val": {"0": 0, "1": 1}}
    kinds = sorted((p["kind"], p["how"]) for p in summary["duplicate_pairs"])
    assert kinds == [("across_splits", "exact"), ("within_class", "exact")]
    assert summary["only_in"] == {"train": ["0"], "val": []}
