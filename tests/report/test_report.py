"""report.html and compare: a real tiny run, its checkpoint's predictions, the page read as a parser and a browser see it."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hapi_runner.errors import UsageError
from hapi_runner.report import Predictions, build_report, compare_runs, format_comparison
from hapi_runner.report.evaluation import run_predictions

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tools.report_screenshot import find_browser, screenshot  # noqa: E402

pytestmark = pytest.mark.slow


def train_tiny_run(folder: Path, *extra: str) -> Path:
    """One epoch of LeNet on the embedded Fashion-MNIST subset (about 15 s on one core)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "train.py"), "--dataset", "fashion-mnist-mini", "--epochs", "1", "--threads", "1",
               "--verbose", "0", "--save-dir", str(folder), "--no-visualdl", *extra]
    subprocess.run(command, check=True, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, timeout=600)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="session")
def predictions(tiny_run):
    return run_predictions(str(tiny_run), "best", threads="1", download=False)


@pytest.fixture(scope="session")
def report_page(tiny_run, predictions, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = build_report(str(tiny_run), predictions, max_images=12, output=str(out))
    return out, result


class PageParser(HTMLParser):
    """Collects every tag with its attributes, the text of the per-class table's rows and the gallery tiles."""

    def __init__(self):
        super().__init__()
        self.tags, self.stack, self.rows, self.tiles = [], [], {}, {}
        self.table, self.gallery, self.cell, self.row = None, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self.table = attrs.get("id")
        elif tag == "div" and "gallery" in (attrs.get("class") or ""):
            self.gallery = attrs.get("id")
        elif tag == "tr" and self.table:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = ""
        elif tag == "figure" and self.gallery:
            self.tiles.setdefault(self.gallery, []).append("")

    def handle_endtag(self, tag):
        if tag == "td" and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row:
                self.rows.setdefault(self.table, []).append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
        elif tag == "section":
            self.gallery = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.gallery and self.tiles.get(self.gallery):
            self.tiles[self.gallery][-1] += data + "|"


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def embedded_images(parser: PageParser):
    return [attrs["src"] for tag, attrs in parser.tags if tag == "img"]


def test_page_has_no_external_reference(report_page):
    path, _ = report_page
    parser = parse(path)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base"}
    sources = embedded_images(parser)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    for _, attrs in parser.tags:
        assert "href" not in attrs and not any(k.startswith("on") for k in attrs)
    text = path.read_text(encoding="utf-8")
    for uri in sources:
        text = text.replace(uri, "")
    for pattern in ("http:", "https:", "//", "url(", "@import"):
        assert pattern not in text


def test_every_embedded_image_decodes(report_page):
    from PIL import Image

    sources = embedded_images(parse(report_page[0]))
    for uri in sources:
        data = base64.b64decode(uri.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as picture:
            picture.verify()
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "PNG" and min(picture.size) >= 56


def test_per_class_table_has_every_class_worst_f1_first(report_page, predictions):
    parser = parse(report_page[0])
    rows = parser.rows["per-class"]
    assert sorted(r[0] for r in rows) == sorted(predictions.class_names)
    f1 = [float(r[3]) for r in rows]
    assert f1 == sorted(f1)
    assert sum(int(r[4]) for r in rows) == len(predictions.labels)
    metrics = report_page[1]["metrics"]
    worst = int(np.argmin(metrics["f1"]))
    assert rows[0][0] == predictions.class_names[worst]


def test_gallery_shows_confident_mistakes_first_and_correct_ones(report_page, predictions):
    parser = parse(report_page[0])
    mistakes = parser.tiles["mistakes"]
    assert len(mistakes) == 12
    wrong = predictions.predicted != predictions.labels
    top = np.sort(predictions.confidence[wrong])[::-1][:12]
    shown = [float(t.split("probability|: ")[1].split("|")[0]) for t in mistakes]
    assert shown == pytest.approx(top, abs=1e-3)
    for tile in mistakes:
        true, predicted = tile.split("true|: ")[1].split("|")[0], tile.split("predicted|: ")[1].split("|")[0]
        assert true != predicted and true in predictions.class_names
    correct = parser.tiles["correct"]
    assert len(correct) == 12  # 2 per class for 10 classes, capped at max_images
    for tile in correct:
        assert tile.split("true|: ")[1].split("|")[0] == tile.split("predicted|: ")[1].split("|")[0]
    assert len(parser.rows["confused"]) == 5


def test_header_reports_the_run_and_the_changed_flags(report_page, tiny_run):
    text = report_page[0].read_text(encoding="utf-8")
    results = json.loads((tiny_run / "results.json").read_text())
    flags = dict((r[0], r[1]) for r in parse(report_page[0]).rows["flags"])
    assert flags["epochs"] == "1" and flags["visualdl"] == "False" and "lr" not in flags
    for expected in ("lenet", "fashion-mnist-mini", "1 run of 1 planned", "completed its one epoch",
                     results["paddle_version"], "cpu, 1 thread", "top-1 agreement", "inference"):
        assert expected in text
    assert report_page[1]["checkpoint_epoch"] == 1


def test_written_atomically_into_the_run_folder_by_default(tiny_run, predictions):
    result = build_report(str(tiny_run), predictions, max_images=2)
    assert result["path"] == os.path.join(str(tiny_run), "report.html")
    assert not [n for n in os.listdir(tiny_run) if n.startswith(".tmp-")]
    assert "<!DOCTYPE html>" in Path(result["path"]).read_text(encoding="utf-8")[:40]


def test_class_names_are_escaped_and_two_classes_get_roc(tiny_run, tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    probs = np.clip(labels * 0.6 + rng.random(40) * 0.5, 0, 1)
    names = ['<script>alert("x")</script>', "a & b"]
    images = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    result = build_report(str(tiny_run), Predictions(labels, np.c_[1 - probs, probs], images, names), output=str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "a &amp; b" in page
    parser = parse(tmp_path / "r.html")
    assert {r[0] for r in parser.rows["per-class"]} == set(names)
    binary = result["metrics"]["binary"]
    assert "ROC-AUC" in page and f"{binary['roc_auc']:.4f}" in page and binary["sensitivity"] > 0.5


def test_without_predictions_the_page_says_what_is_left_out(tiny_run, tmp_path):
    result = build_report(str(tiny_run), output=str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert result["metrics"] is None and "No predictions were given" in page and 'id="per-class"' not in page


def _copy_run(tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy, symlinks=True)
    return copy


def test_bad_folders_are_one_line_each(tiny_run, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        build_report(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a hapi_runner run folder"):
        build_report(str(tmp_path / "empty"))
    copy = _copy_run(tiny_run, tmp_path)
    shutil.rmtree(copy / "checkpoints")
    with pytest.raises(UsageError, match="has no checkpoint"):
        build_report(str(copy))
    (copy / "results.json").unlink()
    with pytest.raises(UsageError, match="has no results.json.*--resume"):
        build_report(str(copy))


def test_a_run_still_training_is_refused(tiny_run, tmp_path):
    copy = _copy_run(tiny_run, tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (copy / "checkpoints" / f".tmp-epoch_2-{writer.pid}").mkdir()
        with pytest.raises(UsageError, match=f"still training \\(process {writer.pid}"):
            build_report(str(copy))
    finally:
        writer.kill()
        writer.wait()
    build_report(str(copy), max_images=1)  # its writer gone, the litter no longer blocks


@pytest.mark.parametrize("kwargs, match", [
    (dict(checkpoint="epoch_9"), "is not one of this run's"),
    (dict(max_images=-1), "max_images"),
    (dict(predictions=[1, 2]), "must be a hapi_runner.report.Predictions"),
])
def test_bad_arguments(tiny_run, kwargs, match):
    with pytest.raises(UsageError, match=match):
        build_report(str(tiny_run), **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=[0, 1], probs=np.ones((2, 2)) / 2, class_names=["a"]), "1 class names for 2 classes"),
    (dict(labels=[0, 1], probs=np.ones((2, 2)) / 2, images=np.zeros((2, 4, 4), np.float32)), "uint8"),
    (dict(labels=[0, 1], probs=np.ones((2, 2)) / 2, images=np.zeros((3, 4, 4), np.uint8)), "N = 2"),
])
def test_bad_predictions(kwargs, match):
    with pytest.raises(UsageError, match=match):
        Predictions(**kwargs)


def test_compare_lists_differences_and_writes_the_overlay(tiny_run, tmp_path):
    other = _copy_run(tiny_run, tmp_path)
    config = json.loads((other / "config.json").read_text())
    config["lr"] = 0.05
    (other / "config.json").write_text(json.dumps(config))
    result = compare_runs([str(tiny_run), str(other)], output=str(tmp_path / "cmp.png"))
    assert result["differing"] == {"lr": [0.01, 0.05]}
    assert result["runs"][0]["final"]["acc_top1"] == result["runs"][1]["final"]["acc_top1"]
    assert result["runs"][0]["best"]["epoch"] == 1
    from PIL import Image

    with Image.open(result["curves"]) as picture:
        picture.verify()
    table = format_comparison(result)
    assert "lr" in table and "0.05" in table and str(tmp_path / "cmp.png") in table
    json.dumps(result)  # --json prints it
    with pytest.raises(UsageError, match="two run folders or more"):
        compare_runs([str(tiny_run)])


def test_commands_report_and_compare(tiny_run, tmp_path, capsys):
    import argparse

    from hapi_runner.report.commands import build_compare_parser, build_report_parser, run_compare, run_report

    args = build_report_parser(argparse.ArgumentParser()).parse_args(
        [str(tiny_run), "--no-download", "--threads", "1", "--max-images", "3", "--output", str(tmp_path / "r.html"), "--json"])
    assert run_report(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(tmp_path / "r.html") and len(printed["metrics"]["f1"]) == 10
    args = build_compare_parser(argparse.ArgumentParser()).parse_args([str(tiny_run), str(tiny_run), "--output", str(tmp_path / "c.png")])
    assert run_compare(args) == 0
    assert "final top-1" in capsys.readouterr().out


@pytest.mark.skipif(find_browser() is None, reason="no headless Chromium (apt-get install -y chromium)")
def test_a_real_browser_renders_the_page(report_page, tmp_path):
    from PIL import Image

    shot = screenshot(str(report_page[0]), str(tmp_path / "shot.png"), 1200, 3000)
    with Image.open(shot) as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels.std() > 20  # a blank page has none
    not_white = (pixels < 240).any(axis=2).mean()
    assert 0.05 < not_white < 0.9
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, plots, the blue matrix, grey images


def quick_train_args(run: Path, *extra: str):
    """A seconds-long run: LeNet on 96 synthetic MNIST-shaped images (24 to evaluate), batches of 8."""
    return ["--dataset", "synthetic", "--synthetic-like", "mnist", "--synthetic-size", "96", "--epochs", "1",
            "--batch-size", "8", "--threads", "1", "--verbose", "0", "--no-visualdl", "--no-export", "--save-dir", str(run), *extra]


def test_the_end_of_training_writes_the_report_and_per_class_figures(tmp_path, capsys):
    from hapi_runner import Runner, TrainConfig
    from hapi_runner.training.metrics import classification_report

    runner = Runner(TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=96, epochs=1, batch_size=8,
                                threads="1", verbose=0, visualdl=False, export=False, save_dir=str(tmp_path / "run")))
    results = runner.fit()
    page = tmp_path / "run" / "report.html"
    assert results["report"] == str(page)
    assert f"hapi_runner: report: {page}" in capsys.readouterr().out.splitlines()
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    metrics = saved["class_metrics"]
    expected = classification_report(runner.eval_data.labels, runner.predict())  # hapi's own predict, for comparison
    assert metrics["confusion_matrix"] == expected["confusion_matrix"] and metrics["f1"] == pytest.approx(expected["f1"])
    assert metrics["accuracy"] == pytest.approx(saved["final_eval"]["acc_top1"], abs=1e-6)
    assert metrics["num_samples"] == 24 and metrics["binary"] is None and saved["report"] == str(page)
    parser = parse(page)
    assert sum(int(r[4]) for r in parser.rows["per-class"]) == 24
    assert "predicted at the end of training" in page.read_text(encoding="utf-8") and "No exported model" in page.read_text(encoding="utf-8")


def test_a_report_that_cannot_be_written_leaves_the_training_result(tmp_path, monkeypatch, capsys):
    import errno

    from hapi_runner.cli.app import main
    from hapi_runner.report import end_of_training

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "report.html"))

    monkeypatch.setattr(end_of_training, "build_report", full_disk)
    assert main(quick_train_args(tmp_path / "run", "--json")) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "report.html not written (OSError: [Errno 28] No space left on device" in warnings[0]
    assert "the training result stands" in warnings[0] and "hapi-runner error" not in err
    printed = json.loads(out[out.index("{"):])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["final_eval"] == printed["final_eval"] and saved["class_metrics"]["num_samples"] == 24
    assert "report" not in saved and not (tmp_path / "run" / "report.html").exists()


def test_a_costly_pass_is_skipped_with_one_line_saying_how_to_make_it(tmp_path, monkeypatch, capsys):
    from hapi_runner.cli.app import main
    from hapi_runner.report import end_of_training

    monkeypatch.setattr(end_of_training, "pass_budget", lambda train_seconds: 0.0)
    assert main(quick_train_args(tmp_path / "run")) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "report" in line]
    assert len(lines) == 1 and lines[0].startswith("hapi_runner: report skipped: it needs one more pass over 24 images (~")
    assert lines[0].endswith(f"run hapi-runner report {tmp_path / 'run'}")
    assert not (tmp_path / "run" / "report.html").exists()
    assert "class_metrics" not in json.loads((tmp_path / "run" / "results.json").read_text())


def test_no_report_makes_no_pass(tmp_path, monkeypatch, capsys):
    from hapi_runner.cli.app import main
    from hapi_runner.report import end_of_training

    monkeypatch.setattr(end_of_training, "predict_within", None)  # called, it would raise
    assert main(quick_train_args(tmp_path / "run", "--no-report")) == 0
    assert "hapi_runner: report" not in capsys.readouterr().out and not (tmp_path / "run" / "report.html").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["report"] is False


@pytest.mark.parametrize("train_seconds, budget", [(None, 10.0), (3.0, 10.0), (100.0, 10.0), (1000.0, 100.0)])
def test_the_pass_may_take_ten_seconds_or_a_tenth_of_the_training(train_seconds, budget):
    from hapi_runner.report.end_of_training import pass_budget

    assert pass_budget(train_seconds) == pytest.approx(budget)


def test_the_cli_commands_report_and_compare(tiny_run, tmp_path, capsys, monkeypatch):
    from hapi_runner.cli.app import main

    monkeypatch.chdir(tmp_path)
    assert main(["report", str(tiny_run), "--threads", "1", "--no-download", "--max-images", "4", "--output", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"report: {tmp_path / 'r.html'} (checkpoint epoch 1, top-1 ") and (tmp_path / "r.html").is_file()
    assert main(["compare", str(tiny_run), str(tiny_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["curves"] == str(tmp_path / "compare.png") and len(result["runs"]) == 2 and result["differing"] == {}
    assert main(["compare", str(tiny_run), str(tiny_run)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"evaluation curves: {tmp_path / 'compare.png'}")


def test_an_image_folder_evaluation_gets_its_per_class_table_and_gallery(tiny_run, tmp_path):
    """Files of several sizes and modes: predicted as the folder pipeline feeds them, shown as its evaluation crop."""
    import paddle

    from folder_images import class_tree
    from hapi_runner.datasets import make_loader
    from hapi_runner.datasets.folder import load_folder_splits
    from hapi_runner.model.builtin import build_model
    from hapi_runner.report.end_of_training import predict_within
    from hapi_runner.report.predictions import CroppedImages

    class_tree(tmp_path / "tree", per_class=8)
    val = load_folder_splits(str(tmp_path / "tree"), image_size=28, channels=1, val_split=0.5, seed=1,
                             cache_root=str(tmp_path / "cache")).val
    paddle.seed(0)
    network = build_model("lenet", 3, 1, 28)
    probs, _ = predict_within(network, val, 5, budget=1e9)
    model = paddle.Model(network, paddle.static.InputSpec([None, 1, 28, 28], "float32", "image"))
    model.prepare()
    logits = np.asarray(model.predict(make_loader(val, 5, shuffle=False), verbose=0, stack_outputs=True)[0])
    assert probs == pytest.approx(Predictions.from_logits(val.labels, logits).probs, abs=1e-5)
    predictions = Predictions.from_dataset(val, probs, source="image folder")
    assert isinstance(predictions.images, CroppedImages) and predictions.images[0].shape == (28, 28)
    result = build_report(str(tiny_run), predictions, max_images=4, correct_per_class=1, output=str(tmp_path / "r.html"))
    parser = parse(tmp_path / "r.html")
    assert sorted(r[0] for r in parser.rows["per-class"]) == ["bag", "coat", "dress"]
    wrong = int((predictions.predicted != predictions.labels).sum())
    assert len(parser.tiles.get("mistakes", [])) == min(4, wrong) and result["metrics"]["num_samples"] == len(val)
    from PIL import Image

    for uri in embedded_images(parser):
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as picture:
            picture.verify()


def test_a_network_from_a_file_resized_inputs_gets_its_report_at_the_end_and_again(tmp_path, capsys):
    from hapi_runner.cli.app import main

    run = tmp_path / "run"
    assert main(quick_train_args(run, "--model", str(ROOT / "examples" / "lenet5.py") + ":LeNet5", "--image-size", "32")) == 0
    assert f"hapi_runner: report: {run / 'report.html'}" in capsys.readouterr().out
    at_end = json.loads((run / "results.json").read_text())["class_metrics"]
    assert main(["report", str(run), "--checkpoint", "last", "--threads", "1", "--output", str(tmp_path / "again.html"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["confusion_matrix"] == at_end["confusion_matrix"]  # the same weights, the same 32x32 images
    parser = parse(tmp_path / "again.html")
    assert "LeNet5" in (tmp_path / "again.html").read_text(encoding="utf-8") and len(parser.rows["per-class"]) == 10
    from PIL import Image

    thumbnail = next(attrs["src"] for tag, attrs in parser.tags if tag == "img" and attrs.get("class") == "thumb")
    with Image.open(io.BytesIO(base64.b64decode(thumbnail.split(",", 1)[1]))) as picture:
        assert picture.size == (96, 96)  # a 32x32 input shown 3x: the resized image the network saw (28x28 shows as 112)


def test_a_network_built_in_python_gets_its_report_and_is_passed_again_for_another(tmp_path, capsys):
    import paddle

    from hapi_runner import Runner, TrainConfig
    from hapi_runner.cli.app import main

    class Tiny(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(28 * 28, 10)

        def forward(self, x):
            return self.fc(paddle.flatten(x, 1))

    config = TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=96, epochs=1, batch_size=8, threads="1",
                         verbose=0, visualdl=False, export=False, save_dir=str(tmp_path / "run"))
    results = Runner(config, network=Tiny()).fit()
    assert results["report"] == str(tmp_path / "run" / "report.html") and "&lt;python object: Tiny&gt;" in Path(results["report"]).read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "run")]) == 2
    assert "network built in Python (<python object: Tiny>)" in capsys.readouterr().err
    predictions = run_predictions(str(tmp_path / "run"), "last", threads="1", network=Tiny())
    result = build_report(str(tmp_path / "run"), predictions, checkpoint="last", output=str(tmp_path / "again.html"))
    assert result["metrics"]["confusion_matrix"] == results["class_metrics"]["confusion_matrix"]


def test_a_run_on_an_image_folder_gets_its_report_at_the_end_and_again(tmp_path, capsys):
    from folder_images import class_tree
    from hapi_runner.cli.app import main

    class_tree(tmp_path / "images", 10)
    class_tree(tmp_path / "images", 3, split="val", offset=30, nested=False, junk=False)
    run = tmp_path / "run"
    assert main(["--dataset", "folder", "--data-dir", str(tmp_path / "images"), "--image-size", "28", "--epochs", "1",
                 "--batch-size", "8", "--threads", "1", "--verbose", "0", "--no-visualdl", "--no-export", "--save-dir", str(run)]) == 0
    printed = capsys.readouterr().out
    assert f"hapi_runner: report: {run / 'report.html'}" in printed
    assert "top-5" not in printed and "acc_top5" not in printed  # three classes: top-5 is always 1, so never shown
    results = json.loads((run / "results.json").read_text())
    for mistake in results["mistakes"]:  # each named by its file under --data-dir, so the user can open it
        assert mistake["image"].startswith("val/") and (tmp_path / "images" / mistake["image"]).is_file()
    at_end = results["class_metrics"]
    assert at_end["class_names"] == ["bag", "coat", "dress"] and at_end["num_samples"] == 9
    assert main(["report", str(run), "--checkpoint", "last", "--threads", "1", "--output", str(tmp_path / "again.html"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["confusion_matrix"] == at_end["confusion_matrix"]
    for page in (run / "report.html", tmp_path / "again.html"):
        parser = parse(page)
        assert sorted(r[0] for r in parser.rows["per-class"]) == ["bag", "coat", "dress"]
        assert sum(len(tiles) for tiles in parser.tiles.values()) > 0  # mistakes or correct ones, cropped as evaluated
        text = page.read_text(encoding="utf-8")
        assert "validation images" in text
        named = re.findall(r"<b>image</b>: ([^<]+)<", text)
        assert len(named) == sum(len(tiles) for tiles in parser.tiles.values()) and "#" not in "".join(named)
        assert all((tmp_path / "images" / name).is_file() for name in named)


def test_model_view_pads_like_the_transform_and_drops_grey_channel():
    images = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    from hapi_runner.report.predictions import model_view

    view = model_view(images, 8)
    assert view.shape == (2, 8, 8) and view[0, 2:6, 2:6].tolist() == images[0, 0].tolist() and view[0, 0].sum() == 0
    colour = np.zeros((1, 3, 5, 5), np.uint8)
    colour[0, 2] = 200
    assert model_view(colour)[0, 0, 0].tolist() == [0, 0, 200]


def test_thumbnails_grow_by_whole_factors_with_nearest_neighbour():
    from PIL import Image

    from hapi_runner.report.figures import thumbnail_png

    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = 255
    with Image.open(io.BytesIO(thumbnail_png(image))) as picture:
        pixels = np.asarray(picture)
    assert pixels.shape == (112, 112) and pixels[:4, :4].min() == 255 and pixels[4:, :].max() == 0 and pixels[:4, 4:].max() == 0
    with Image.open(io.BytesIO(thumbnail_png(np.zeros((448, 224, 3), np.uint8)))) as picture:
        assert picture.size == (56, 112)


def test_the_report_package_does_not_import_paddle():
    code = "import sys, hapi_runner.report, hapi_runner.training.metrics; print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_val_split_run_is_evaluated_on_its_held_out_part(tiny_run, tmp_path):
    copy = _copy_run(tiny_run, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["val_split"] = 0.1
    (copy / "config.json").write_text(json.dumps(config))
    predictions = run_predictions(str(copy), "last", threads="1", download=False)
    assert len(predictions.labels) == 600 and "held out" in predictions.source
