"""deploy/predict.py: answers for image files from a tiny export, equal to the softmax of the network's own logits."""

import numpy as np
import paddle
import pytest
from PIL import Image

from hapi_runner.deploy.export import export_model
from hapi_runner.deploy.layout import build_sidecar
from hapi_runner.deploy.predict import expand_paths, predict_files, resolve_model_dir
from hapi_runner.errors import HapiRunnerError, UsageError

pytestmark = pytest.mark.smoke

SHAPE = [3, 6, 6]
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
CLASSES = ["ant", "bee", "cat", "dog"]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A run folder holding a tiny network's export, and the network."""
    paddle.seed(5)
    net = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(108, 4))
    run = tmp_path_factory.mktemp("run")
    export_model(net, str(run / "inference"), SHAPE, build_sidecar(MEAN, STD, SHAPE, class_names=CLASSES))
    net.eval()
    return run, net


def expected_probabilities(net, images):
    """Softmax of the network's logits for uint8 ``[N, 3, 6, 6]`` images, normalised as the sidecar says."""
    x = (images / 255.0 - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))
    with paddle.no_grad():
        logits = net(paddle.to_tensor(x.astype("float32"))).numpy().astype("float64")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def images(tmp_path):
    """Two PNGs and one .npy of 0-1 floats in a folder (with a text file beside them), and their pixels."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(pixels[k]).save(folder / f"img{k}.png")
    np.save(folder / "img2.npy", pixels[2].astype("float64") / 255.0)
    (folder / "notes.txt").write_text("not an image")
    return folder, pixels.transpose(0, 3, 1, 2)


def test_answers_are_the_softmax_of_the_networks_logits(export, images):
    run, net = export
    folder, pixels = images
    answers = predict_files(str(run), [str(folder)], top_k=3, threads=1, batch_size=2)
    assert [a["path"] for a in answers] == [str(folder / n) for n in ("img0.png", "img1.png", "img2.npy")]
    probs = expected_probabilities(net, pixels)
    for answer, row in zip(answers, probs):
        order = np.argsort(-row)
        assert answer["class_id"] == order[0] and answer["answer"] == CLASSES[order[0]]
        assert answer["probability"] == pytest.approx(row[order[0]], abs=1e-5)
        assert [t["class_name"] for t in answer["top_k"]] == [CLASSES[i] for i in order[:3]]
        assert [t["probability"] for t in answer["top_k"]] == pytest.approx(row[order[:3]], abs=1e-5)


def test_a_file_gives_the_same_answer_alone_or_from_its_folder(export, images):
    run, _ = export
    folder, _ = images
    alone = predict_files(str(run / "inference"), [str(folder / "img1.png")], top_k=9, threads=1)
    assert len(alone) == 1 and len(alone[0]["top_k"]) == 4  # at most the class count
    together = predict_files(str(run), [str(folder)], threads=1)
    assert alone[0]["logits"] == pytest.approx(together[1]["logits"], abs=1e-5)


def test_a_folder_expands_to_its_images_sorted(images):
    folder, _ = images
    assert expand_paths([str(folder / "img1.png"), str(folder)]) == [str(folder / n) for n in
                                                                      ("img1.png", "img0.png", "img1.png", "img2.npy")]


@pytest.mark.parametrize("name, content, match", [
    ("bad.png", b"\x89PNG not really", r"^'.*bad\.png' is not an image Pillow can read; pass PNG, JPEG, BMP or \.npy files\.$"),
    ("bad.npy", None, r"^'.*bad\.npy' holds an array of shape \[2, 6, 6\]; expected \[6, 6\], \[6, 6, C\] or \[C, 6, 6\] "
                      r"with C 1 or 3\.$"),
    ("neg.npy", -1, r"^'.*neg\.npy' has values outside 0-255"),
    ("junk.npy", b"not numpy", r"^'.*junk\.npy' is not a readable \.npy array"),
])
def test_a_bad_file_is_named_in_one_line(export, tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, np.zeros((2, 6, 6)) if content is None else np.full((6, 6), content))
    with pytest.raises(UsageError, match=match):
        predict_files(str(export[0]), [str(path)], threads=1)


@pytest.mark.parametrize("make, error, match", [
    (lambda p: p / "missing.png", UsageError, r"^'.*missing\.png' does not exist; pass image files"),
    (lambda p: p, UsageError, r"^folder '.*' has no images"),
])
def test_paths_that_hold_no_images(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        expand_paths([str(make(tmp_path))])


def test_a_folder_without_an_export_is_refused(tmp_path, export):
    assert resolve_model_dir(str(export[0])) == str(export[0] / "inference")
    with pytest.raises(HapiRunnerError, match=r"holds no exported model \(hapi_runner\.json not found there or in its "
                                              r"inference/\); export it first"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(UsageError, match=r"does not exist; pass a run folder or its inference/ folder"):
        resolve_model_dir(str(tmp_path / "nowhere"))
