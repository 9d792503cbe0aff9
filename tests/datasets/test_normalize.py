"""--no-normalize feeds raw 0-255 pixels (seed 002's Transpose()-only inputs), and the export says so."""

import numpy as np
import pytest

from hapi_runner import TrainConfig
from hapi_runner.datasets import load_dataset, spec_for
from hapi_runner.config.recipes import recipe_values


def test_raw_pixels_reach_the_model_unchanged():
    data = load_dataset("fashion-mnist-mini", "test", normalize=False)
    image, _ = data[3]
    np.testing.assert_allclose(image, data.images[3].astype(np.float32), rtol=0, atol=1e-4)
    assert spec_for("cifar10", normalize=False).std == (1 / 255,) * 3


def test_normalised_by_default():
    data = load_dataset("fashion-mnist-mini", "test")
    batch = data.transform(data.images[:500])
    assert abs(float(batch.mean())) < 0.2 and 0.8 < float(batch.std()) < 1.2


def test_the_seed_recipe_with_no_normalize_is_the_notebook():
    # Raw pixels diverge for LeNet at the seed's rate, so the recipe itself keeps normalisation.
    assert "normalize" not in recipe_values("seed")
    assert TrainConfig.from_recipe("seed").normalize is True
    assert TrainConfig.from_recipe("seed", normalize=False).normalize is False


@pytest.mark.slow
def test_the_sidecar_of_a_raw_pixel_run_reproduces_its_inputs(tmp_path):
    from hapi_runner import Runner
    from hapi_runner.deploy import InferenceModel

    runner = Runner(dataset="synthetic", synthetic_like="mnist", synthetic_size=64, epochs=1, batch_size=32,
                    normalize=False, visualdl=False, save_dir=str(tmp_path / "run"), verbose=0, threads="1")
    runner.fit()
    model = InferenceModel(str(tmp_path / "run" / "inference"))
    raw = runner.eval_data.images[:4]
    np.testing.assert_allclose(model.preprocess(raw), raw.astype(np.float32), rtol=0, atol=1e-3)
    np.testing.assert_array_equal(model.predict(model.preprocess(raw)).argmax(1), runner.predict()[:4].argmax(1))
