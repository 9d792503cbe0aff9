"""bench/serve_load.py's arithmetic: the table and its verdicts on the two targets."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench.serve_load import percentile_row, table  # noqa: E402


def rows(serve32, serve1_p50):
    return [
        percentile_row("direct b1", [0.010] * 10, 100.0, 1),
        percentile_row("direct b32", [0.100] * 10, 320.0, 32),
        {**percentile_row("serve c=1", [serve1_p50 / 1000] * 10, 90.0, None), "batch": 1.0},
        {**percentile_row("serve c=32", [0.2] * 10, serve32, None), "batch": 30.0},
    ]


@pytest.mark.parametrize("serve32,serve1_p50,share,throughput,latency", [
    (320 * 0.7, 15.0, "70%", "met", "met"),
    (320 * 0.69, 15.01, "69%", "NOT met", "NOT met"),
])
def test_the_targets_are_judged_against_the_direct_rows(serve32, serve1_p50, share, throughput, latency):
    text = table("lenet", rows(serve32, serve1_p50))
    assert f"c=32: {share} of direct batch-32 throughput (target >= 70%: {throughput})" in text
    assert f"(target <= 5 ms: {latency})" in text
    assert "| direct b1 | 100.0 | 10.00 | 10.00 | 1.0 | 10 |" in text and "| serve c=32 |" in text


def test_the_http_ceiling_row_is_set_against_direct_batch_32():
    ceiling = {**percentile_row("GET /health c=32", [0.02] * 10, 160.0, None), "batch": None}
    text = table("lenet", rows(100.0, 12.0) + [ceiling])
    assert ("answered 160 requests/s at c=32: 50% of direct batch-32 throughput: the 70% target is out of reach "
            "over HTTP.") in text
    assert "| GET /health c=32 | 160.0 | 20.00 | 20.00 | - | 10 |" in text
    fast_http = {**ceiling, "per_second": 3200.0}
    assert "answered 3200 requests/s at c=32: 10x direct batch-32 throughput: HTTP is not what limits this model." \
        in table("resnet18", rows(100.0, 12.0) + [fast_http])
