"""The input pipeline (batched and per-sample), DataLoader settings, and the GPU-only fast paths' CPU behaviour."""

import numpy as np
import paddle
import pytest

from hapi_runner import TrainConfig
from hapi_runner.datasets import DATASETS, BatchTransform, ImageDataset, make_loader
from hapi_runner.datasets.pipeline import _BatchCollate, _sample_collate
from hapi_runner.training.environment import amp_configs, configure_gpu_flags, default_num_workers
from hapi_runner.paddle_compat import amp_dtype_of, amp_level_of, set_amp_dtype

SIDE = 8
# Every (top, left, flip) a 4-pixel padded crop of a SIDE x SIDE image can take.
OUTCOMES = [(top, left, flip) for top in range(9) for left in range(9) for flip in (False, True)]


def one_image_dataset(copies, seed, augment="crop-flip"):
    """``copies`` of one random image, so each output identifies the crop and flip that made it."""
    image = np.random.default_rng(0).integers(1, 255, size=(1, 1, SIDE, SIDE)).astype(np.uint8)
    transform = BatchTransform(mean=(0.0,), std=(1.0,), augment=augment, seed=seed)
    return ImageDataset(np.repeat(image, copies, axis=0), np.arange(copies) % 10, [str(i) for i in range(10)],
                        DATASETS["cifar10"], transform), image[0, 0]


def outcome_counts(loader, image):
    padded = np.pad(image, 4)
    expected = np.stack([padded[t:t + SIDE, l:l + SIDE][:, ::-1] if f else padded[t:t + SIDE, l:l + SIDE] for t, l, f in OUTCOMES])
    out = np.concatenate([np.round(np.asarray(x)[:, 0] * 255).astype(np.uint8) for x, _ in loader])
    match = (out[:, None] == expected[None]).all(axis=(2, 3))
    assert (match.sum(axis=1) == 1).all()  # each output is exactly one legal crop
    return match.sum(axis=0)


def test_batched_and_per_sample_crops_and_flips_have_the_same_distribution():
    draws = 162 * 30
    counts = {}
    for pipeline, seed in (("batched", 1), ("per-sample", 2)):
        data, image = one_image_dataset(draws, seed)
        counts[pipeline] = outcome_counts(make_loader(data, 64, shuffle=True, pipeline=pipeline), image)
    a, b = counts["batched"].astype(float), counts["per-sample"].astype(float)
    assert a.sum() == b.sum() == draws and (a > 0).all() and (b > 0).all()
    # Chi-square test of homogeneity over the 162 outcomes (161 degrees of freedom):
    # 230 is beyond the 0.9999 quantile, so two draws of one distribution pass.
    expected = (a + b) / 2
    chi2 = (((a - expected) ** 2 + (b - expected) ** 2) / expected).sum()
    assert chi2 < 230, chi2
    # And the marginals a person would check: offsets uniform on 0..8 (mean 4), half flipped.
    for c in (a, b):
        p = c / c.sum()
        tops = sum(pi * t for pi, (t, _, _) in zip(p, OUTCOMES))
        lefts = sum(pi * l for pi, (_, l, _) in zip(p, OUTCOMES))
        flips = sum(pi for pi, (_, _, f) in zip(p, OUTCOMES) if f)
        assert abs(tops - 4) < 0.15 and abs(lefts - 4) < 0.15 and abs(flips - 0.5) < 0.03


def test_without_augmentation_both_pipelines_give_identical_batches():
    rng = np.random.default_rng(3)
    transform = BatchTransform(mean=(0.5,), std=(0.25,), out_size=32)
    data = ImageDataset(rng.integers(0, 256, (50, 1, 28, 28)).astype(np.uint8), rng.integers(0, 10, 50),
                        [str(i) for i in range(10)], DATASETS["mnist"], transform)
    batched = [(np.asarray(x), np.asarray(y)) for x, y in make_loader(data, 16, shuffle=False)]
    per_sample = [(np.asarray(x), np.asarray(y)) for x, y in make_loader(data, 16, shuffle=False, pipeline="per-sample")]
    assert len(batched) == len(per_sample) == 4
    for (xa, ya), (xb, yb) in zip(batched, per_sample):
        assert xa.dtype == xb.dtype == np.float32 and ya.dtype == yb.dtype == np.int64
        assert xa.shape == xb.shape and ya.shape == yb.shape == (len(ya), 1)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_evaluation_reads_every_sample_once_in_both_pipelines(pipeline):
    data, _ = one_image_dataset(70, seed=0, augment="none")
    labels = np.concatenate([np.asarray(y).ravel() for _, y in make_loader(data, 32, False, evaluation=True, pipeline=pipeline)])
    np.testing.assert_array_equal(labels, data.labels)


@pytest.mark.parametrize("pipeline", ["batched", "per-sample"])
def test_augmentation_is_the_same_for_the_same_seed_and_differs_for_another(pipeline):
    def draw(seed):
        data, _ = one_image_dataset(64, seed)
        return np.concatenate([np.asarray(x) for x, _ in make_loader(data, 16, shuffle=False, pipeline=pipeline)])

    first = draw(1)
    assert first.shape == (64, 1, SIDE, SIDE) and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1  # mean 0, std 1 on the 0-1 scale; the crop's padding is 0
    np.testing.assert_array_equal(first, draw(1))
    assert not np.array_equal(first, draw(2))


def test_unknown_pipeline_is_refused():
    data, _ = one_image_dataset(4, seed=0)
    with pytest.raises(ValueError, match="pipeline '.*' is not known; choose one of: batched, per-sample"):
        make_loader(data, 2, False, pipeline="gpu")


def test_loader_settings_reach_the_dataloader():
    data, _ = one_image_dataset(8, seed=0)
    loader = make_loader(data, 4, True, num_workers=0, prefetch_factor=3, use_shared_memory=False, persistent_workers=True)
    assert (loader.num_workers, loader.prefetch_factor, loader.use_shared_memory) == (0, 3, False)


@pytest.mark.slow
def test_the_runner_builds_the_configured_pipeline_and_trains(tmp_path):
    from hapi_runner import Runner

    common = dict(dataset="synthetic", synthetic_like="cifar10", synthetic_size=32, batch_size=16, epochs=1, threads="1",
                  verbose=0, export=False, visualdl=False)
    runner = Runner(TrainConfig(pipeline="per-sample", save_dir=str(tmp_path / "a"), **common))
    assert runner.train_loader.collate_fn is _sample_collate and runner.num_workers == 0
    (x, y), = [(np.asarray(x), np.asarray(y)) for x, y in runner.eval_loader]  # 8 eval images: one batch
    assert x.shape == (8, 3, 32, 32) and x.dtype == np.float32 and y.shape == (8, 1) and y.dtype == np.int64
    spec = runner.eval_data.spec
    mean, std = (np.asarray(v, np.float32).reshape(-1, 1, 1) for v in (spec.mean, spec.std))
    np.testing.assert_allclose(x, (runner.eval_data.images / np.float32(255) - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y.ravel(), runner.eval_data.labels)
    final = runner.fit()["final_eval"]
    assert np.isfinite(final["loss"]) and 0 <= final["acc_top1"] <= final["acc_top5"] <= 1
    assert abs(final["acc_top1"] * 8 - round(final["acc_top1"] * 8)) < 1e-6  # a count of the 8 images
    assert isinstance(Runner(TrainConfig(save_dir=str(tmp_path / "b"), **common)).train_loader.collate_fn, _BatchCollate)


@pytest.mark.parametrize("values, match", [
    ({"pipeline": "gpu"}, "pipeline 'gpu' is not known"),
    ({"amp_dtype": "fp8"}, "amp_dtype 'fp8' is not known"),
    ({"prefetch_factor": 0}, "prefetch_factor must be >= 1"),
    ({"persistent_workers": "yes"}, "persistent_workers must be true or false"),
])
def test_bad_pipeline_and_amp_values(values, match):
    from hapi_runner import UsageError

    with pytest.raises(UsageError, match=match):
        TrainConfig(**values)


def test_default_workers_and_gpu_flags_on_the_cpu():
    assert default_num_workers("cpu") == 0
    assert 1 <= default_num_workers("gpu:0") <= 4
    assert configure_gpu_flags("cpu", tuning=True, amp=True) == {}


def test_amp_configs_and_dtype():
    assert amp_configs(None) is None
    assert amp_configs("O2", "float16") == {"level": "O2"}
    assert amp_configs("O2", "bfloat16") == {"level": "O1", "init_loss_scaling": 1.0, "use_dynamic_loss_scaling": False}
    network = paddle.vision.models.LeNet()
    model = paddle.Model(network, paddle.static.InputSpec([None, 1, 28, 28], "float32", "image"),
                         paddle.static.InputSpec([None, 1], "int64", "label"))
    model.prepare(paddle.optimizer.Momentum(0.01, parameters=network.parameters()), paddle.nn.CrossEntropyLoss(),
                  amp_configs=amp_configs("O2", "bfloat16"))
    assert amp_dtype_of(model) == "float16"
    set_amp_dtype(model, "O2", "bfloat16")
    assert amp_dtype_of(model) == "bfloat16" and amp_level_of(model) == "O2"
