"""A folder of small images trained at a far larger size is told so, with the --image-size that keeps them."""

import numpy as np
import pytest
from PIL import Image

from hapi_runner.datasets.folder import load_folder_splits
from hapi_runner.datasets.image_sizes import median_short_side, size_note


@pytest.mark.parametrize("size, own, said", [(224, 48, True), (224, 160, False), (64, 48, False), (32, 48, False), (224, None, False)])
def test_a_line_only_when_the_images_are_enlarged_far(size, own, said):
    note = size_note(size, own)
    assert (note is not None) is said
    if said:
        assert f"median short side is {own} px" in note and f"pass --image-size {own}" in note and f"{size / own:.1f}x" in note


def small_photos(root, sides):
    rng = np.random.default_rng(0)
    paths = []
    for c, name in enumerate(("cat", "dog")):
        for k, (w, h) in enumerate(sides):
            path = root / "train" / name / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
            paths.append(str(path))
    return paths


def test_the_median_short_side_is_read_from_the_headers(tmp_path):
    paths = small_photos(tmp_path, [(48, 64), (50, 40), (96, 48), (48, 48), (300, 60)])
    assert median_short_side(paths) == 48
    assert median_short_side(paths + [str(tmp_path / "missing.png")]) == 48  # unreadable files are the decoder's to report


@pytest.mark.parametrize("image_size, said", [(224, True), (48, False)])
def test_a_folder_of_48_pixel_images_says_what_224_does_to_them(tmp_path, image_size, said):
    small_photos(tmp_path / "images", [(48, 48)] * 5)
    splits = load_folder_splits(str(tmp_path / "images"), image_size=image_size, val_split=0.2, cache_root=str(tmp_path / "cache"))
    notes = [n for n in splits.notes if "median short side" in n]
    assert notes == ([size_note(224, 48)] if said else [])
