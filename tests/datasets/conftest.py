"""Fixtures of the dataset tests."""

import pytest

from hapi_runner.datasets import image_decode


@pytest.fixture
def decode_calls(monkeypatch):
    """The paths the image decoder is asked for, in order (it still decodes them)."""
    calls = []
    real = image_decode.decode_image

    def counting(path, channels, side):
        calls.append(path)
        return real(path, channels, side)

    monkeypatch.setattr(image_decode, "decode_image", counting)
    return calls
