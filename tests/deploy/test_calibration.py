"""Calibration, unsure answers and test-time flips: the arithmetic on known answers, then a real run end to end."""

import json
import shutil

import numpy as np
import pytest

from hapi_runner.deploy.calibration import (answers_from_logits, check_tta, check_unsure_below, coverage_curve,
                                            expected_calibration_error, fit_temperature, probabilities, reliability)
from hapi_runner.errors import UsageError


def overconfident_logits(temperature, n=4000, classes=5, seed=0):
    """Labels drawn from softmax(z), and the logits a model ``temperature`` times too sure would give: z * temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, classes))
    p = probabilities(z)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z * temperature, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_undoes_the_over_confidence(true_t):
    logits, labels = overconfident_logits(true_t)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.1)
    before = expected_calibration_error(probabilities(logits), labels)
    after = expected_calibration_error(probabilities(logits, fitted), labels)
    assert after < 0.03
    if true_t == 3.0:
        assert before > 0.15 and after < before / 5  # the over-confident model's ECE must drop


def test_reliability_bins_and_ece_on_a_hand_made_case():
    # Ten images all at confidence 0.8, six right: one bin, accuracy 0.6, ECE 0.2.
    probs = np.tile([0.8, 0.2], (10, 1))
    labels = np.array([0] * 6 + [1] * 4)
    bins = reliability(probs, labels)
    assert len(bins["count"]) == 15 and sum(bins["count"]) == 10
    full = [i for i, c in enumerate(bins["count"]) if c]
    assert full == [11] and bins["accuracy"][11] == pytest.approx(0.6) and bins["confidence"][11] == pytest.approx(0.8)
    assert bins["ece"] == pytest.approx(0.2)
    assert reliability(np.array([[1.0, 0.0]]), np.array([0]))["count"][14] == 1  # confidence 1 lies in the last bin


def test_coverage_curve_on_a_hand_made_case():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 1])  # the most confident right, the second wrong, the third right, the last wrong
    curve = coverage_curve(probs, labels)
    assert curve["threshold"] == pytest.approx([0.55, 0.6, 0.7, 0.9])
    assert curve["coverage"] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert curve["accuracy"] == pytest.approx([0.5, 2 / 3, 0.5, 1.0])


def test_answers_apply_the_temperature_the_views_and_the_threshold():
    logits = np.array([[4.0, 0.0, 0.0], [1.0, 0.8, 0.0]])
    answers = answers_from_logits(logits, class_names=["a", "b", "c"], temperature=2.0, unsure_below=0.5, top_k=2)
    expected = probabilities(logits / 2.0)
    assert [a["answer"] for a in answers] == ["a", "unsure"] and [a["unsure"] for a in answers] == [False, True]
    assert answers[1]["class_name"] == "a" and answers[1]["probability"] == pytest.approx(expected[1, 0])
    assert [t["class_name"] for t in answers[0]["top_k"]] == ["a", "b"] and answers[0]["logits"] == [4.0, 0.0, 0.0]
    mirrored = np.array([[0.0, 4.0, 0.0], [1.0, 0.8, 0.0]])
    both = answers_from_logits(np.stack([logits, mirrored]), class_names=["a", "b", "c"])
    assert both[0]["probability"] == pytest.approx((probabilities(logits)[0, 0] + probabilities(mirrored)[0, 0]) / 2)
    assert both[0]["logits"] == [2.0, 2.0, 0.0]  # the raw logits, averaged over the views


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "fashion-mnist-mini"])
def test_the_mnist_family_refuses_flips(dataset):
    with pytest.raises(UsageError, match=f"--tta flip is refused for {dataset}"):
        check_tta("flip", dataset)
    assert check_tta("none", dataset) == "none" and check_tta("flip", "cifar10") == "flip"


@pytest.mark.parametrize("value, match", [(0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), ("high", "probability")])
def test_unsure_below_takes_a_probability(value, match):
    with pytest.raises(UsageError, match=match):
        check_unsure_below(value)


@pytest.mark.parametrize("logits, labels, match", [(np.zeros((1, 3)), [0], "two labelled samples"),
                                                    (np.zeros((2, 3)), [0, 3], "labels must lie in 0..2")])
def test_fit_temperature_refuses_what_it_cannot_fit(logits, labels, match):
    with pytest.raises(UsageError, match=match):
        fit_temperature(logits, labels)


# -- a real run: end-of-training calibration, calibrate, predict, evaluate -----------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two epochs of LeNet on 96 synthetic MNIST-shaped images (24 evaluated), exported, with its report."""
    from hapi_runner import Runner, TrainConfig

    folder = tmp_path_factory.mktemp("trust") / "run"
    runner = Runner(TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=96, epochs=2, batch_size=8,
                                threads="1", verbose=0, visualdl=False, save_dir=str(folder)))
    results = runner.fit()
    return runner, results


def cli(capsys, argv):
    from hapi_runner.cli.app import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def printed_json(out):
    """The JSON a command printed, after the lines the folder reader prints on its way."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("{", "[")))
    return json.loads("\n".join(lines[start:]))


def softmax(values, temperature):
    return probabilities(np.asarray([values]), temperature)[0]


def test_training_ends_calibrated_and_the_export_carries_the_temperature(run):
    runner, results = run
    record = json.loads(open(f"{runner.run_dir}/calibration.json").read())
    sidecar = json.loads(open(f"{runner.run_dir}/inference/hapi_runner.json").read())
    assert sidecar["temperature"] == record["temperature"] and sidecar["tta"] == "none"
    assert results["calibration"]["temperature"] == record["temperature"] and record["num_samples"] == 24
    assert record["nll_after"] <= record["nll_before"] + 1e-9  # the fit never makes the likelihood worse
    page = open(f"{runner.run_dir}/report.html", encoding="utf-8").read()
    assert 'id="calibration"' in page and 'id="unsure"' in page and "ECE (15 bins), before / after" in page
    assert page.count('alt="Grad-CAM: where the network looked') == page.count('class="sample mistake explained"') > 0


def test_calibrate_command_and_predict_use_the_temperature(run, tmp_path, capsys):
    runner = run[0]
    code, out, _ = cli(capsys, ["calibrate", runner.run_dir, "--threads", "1", "--json"])
    assert code == 0
    record = json.loads(out)
    assert record["sidecar"].endswith("inference/hapi_runner.json") and record["tta"] == "none" and record["epoch"] == 2
    image = runner.eval_data.images[0, 0]
    np.save(tmp_path / "a.npy", image)
    np.save(tmp_path / "b.npy", image[:, ::-1])
    code, out, _ = cli(capsys, ["predict", runner.run_dir, str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--json", "--top-k", "10"])
    plain = json.loads(out)
    for item in plain:
        expected = softmax(item["logits"], record["temperature"])
        assert item["probability"] == pytest.approx(expected.max(), abs=1e-6) and item["class_id"] == int(expected.argmax())
    code, out, _ = cli(capsys, ["predict", runner.run_dir, str(tmp_path / "a.npy"), "--json", "--tta", "flip", "--top-k", "10"])
    flipped = json.loads(out)[0]
    by_class = [{t["class_id"]: t["probability"] for t in item["top_k"]} for item in plain]
    for top in flipped["top_k"]:  # the image and its mirror, averaged
        assert top["probability"] == pytest.approx((by_class[0][top["class_id"]] + by_class[1][top["class_id"]]) / 2, abs=1e-6)
    code, out, _ = cli(capsys, ["predict", runner.run_dir, str(tmp_path / "a.npy"), "--unsure-below", "1.0"])
    assert code == 0 and out.startswith(f"{tmp_path / 'a.npy'}: unsure (")


def test_evaluate_with_flips_and_the_temperature(run, capsys):
    runner = run[0]
    code, out, _ = cli(capsys, ["evaluate", runner.run_dir, "--json", "--tta", "flip", "--threads", "1"])
    assert code == 0
    result = json.loads(out)
    record = json.loads(open(f"{runner.run_dir}/calibration.json").read())
    assert result["tta"] == "flip" and result["temperature"] == record["temperature"] and result["num_samples"] == 24
    code, out, _ = cli(capsys, ["evaluate", runner.run_dir, "--json", "--threads", "1"])
    plain = json.loads(out)
    assert plain["tta"] == "none" and plain["ece"] == pytest.approx(record["ece_after"], abs=1e-6)
    assert result["loss"] != pytest.approx(plain["loss"], abs=1e-6)  # the mirrors changed the probabilities


def test_predict_explains_each_image(run, tmp_path, capsys):
    runner = run[0]
    for i in range(3):
        np.save(tmp_path / f"img{i}.npy", runner.eval_data.images[i, 0])
    code, out, _ = cli(capsys, ["predict", runner.run_dir, *(str(tmp_path / f"img{i}.npy") for i in range(3)), "--json",
                                "--explain", str(tmp_path / "cams"), "--explain-class", "class_3"])
    assert code == 0
    for i, item in enumerate(json.loads(out)):
        assert item["explanation"]["class_name"] == "class_3" and item["explanation"]["layer"] == "features.3"
        heat = np.load(tmp_path / "cams" / f"img{i}_gradcam.npy")
        assert heat.shape == (28, 28) and heat.min() >= 0 and (tmp_path / "cams" / f"img{i}_gradcam.png").is_file()


def test_one_line_refusals(run, tmp_path, capsys):
    runner = run[0]
    np.save(tmp_path / "a.npy", runner.eval_data.images[0, 0])
    export = tmp_path / "export"
    shutil.copytree(f"{runner.run_dir}/inference", export)
    sidecar = json.loads((export / "hapi_runner.json").read_text())
    (export / "hapi_runner.json").write_text(json.dumps(dict(sidecar, dataset="mnist")))
    cases = [(["predict", str(export), str(tmp_path / "a.npy"), "--tta", "flip"], "--tta flip is refused for mnist"),
             (["predict", str(export), str(tmp_path / "a.npy"), "--explain", str(tmp_path / "c")], "--explain needs the run folder"),
             (["predict", runner.run_dir, str(tmp_path / "a.npy"), "--explain", str(tmp_path / "c"), "--cam-layer", "x"],
              "no layer 'x'; its convolutional layers are: features.0, features.3"),
             (["predict", runner.run_dir, str(tmp_path / "a.npy"), "--cam-layer", "x"], "add --explain OUT_DIR"),
             (["predict", runner.run_dir, str(tmp_path / "a.npy"), "--unsure-below", "2"], "a probability in (0, 1]")]
    for argv, match in cases:
        code, _, err = cli(capsys, argv)
        lines = [line for line in err.splitlines() if line.startswith("hapi-runner: error:")]
        assert code == 2 and len(lines) == 1 and match in lines[0] and "Traceback" not in err, (argv, err)


def test_a_real_browser_draws_the_calibration_and_the_overlays(run, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tools.report_screenshot import find_browser, screenshot

    if find_browser() is None:
        pytest.skip("no headless Chromium (apt-get install -y chromium)")
    from PIL import Image

    from hapi_runner.deploy.calibration import read_calibration
    from hapi_runner.deploy.gradcam import dataset_cams
    from hapi_runner.report import sections, trust
    from hapi_runner.report.page import document
    from hapi_runner.report.predictions import Predictions

    runner = run[0]
    data = runner.eval_data
    predictions = Predictions.from_dataset(data, runner.predict(), "test")
    predictions.heatmaps = dataset_cams(runner.network, data)
    parts = [trust.calibration(predictions, read_calibration(runner.run_dir), runner.run_dir),
             sections.gallery(predictions, list(range(10)), 6, 0)]
    page = tmp_path / "trust.html"
    page.write_text(document("trust", "calibration and Grad-CAM", parts), encoding="utf-8")
    with Image.open(screenshot(str(page), str(tmp_path / "shot.png"), 1200, 2200)) as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=np.int64)
    assert pixels.std() > 20
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert ((blue > 150) & (red < 90)).sum() > 2000  # the reliability bars, drawn in blue
    assert ((red > green + 100) & (red > blue + 100)).sum() > 50  # the heat overlays' red, where the network looked


def test_a_folder_run_of_a_users_network_calibrates_flips_and_explains(tmp_path, capsys):
    from folder_images import class_tree
    from usernets import FACTORY, write_net

    from hapi_runner import Runner, TrainConfig

    class_tree(tmp_path / "data", 8, classes=("bag", "coat"), junk=False)
    val = class_tree(tmp_path / "data", 4, classes=("bag", "coat"), split="val", offset=40, junk=False)
    net = write_net(tmp_path, "nets.py", FACTORY)
    run_dir = str(tmp_path / "run")
    Runner(TrainConfig(dataset="folder", data_dir=str(tmp_path / "data"), model=f"{net}:make_net", image_size=32, epochs=1,
                       batch_size=8, threads="1", verbose=0, visualdl=False, save_dir=run_dir)).fit()
    assert json.loads(open(f"{run_dir}/calibration.json").read())["num_samples"] == 8
    code, out, _ = cli(capsys, ["calibrate", run_dir, "--tta", "flip", "--json", "--threads", "1"])
    assert code == 0 and printed_json(out)["tta"] == "flip"
    assert json.loads(open(f"{run_dir}/inference/hapi_runner.json").read())["tta"] == "flip"
    code, out, _ = cli(capsys, ["evaluate", run_dir, "--json", "--threads", "1"])
    assert code == 0 and printed_json(out)["tta"] == "flip"  # the calibration's choice is the default
    code, out, _ = cli(capsys, ["predict", run_dir, str(val[0]), str(val[-1]), "--json", "--explain", str(tmp_path / "cams")])
    assert code == 0
    for path, item in zip((val[0], val[-1]), printed_json(out)):
        assert item["explanation"]["layer"] == "0"
        heat = np.load(tmp_path / "cams" / f"{path.stem}_gradcam.npy")
        assert heat.shape == (32, 32) and heat.min() >= 0
