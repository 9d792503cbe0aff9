"""bench/folder_pipeline.py runs end to end on a few photos; its arithmetic is checked on a made-up clock."""

import argparse
import time

from bench import folder_pipeline


class FakeClock:
    """perf_counter advances 1 s a call, process_time 0.5 s: an epoch of N images then reads N and 2N images/s."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def perf_counter(self):
        self.wall += 1.0
        return self.wall

    def process_time(self):
        self.cpu += 0.5
        return self.cpu

    def __getattr__(self, name):  # the rest of the time module, as it is
        return getattr(time, name)


def test_folder_benchmark_pieces_run(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_pipeline, "time", FakeClock())
    data = str(tmp_path / "data")
    folder_pipeline.write_photos(data, 4)
    folder_pipeline.write_photos(data, 4, seed=1, split="val")
    hapi = folder_pipeline.run_hapi(data, epochs=2, workers=0, batch_size=2, cache=str(tmp_path / "cache"))
    paddle = folder_pipeline.run_paddle(data, epochs=1, workers=0, batch_size=2)
    # Every one of the 4 training photos is seen once an epoch, by both loaders.
    assert hapi == [(4.0, 8.0), (4.0, 8.0)] and paddle == [(4.0, 8.0)]
    args = argparse.Namespace(count=4, epochs=2, cores=1, workers=0, batch_size=2)
    table = folder_pipeline.report(args, paddle, hapi)
    assert table.count("\n| ") == 4 and "`python bench/folder_pipeline.py --count 4 --epochs 2 --cores 1 --workers 0`" in table
