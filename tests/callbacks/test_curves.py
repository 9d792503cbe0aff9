"""Curves: curves.png drawn from History rows, once per epoch, without touching matplotlib's global backend."""

import hashlib
import struct
import sys
import types

import pytest

from hapi_runner.callbacks.curves import Curves
from hapi_runner.report.figures import curves_png as render_png
from hapi_runner.callbacks.history import COLUMNS, History
from hapi_runner.errors import UsageError
from helpers import ImageSet, lenet_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def row(epoch, train_loss, train_acc, eval_loss=None, eval_acc=None):
    values = {c: None for c in COLUMNS}
    values.update(epoch=epoch, train_loss=train_loss, train_acc_top1=train_acc, eval_loss=eval_loss, eval_acc_top1=eval_acc)
    return values


def png_size(data):
    assert data[:8] == PNG_MAGIC, "not a PNG"
    return struct.unpack(">II", data[16:24])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_redrawn_after_each_evaluation(tmp_path):
    history = types.SimpleNamespace(rows=[])
    path = tmp_path / "curves.png"
    curves = Curves(history, str(path), title="tiny on made-up rows")
    curves.on_train_begin()

    curves.on_epoch_begin(0)
    history.rows.append(row(1, 2.0, 0.3))
    curves.on_epoch_end(0)
    assert not path.exists(), "drawn after the evaluation, not before it"
    history.rows[-1].update(eval_loss=1.9, eval_acc_top1=0.35)
    curves.on_eval_end({"loss": [1.9], "acc_top1": 0.35})
    assert png_size(path.read_bytes()) == (1200, 360)
    first, first_stat = digest(path), path.stat()

    curves.on_epoch_begin(1)  # nothing pending: no redraw
    assert path.stat().st_ino == first_stat.st_ino
    history.rows.append(row(2, 1.5, 0.5, 1.6, 0.45))
    curves.on_epoch_end(1)
    curves.on_eval_end({})
    assert digest(path) != first and path.stat().st_mtime_ns >= first_stat.st_mtime_ns
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"], "atomic writes leave no temporary files"


def test_train_only_rows_are_drawn_at_next_epoch_and_at_the_end(tmp_path):
    history = types.SimpleNamespace(rows=[row(1, 2.0, 0.3)])
    path = tmp_path / "curves.png"
    curves = Curves(history, str(path))
    curves.on_train_begin()
    curves.on_epoch_end(0)
    curves.on_epoch_begin(1)
    assert path.read_bytes()[:8] == PNG_MAGIC
    before = digest(path)
    history.rows.append(row(2, 1.0, 0.6))
    curves.on_epoch_end(1)
    curves.on_train_end()
    assert digest(path) != before


def test_gaps_and_nan_in_eval_columns_still_draw():
    rows = [row(1, 2.0, 0.3, 2.1, 0.2), row(2, 1.5, 0.4), row(3, float("nan"), 0.5, 1.2, 0.6)]
    assert png_size(render_png(rows)) == (1200, 360)
    assert png_size(render_png(rows[:1], dpi=50)) == (600, 180)


def test_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    render_png([row(1, 2.0, 0.3)])
    assert matplotlib.get_backend() == backend
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


@pytest.mark.parametrize("kwargs,match", [
    (dict(history=object()), "history must be a hapi_runner History"),
    (dict(path=""), "path must be a file path"),
    (dict(dpi=0), r"dpi must be >= 10 \(dots per inch\), got 0"),
])
def test_constructor_checks_arguments(tmp_path, kwargs, match):
    args = dict(history=History(), path=str(tmp_path / "curves.png"))
    args.update(kwargs)
    with pytest.raises(UsageError, match=match):
        Curves(**args)


def test_in_fit_after_history(tmp_path):
    model = lenet_model()
    history = History()
    path = tmp_path / "curves.png"
    model.fit(ImageSet(32), ImageSet(16, seed=1), batch_size=16, epochs=2, eval_freq=2, verbose=0,
              callbacks=[history, Curves(history, str(path))])
    # hapi evaluates epochs 0, 2, ... (0-based) with eval_freq=2: the last epoch has no evaluation.
    assert len(history.rows) == 2 and history.rows[0]["eval_loss"] is not None and history.rows[1]["eval_loss"] is None
    assert path.read_bytes() == render_png(history.rows), "the last drawing shows every row"
