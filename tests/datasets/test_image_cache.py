"""datasets/image_cache.py called directly: a cache made once and reused, its key, and decoding every time at cache_limit 0.

test_folder_dataset.py covers the cache through load_folder_splits (damage, kills, workers); these tests pin the module's own API.
"""

import os

import numpy as np
import pytest
from PIL import Image

from hapi_runner.datasets import image_cache
from hapi_runner.datasets.image_cache import CachedImages, DecodingImages, cache_key, decode_once, format_bytes

pytestmark = pytest.mark.smoke


@pytest.fixture
def pngs(tmp_path):
    """Three 8x8 RGB images whose pixels are known: image k is filled with 10*k, 20*k, 30*k."""
    paths = []
    for k in range(1, 4):
        path = tmp_path / f"img{k}.png"
        Image.fromarray(np.full((8, 8, 3), (10 * k, 20 * k, 30 * k), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _check_pixels(images):
    for k in range(3):
        expected = np.full((8, 8, 3), (10 * (k + 1), 20 * (k + 1), 30 * (k + 1)), dtype=np.uint8)
        np.testing.assert_array_equal(images[k], expected)


def test_a_cache_is_made_once_and_reused(pngs, tmp_path, decode_calls):
    root = str(tmp_path / "cache")
    first = decode_once(pngs, 3, 8, root=root)
    assert isinstance(first.images, CachedImages) and first.decoded == 3 and first.bad == {}
    assert first.notes == [f"image cache {first.cache_dir} made (3 images, 576 B)"]
    calls = len(decode_calls)
    again = decode_once(pngs, 3, 8, root=root)
    assert (again.cache_dir, again.decoded, len(decode_calls)) == (first.cache_dir, 0, calls)
    assert again.notes == [f"image cache {first.cache_dir} reused (3 images)"]
    _check_pixels(again.images)
    np.testing.assert_array_equal(again.images.subset([2, 0])[0], again.images[2])
    assert os.listdir(root) == [os.path.basename(first.cache_dir)]  # no litter beside it


def test_a_changed_file_changes_the_key(pngs):
    key = cache_key(pngs, 3, 8)
    assert cache_key(pngs, 3, 8) == key
    assert len({key, cache_key(pngs, 1, 8), cache_key(pngs, 3, 16), cache_key(pngs[:2], 3, 8)}) == 4
    st = os.stat(pngs[0])
    os.utime(pngs[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert cache_key(pngs, 3, 8) != key


def test_cache_limit_zero_decodes_on_every_access(pngs, tmp_path, decode_calls):
    report = decode_once(pngs, 3, 8, root=str(tmp_path / "cache"), cache_limit=0)
    assert isinstance(report.images, DecodingImages) and report.cache_dir is None and report.decoded == 3
    assert report.notes == ["image cache of 576 B would not fit in 0 B (the cache_limit); decoding every epoch instead (slower)"]
    calls = len(decode_calls)
    _check_pixels(report.images)
    _check_pixels(report.images)
    assert len(decode_calls) == calls + 6
    assert not os.listdir(tmp_path / "cache")


def test_an_unreadable_file_is_reported_not_raised(pngs, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    report = decode_once([pngs[0], str(broken)], 3, 8, root=str(tmp_path / "cache"))
    assert list(report.bad) == [1] and report.decoded == 1
    np.testing.assert_array_equal(report.images[0], np.full((8, 8, 3), (10, 20, 30), dtype=np.uint8))


@pytest.mark.parametrize("count, text", [(0, "0 B"), (999, "999 B"), (1500, "1.5 KB"), (2_500_000, "2.5 MB"),
                                         (3e12, "3000.0 GB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HAPI_RUNNER_CACHE", str(tmp_path / "x"))
    assert image_cache.cache_root() == str(tmp_path / "x")
    monkeypatch.delenv("HAPI_RUNNER_CACHE")
    assert image_cache.cache_root() == os.path.join(os.path.expanduser("~"), ".cache", "hapi_runner")
