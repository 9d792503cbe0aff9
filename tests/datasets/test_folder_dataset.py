"""Folder datasets: class folders and file lists of real images, decoding, the image cache, crops and bad data."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from folder_images import class_tree, exif_rotated_jpeg, fashion, pil_image, truncated_png, write_image
from hapi_runner.datasets import load_folder, load_folder_splits, make_loader
from hapi_runner.datasets import image_cache, image_decode
from hapi_runner.datasets.folder_scan import read_file_list, stratified_split
from hapi_runner.datasets.folder_transform import CropTransform
from hapi_runner.errors import DataFileError, UsageError
from hapi_runner.paddle_compat import random_resized_crop_box

CLASSES = ("bag", "coat", "dress")


@pytest.fixture
def tree(tmp_path):
    """train/ (8 per class, nested, junk files) and val/ (3 per class) of real images in mixed formats and modes."""
    root = tmp_path / "data"
    class_tree(root, 8)
    class_tree(root, 3, split="val", offset=100)
    return root


@pytest.mark.smoke
def test_class_folders_map_sorted_names_take_nested_files_and_ignore_junk(tree):
    splits = load_folder_splits(str(tree), image_size=32)
    train = splits.train
    assert train.class_names == list(CLASSES) and len(train) == 24 and len(splits.val) == 9
    for path, label in zip(train.paths, train.labels):
        assert Path(path).relative_to(tree / "train").parts[0] == CLASSES[label]
    assert any("/sub" in p for p in train.paths)
    assert not any(p.endswith((".txt", ".DS_Store")) for p in train.paths + splits.val.paths)
    assert splits.notes[0].startswith(f"folder {tree}: 3 classes, 24 training and 9 validation images;")


def test_without_a_validation_folder_a_stratified_split_is_held_out_and_said(tmp_path):
    class_tree(tmp_path, 10, junk=False)
    splits = load_folder_splits(str(tmp_path), image_size=32, val_split=0.2, seed=3)
    assert np.bincount(splits.val.labels).tolist() == [2, 2, 2] and len(splits.train) == 24
    assert not set(splits.train.paths) & set(splits.val.paths)
    assert "validation: a stratified 20% of" in splits.notes[0] and "seed 3" in splits.notes[0]
    again = load_folder_splits(str(tmp_path), image_size=32, val_split=0.2, seed=3)
    assert again.val.paths == splits.val.paths


def test_stratified_split_shares_the_held_out_part_by_class_size():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    kept, held = stratified_split(labels, 0.1, seed=0)
    assert np.bincount(labels[held]).tolist() == [1, 2, 3] and len(kept) == 54
    assert held.tolist() != stratified_split(labels, 0.1, seed=1)[1].tolist()
    small = np.repeat([0, 1], [1, 9])  # a class of one image keeps it
    kept, held = stratified_split(small, 0.5, seed=0)
    assert small[kept].tolist().count(0) == 1 and np.bincount(small[held], minlength=2).tolist() == [0, 5]
    with pytest.raises(UsageError, match="val_split 0.005 holds out 0 of 60 images"):
        stratified_split(labels, 0.005)


@pytest.mark.parametrize("separator", [" ", "\t", ","])
def test_paddleclas_lists_with_each_separator(tmp_path, separator):
    paths = class_tree(tmp_path, 2, junk=False)
    rel = [p.relative_to(tmp_path) for p in paths]
    (tmp_path / "train.txt").write_text("".join(f"{r}{separator}{i // 2}\n" for i, r in enumerate(rel)) + "\n")
    files = read_file_list(str(tmp_path / "train.txt"), str(tmp_path))
    assert files.paths == [str(p) for p in paths] and files.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert files.class_names == ["0", "1", "2"]


def test_csv_lists_with_class_names_and_a_validation_list(tmp_path):
    grey, _ = fashion(4)
    for k, name in enumerate(["a b.png", "c.png", "d.png", "e.png"]):
        write_image(tmp_path / "img" / name, grey[k], ((28, 28), "L", "png"))
    (tmp_path / "train.csv").write_text("image,class\nimg/a b.png,shirt\nimg/c.png,bag\nimg/d.png,shirt\n")
    (tmp_path / "val.csv").write_text("filename,label\nimg/e.png,bag\n")
    splits = load_folder_splits(str(tmp_path), train_list=str(tmp_path / "train.csv"), val_list=str(tmp_path / "val.csv"),
                                image_size=16)
    assert splits.train.class_names == ["bag", "shirt"] and splits.train.labels.tolist() == [1, 0, 1]
    assert splits.val.labels.tolist() == [0] and splits.val.paths == [str(tmp_path / "img" / "e.png")]


@pytest.mark.parametrize("name, text, match", [
    ("train.txt", "img/a.png 0\nimg/b.png\n", r"train.txt line 2: 'img/b.png' is not 'relative/path label'"),
    ("train.txt", "img/a.png 0\n\nimg/b.png cat\n", r"train.txt line 3: label 'cat' is not a class index"),
    ("train.txt", "img/a.png 0\nimg/b.png 2\n", r"train.txt: class index 1 has no images"),
    ("train.txt", "img/a.png 0\nimg/b.png 0\n", r"every image has the same label \('0'\)"),
    ("train.txt", "img/a.png 0\nimg/nope.png 1\nimg/gone.png 1\n", r"train.txt line 2: image '.*nope.png' does not exist \(1 more"),
    ("train.csv", "path,kind\nimg/a.png,0\n", r"train.csv line 1: no label column in the header"),
    ("train.csv", "path,label\nimg/a.png,0\nimg/b.png\n", r"train.csv line 3: expected 2 fields with a path and a label"),
    ("train.txt", "", r"the list holds no images"),
])
def test_broken_lists_name_the_file_and_line(tmp_path, name, text, match):
    grey, _ = fashion(2)
    for k, image in enumerate(["a.png", "b.png"]):
        write_image(tmp_path / "img" / image, grey[k], ((28, 28), "L", "png"))
    (tmp_path / name).write_text(text)
    with pytest.raises(DataFileError, match=match):
        read_file_list(str(tmp_path / name), str(tmp_path))


def test_a_validation_list_label_training_lacks_is_named(tmp_path):
    grey, _ = fashion(3)
    for k in range(3):
        write_image(tmp_path / f"{k}.png", grey[k], ((28, 28), "L", "png"))
    (tmp_path / "t.txt").write_text("0.png 0\n1.png 1\n")
    (tmp_path / "v.txt").write_text("2.png 5\n")
    with pytest.raises(DataFileError, match=r"v.txt line 1: label 5 is not a training class; training has 2 classes"):
        load_folder_splits(train_list=str(tmp_path / "t.txt"), val_list=str(tmp_path / "v.txt"), image_size=16)


@pytest.mark.parametrize("build, match", [
    (lambda r: (class_tree(r, 2), (r / "train" / "empty").mkdir()), r"train/empty: class folder holds no images"),
    (lambda r: class_tree(r, 2, classes=("only",)), r"only one class folder \('only'\)"),
    (lambda r: (class_tree(r, 2), class_tree(r, 1, classes=("bag", "hat"), split="val")),
     r"val: class folder 'hat' is not a training class"),
    (lambda r: (r / "train").mkdir(parents=True), r"train: no class folders"),
])
def test_layout_problems_are_one_line_each(tmp_path, build, match):
    build(tmp_path)
    with pytest.raises(DataFileError, match=match):
        load_folder_splits(str(tmp_path), image_size=16)


def test_a_folder_without_train_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="has no train/ folder"):
        load_folder_splits(str(tmp_path))
    with pytest.raises(UsageError, match="image_size must be >= 8, got 4"):
        load_folder_splits(str(tmp_path), image_size=4)


def test_bad_images_stop_before_training_or_are_skipped(tree):
    grey, _ = fashion(1)
    first = truncated_png(tree / "train" / "bag" / "broken.png", grey[0])
    (tree / "train" / "coat" / "fake.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataFileError, match=rf"{first}: cannot be read as an image .*; 1 more bad images found"):
        load_folder_splits(str(tree), image_size=16)
    splits = load_folder_splits(str(tree), image_size=16, skip_bad_images=True)
    assert sorted(p for p, _ in splits.bad_images) == sorted([str(first), str(tree / "train" / "coat" / "fake.jpg")])
    assert len(splits.train) == 24 and "skipped 2 unreadable image(s)" in splits.notes[-1]


def test_exif_orientation_is_applied(tmp_path):
    grey, _ = fashion(1)
    upright = np.asarray(pil_image(grey[0], "RGB", (40, 28)))  # 28 rows, 40 columns
    path = exif_rotated_jpeg(tmp_path / "r.jpg", upright)
    assert Image.open(path).size == (28, 40)  # stored sideways
    decoded = image_decode.decode_image(str(path), 3, 28)
    assert decoded.shape == (28, 40, 3)
    assert np.abs(decoded.astype(int) - upright).mean() < 4
    assert image_decode.probe(str(path), 28) == (28, 40)


def test_modes_become_the_requested_channels_and_alpha_is_white(tmp_path):
    grey, _ = fashion(1)
    rgba = pil_image(grey[0], "RGBA")
    rgba.save(tmp_path / "a.png")
    out = image_decode.decode_image(str(tmp_path / "a.png"), 3, 28)
    transparent = np.asarray(rgba)[:, :, 3] == 0
    assert transparent.any() and (out[transparent] == 255).all()
    for mode in ("L", "RGB", "P"):
        pil_image(grey[0], mode).save(tmp_path / f"{mode}.png")
        for channels in (1, 3):
            assert image_decode.decode_image(str(tmp_path / f"{mode}.png"), channels, 28).shape == (28, 28, channels)


def test_big_jpegs_are_drafted_close_to_a_full_decode(tmp_path):
    grey, _ = fashion(1)
    pil_image(grey[0], "RGB", (800, 600)).save(tmp_path / "big.jpg", quality=95)
    drafted = image_decode.decode_image(str(tmp_path / "big.jpg"), 3, 64)
    full = np.asarray(Image.open(tmp_path / "big.jpg").convert("RGB").resize((85, 64), Image.BILINEAR))
    assert drafted.shape == full.shape == (64, 85, 3)
    assert np.abs(drafted.astype(int) - full).mean() < 3


def test_the_cache_is_reused_and_a_changed_file_invalidates_it(tree, decode_calls):
    first = load_folder_splits(str(tree), image_size=16)
    assert len(decode_calls) == 33 and "made" in first.notes[1]
    again = load_folder_splits(str(tree), image_size=16)
    assert len(decode_calls) == 33 and "reused" in again.notes[1] and "reused" in again.notes[2]
    for a, b in zip(first.train.images[:], again.train.images[:]):
        np.testing.assert_array_equal(a, b)
    changed = Path(first.train.paths[0])
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    load_folder_splits(str(tree), image_size=16)
    assert len(decode_calls) == 33 + 24  # train/ again, val/ still cached
    load_folder_splits(str(tree), image_size=20)
    assert len(decode_calls) == 33 + 24 + 33  # another size is another cache


def test_a_half_written_cache_is_never_trusted(tree, monkeypatch, decode_calls):
    paths = load_folder(data_dir=str(tree), image_size=16, val_split=0.5).paths  # noqa: F841 - builds both caches
    root = Path(os.environ["HAPI_RUNNER_CACHE"])
    reference = load_folder_splits(str(tree), image_size=16)
    for folder in root.glob("folder-*"):
        pixels = folder / "pixels.u8"
        pixels.write_bytes(pixels.read_bytes()[:100])  # a cache damaged behind our back
    calls = len(decode_calls)
    rebuilt = load_folder_splits(str(tree), image_size=16)
    assert len(decode_calls) == calls + 33
    for a, b in zip(reference.train.images[:], rebuilt.train.images[:]):
        np.testing.assert_array_equal(a, b)
    # A writer killed just before its rename: its folder is complete, but only a renamed cache is trusted.
    for folder in root.glob("folder-*"):
        folder.rename(root / f".tmp-{folder.name}-999999999")
    load_folder_splits(str(tree), image_size=16)
    assert len(decode_calls) == calls + 66 and not list(root.glob(".tmp-*"))

    def crash(path, channels, side):
        raise KeyboardInterrupt

    for folder in root.glob("folder-*"):
        image_cache.remove_path(str(folder))
    monkeypatch.setattr(image_decode, "decode_image", crash)
    with pytest.raises(KeyboardInterrupt):
        load_folder_splits(str(tree), image_size=16)
    assert list(root.iterdir()) == []  # no cache, and no litter of our own


def test_workers_decode_the_same_cache(tree):
    one = load_folder_splits(str(tree), image_size=16, cache_root=str(tree.parent / "c0"))
    two = load_folder_splits(str(tree), image_size=16, num_workers=2, cache_root=str(tree.parent / "c2"))
    assert len(one.train) == len(two.train) == 24
    caches = [sorted((tree.parent / c).glob("folder-*/pixels.u8")) for c in ("c0", "c2")]
    assert len(caches[0]) == len(caches[1]) == 2  # train/ and val/
    assert [p.read_bytes() for p in caches[0]] == [p.read_bytes() for p in caches[1]]


def test_without_room_for_a_cache_every_epoch_decodes(tree, decode_calls):
    cached = load_folder_splits(str(tree), image_size=16, augment=False)
    calls = len(decode_calls)
    direct = load_folder_splits(str(tree), image_size=16, augment=False, cache_limit=0, cache_root=str(tree.parent / "c"))
    assert "would not fit in 0 B (the cache_limit); decoding every epoch instead" in direct.notes[1]
    assert isinstance(direct.train.images, image_cache.DecodingImages) and len(decode_calls) == calls + 33
    batches = [[np.asarray(x) for x, _ in make_loader(d.train, 8, shuffle=False)] for d in (cached, direct)]
    assert len(decode_calls) == calls + 33 + 24
    for a, b in zip(*batches):
        np.testing.assert_array_equal(a, b)


def test_evaluation_crop_is_pillows_resize_short_and_centre_crop(tmp_path):
    grey, _ = fashion(6)
    for k, (size, mode) in enumerate([((40, 30), "RGB"), ((30, 44), "L"), ((57, 33), "RGB"), ((28, 28), "P"),
                                      ((90, 64), "RGB"), ((33, 50), "RGB")]):
        write_image(tmp_path / "train" / "ab"[k % 2] / f"{k}.png", grey[k], (size, mode, "png"))
    data = load_folder("train", str(tmp_path), image_size=24, augment=False, val_split=0.34)
    crops = data.transform.crops(data.images[:])
    for path, crop in zip(data.paths, crops):
        image = Image.open(path).convert("RGB")
        w, h = image.size
        size = (27, int(27 * h / w)) if w <= h else (int(27 * w / h), 27)
        resized = image.resize(size, Image.BILINEAR)
        top, left = int(round((size[1] - 24) / 2.0)), int(round((size[0] - 24) / 2.0))
        np.testing.assert_array_equal(crop, np.asarray(resized)[top:top + 24, left:left + 24])
    assert data.transform.preprocessing()["resize_short"] == 27 and data.transform.preprocessing()["crop"] == 24


def _bin(top, left, h, w, height, width):
    scale = min(int(h * w / (height * width) / 0.2), 4)
    ratio = min(int((np.log(w / h) - np.log(3 / 4)) / (np.log(16 / 9) / 3)), 2)
    centre = min(int((left + w / 2) / width * 3), 2)
    return (scale * 3 + ratio) * 3 + centre


def test_random_resized_crops_follow_paddle_vision_s_distribution():
    from paddle.vision import transforms as T

    height, width, draws = 60, 80, 6000
    reference = T.RandomResizedCrop(24)
    np.random.seed(0)
    random.seed(0)
    image = Image.new("RGB", (width, height))
    theirs = np.bincount([_bin(*random_resized_crop_box(reference, image), height, width) for _ in range(draws)], minlength=45)
    transform = CropTransform((0.0,) * 3, (1.0,) * 3, 24, 3, train=True, seed=5)
    boxes = transform.crop_boxes(np.tile([[height, width]], (draws, 1)))
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= height).all() and (boxes[:, 1] + boxes[:, 3] <= width).all()
    ours = np.bincount([_bin(*b, height, width) for b in boxes], minlength=45)
    used = (theirs + ours) > 0
    a, b = ours[used].astype(float), theirs[used].astype(float)
    expected = (a + b) / 2
    chi2 = (((a - expected) ** 2 + (b - expected) ** 2) / expected).sum()
    # Homogeneity over at most 45 bins (44 degrees of freedom): 85 is beyond the 0.9999 quantile.
    assert chi2 < 85, chi2


@pytest.mark.smoke
def test_batches_are_float32_nchw_and_a_function_of_seed_and_epoch(tree):
    splits = load_folder_splits(str(tree), image_size=16, seed=2)
    loader = make_loader(splits.train, 10, shuffle=False)
    x, y = list(loader)[0]  # drained: a half-read loader's prefetch thread would go on drawing crops
    assert tuple(x.shape) == (10, 3, 16, 16) and str(x.dtype).endswith("float32") and tuple(y.shape) == (10, 1)
    assert splits.train.sample_shape == [3, 16, 16]

    def epoch(n):
        splits.train.transform.set_epoch(n)
        return np.concatenate([np.asarray(x) for x, _ in loader])

    first = epoch(1)
    np.testing.assert_array_equal(first, epoch(1))
    assert not np.array_equal(first, epoch(2))
    flipped = splits.train.transform.crops(splits.train.images[:8])
    assert flipped.shape == (8, 16, 16, 3)
    labels = np.concatenate([np.asarray(y).ravel() for _, y in make_loader(splits.val, 4, False, evaluation=True)])
    np.testing.assert_array_equal(labels, splits.val.labels)


def test_one_channel_and_data_statistics(tree, decode_calls):
    load_folder_splits(str(tree), image_size=16, channels=1)  # a cache made without statistics
    splits = load_folder_splits(str(tree), image_size=16, channels=1, normalize_stats="data")
    assert len(decode_calls) == 33  # the statistics came from the cache's pixels
    x, _ = list(make_loader(splits.train, 24, shuffle=False))[0]
    assert tuple(x.shape) == (24, 1, 16, 16)
    pixels = np.concatenate([im.reshape(-1) for im in splits.train.images[:]]) / 255.0
    assert abs(splits.train.spec.mean[0] - pixels.mean()) < 0.01 and abs(splits.train.spec.std[0] - pixels.std()) < 0.01
    assert splits.preprocessing["mean"] == list(splits.train.spec.mean) and splits.preprocessing["channels"] == 1
    fresh = load_folder_splits(str(tree), image_size=16, channels=1, normalize_stats="data", cache_root=str(tree.parent / "c"))
    assert fresh.train.spec.mean == splits.train.spec.mean and fresh.train.spec.std == splits.train.spec.std
