"""bench/folder_pipeline.py runs end to end on a few photos (its timing is not asserted)."""

import argparse

from bench import folder_pipeline


def test_folder_benchmark_pieces_run(tmp_path):
    data = str(tmp_path / "data")
    folder_pipeline.write_photos(data, 4)
    folder_pipeline.write_photos(data, 4, seed=1, split="val")
    hapi = folder_pipeline.run_hapi(data, epochs=2, workers=0, batch_size=2, cache=str(tmp_path / "cache"))
    paddle = folder_pipeline.run_paddle(data, epochs=1, workers=0, batch_size=2)
    assert len(hapi) == 2 and len(paddle) == 1 and all(w > 0 and c > 0 for w, c in hapi + paddle)
    args = argparse.Namespace(count=4, epochs=2, cores=1, workers=0, batch_size=2)
    table = folder_pipeline.report(args, paddle, hapi)
    assert table.count("\n| ") == 4 and "`python bench/folder_pipeline.py --count 4 --epochs 2 --cores 1 --workers 0`" in table
