"""The GPU paths, tested on the CPU: what runs under AMP, TensorRT's limits, cuDNN flags, device choice, the export check.

No GPU is needed. Where a path needs CUDA, Paddle's device queries and
``paddle.set_flags`` are patched and the decision is tested; where Paddle's
CPU build does the real work (exports of half-precision weights, the
comparison of logits) it runs for real. Paddle's AMP casts nothing on the
CPU (``auto_cast`` and ``decorate`` warn and do nothing there), so the
evaluation wrapper is tested with a recording ``auto_cast``.
"""

import contextlib
import logging

import numpy as np
import paddle
import pytest
from paddle import nn

from hapi_runner.training import environment
from hapi_runner.deploy.export import compare_logits, export_agrees, export_model, float32_network
from hapi_runner.deploy.inference import InferenceModel, check_tensorrt_format, create_predictor
from hapi_runner.deploy.layout import build_sidecar
from hapi_runner.errors import HapiRunnerError, UsageError
from hapi_runner.callbacks.checkpoint import ModelCheckpoint
from hapi_runner.paddle_compat import GRAD_SCALER_KEY, evaluate_under_amp
from hapi_runner.runfolder.resume import restore
from hapi_runner.paddle_compat import grad_scaler_of, restore_grad_scaler

SHAPE = [1, 8, 8]
LAUNCHER_ENV = ("PADDLE_TRAINER_ID", "PADDLE_TRAINERS_NUM", "PADDLE_LOCAL_SIZE", "FLAGS_selected_gpus")


class TinyNet(nn.Layer):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2D(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2D(4)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        x = nn.functional.relu(self.bn(self.conv(x)))
        return self.fc(paddle.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


_AMP_STATE: dict = {}


class RecordingNet(TinyNet):
    """Notes, for every forward pass, the ``auto_cast`` it ran under (None: none)."""

    def __init__(self):
        super().__init__()
        self.amp_seen = []

    def forward(self, x):
        self.amp_seen.append(dict(_AMP_STATE) if _AMP_STATE else None)
        return super().forward(x)


@contextlib.contextmanager
def recording_auto_cast(enable=True, custom_white_list=None, custom_black_list=None, level="O1", dtype="float16", **_):
    _AMP_STATE.update(enable=enable, level=level, dtype=dtype)
    try:
        yield
    finally:
        _AMP_STATE.clear()


class Images(paddle.io.Dataset):
    def __init__(self, n=8):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((n, *SHAPE)).astype("float32")
        self.y = rng.integers(0, 3, (n, 1)).astype("int64")

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __len__(self):
        return len(self.x)


def prepared_model(network, amp_configs=None):
    model = paddle.Model(network, inputs=paddle.static.InputSpec([None, *SHAPE], "float32", "image"),
                         labels=paddle.static.InputSpec([None, 1], "int64", "label"))
    model.prepare(paddle.optimizer.Momentum(0.1, parameters=network.parameters()), nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy(), amp_configs=amp_configs)
    return model


# -- 1. AMP O2: evaluation, prediction and export ------------------------------------------------
@pytest.mark.parametrize("level,dtype", [("O2", "bfloat16"), ("O2", "float16"), ("O1", "float16")])
def test_evaluate_and_predict_run_under_the_runs_auto_cast(monkeypatch, level, dtype):
    monkeypatch.setattr(paddle.amp, "auto_cast", recording_auto_cast)
    network = RecordingNet()
    model = prepared_model(network)
    evaluate_under_amp(model, level, dtype)
    model.evaluate(Images(), batch_size=4, verbose=0)
    model.predict(Images(), batch_size=4, verbose=0)
    assert len(network.amp_seen) == 4  # two evaluation and two prediction batches
    assert network.amp_seen == [{"enable": True, "level": level, "dtype": dtype}] * 4


def test_without_amp_evaluation_stays_bare(monkeypatch):
    monkeypatch.setattr(paddle.amp, "auto_cast", recording_auto_cast)
    network = RecordingNet()
    model = prepared_model(network)
    evaluate_under_amp(model, None)
    model.evaluate(Images(), batch_size=4, verbose=0)
    assert network.amp_seen == [None, None]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_export_of_half_precision_weights_is_a_float32_graph(tmp_path, dtype):
    # What AMP O2 leaves: conv and linear weights in half precision (batch norm kept float32, as decorate does).
    network = TinyNet()
    network.conv.to(dtype=dtype)
    network.fc.to(dtype=dtype)
    batch = np.random.default_rng(1).standard_normal((16, *SHAPE)).astype("float32")
    report = export_model(network, str(tmp_path / "inference"), SHAPE, build_sidecar([0.5], [0.25], SHAPE), batch)
    assert report["passed"] and report["top1_exact_agreement"] == 1.0
    assert network.conv.weight.dtype == getattr(paddle, dtype)  # the trained network is left as it is
    reference = float32_network(network)
    reference.eval()
    with paddle.no_grad():
        expected = reference(paddle.to_tensor(batch)).numpy()
    np.testing.assert_allclose(InferenceModel(str(tmp_path / "inference")).predict(batch), expected, atol=1e-4)


def test_float32_network_is_the_network_itself_when_already_float32():
    network = TinyNet()
    assert float32_network(network) is network


# -- 2. TensorRT on a PIR graph ------------------------------------------------------------------
def test_tensorrt_is_refused_for_a_pir_graph_and_allowed_for_pdmodel(tmp_path):
    with pytest.raises(HapiRunnerError, match=r"TensorRT runs on \.pdmodel graphs only, and .*model\.json is a PIR graph"):
        check_tensorrt_format(str(tmp_path / "model.json"))
    check_tensorrt_format(str(tmp_path / "model.pdmodel"))  # the ProgramDesc path, where the TensorRT pass runs


def test_tensorrt_on_an_exported_pir_graph_says_why_before_anything_else(tmp_path):
    folder = str(tmp_path / "inference")
    export_model(TinyNet(), folder, SHAPE, build_sidecar([0.5], [0.25], SHAPE))
    if InferenceModel(folder).file_format != "pir":
        pytest.skip("this Paddle exports .pdmodel, where TensorRT is still offered")
    with pytest.raises(HapiRunnerError, match="is a PIR graph"):
        create_predictor(folder, "gpu", tensorrt="fp16")
    with pytest.raises(UsageError, match="TensorRT runs on a GPU only"):
        create_predictor(folder, "cpu", tensorrt="fp16")


# -- 3. cuDNN determinism ------------------------------------------------------------------------
@pytest.fixture
def set_flags(monkeypatch):
    calls = []
    monkeypatch.setattr(paddle, "set_flags", lambda flags: calls.append(dict(flags)))
    monkeypatch.delenv("FLAGS_cudnn_deterministic", raising=False)
    return calls


def _cpu_build_flags(monkeypatch, deterministic=None):
    """``paddle.get_flags`` as a GPU build answers it (``deterministic`` set) or as the CPU build does (ValueError)."""
    def get_flags(names):
        if deterministic is None:
            raise ValueError("Flag FLAGS_cudnn_deterministic cannot get its value through this function.")
        return {"FLAGS_cudnn_deterministic": deterministic}

    monkeypatch.setattr(paddle, "get_flags", get_flags)


def test_default_gpu_flags_keep_the_exhaustive_search(set_flags, monkeypatch):
    _cpu_build_flags(monkeypatch, deterministic=False)
    assert environment.configure_gpu_flags("gpu:0", tuning=True) == {"FLAGS_cudnn_exhaustive_search": True}
    assert set_flags == [{"FLAGS_cudnn_exhaustive_search": True}]
    assert environment.configure_gpu_flags("cpu", tuning=True, deterministic=True) == {}


@pytest.mark.parametrize("how", ["option", "exported", "set_flags"])
def test_determinism_skips_the_exhaustive_search_and_says_so(set_flags, monkeypatch, caplog, how):
    _cpu_build_flags(monkeypatch, deterministic=True if how == "set_flags" else None)
    if how == "exported":
        monkeypatch.setenv("FLAGS_cudnn_deterministic", "1")
    with caplog.at_level(logging.WARNING, logger="hapi_runner"):
        flags = environment.configure_gpu_flags("gpu:0", tuning=True, amp=True, deterministic=how == "option")
    assert flags == {"FLAGS_cudnn_batchnorm_spatial_persistent": True, "FLAGS_cudnn_deterministic": True}
    assert set_flags == [flags]
    said = [r.getMessage() for r in caplog.records if "exhaustive" in r.getMessage()]
    assert said == ["cuDNN: deterministic algorithms asked for, so the exhaustive convolution search is skipped."]


def test_deterministic_without_tuning_sets_only_determinism(set_flags, monkeypatch):
    _cpu_build_flags(monkeypatch)
    assert environment.configure_gpu_flags("gpu:1", tuning=False, deterministic=True) == {"FLAGS_cudnn_deterministic": True}


# -- 4 and 5. Device choice: a GPU build without a usable card; the launcher's card -----------------
@pytest.fixture
def gpu_build(monkeypatch):
    """A GPU build of Paddle with four cards, as far as ``select_device`` can tell; returns the devices set."""
    chosen = []
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(paddle, "set_device", chosen.append)
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    return chosen


@pytest.mark.parametrize("error", [OSError, RuntimeError])
def test_gpu_build_whose_device_query_raises_falls_back_to_the_cpu(gpu_build, monkeypatch, error):
    def no_device():
        raise error("cudaGetDeviceCount failed: no CUDA-capable device is detected")

    monkeypatch.setattr(paddle.device.cuda, "device_count", no_device)
    assert environment.select_device("auto") == "cpu" and gpu_build == ["cpu"]
    with pytest.raises(HapiRunnerError, match=r"^a GPU was asked for, but none is visible .*--device cpu, without --gpu\)\.$") as info:
        environment.select_device("auto", require_gpu=True)
    assert isinstance(info.value.__cause__, error)


def test_one_process_launch_trains_on_the_launchers_card(gpu_build, monkeypatch):
    # python -m paddle.distributed.launch --devices 3 train.py: one process, FLAGS_selected_gpus=3.
    monkeypatch.setenv("PADDLE_TRAINER_ID", "0")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "1")
    monkeypatch.setenv("FLAGS_selected_gpus", "3")
    assert environment.select_device("auto") == "gpu:3"
    assert environment.select_device("gpu") == "gpu:3"
    assert gpu_build == ["gpu:3", "gpu:3"]


def test_multi_rank_launch_uses_each_ranks_card_and_refuses_an_explicit_index(gpu_build, monkeypatch):
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.setenv("FLAGS_selected_gpus", "1")
    assert environment.select_device("gpu") == "gpu:1"
    with pytest.raises(UsageError, match=r"--device gpu:2 names a card, but paddle.distributed.launch gives each process "
                                         r"its own \(FLAGS_selected_gpus=1 here\)"):
        environment.select_device("gpu:2")
    assert gpu_build == ["gpu:1"]


def test_without_the_launcher_an_explicit_index_is_the_card(gpu_build):
    assert environment.select_device("gpu:2") == "gpu:2"
    assert environment.select_device("gpu") == "gpu:0"
    with pytest.raises(HapiRunnerError, match=r"gpu:7 was asked for, but only 4 GPU\(s\) are visible"):
        environment.select_device("gpu:7")


# -- 6. The loss scaler in checkpoints -------------------------------------------------------------
class FakeScaler:
    """A loss scaler with a state: Paddle's GradScaler disables itself on the CPU, and its state is then empty."""

    def __init__(self, **configs):
        self.configs, self.state = configs, {}

    def state_dict(self):
        return dict(self.state)

    def load_state_dict(self, state):
        self.state = dict(state)


SCALER_STATE = {"scale": np.array([2048.0], np.float32), "incr_ratio": 2.0, "decr_ratio": 0.5, "incr_every_n_steps": 1000,
                "decr_every_n_nan_or_inf": 2, "incr_count": 123, "decr_count": 1, "use_dynamic_loss_scaling": True}


def checkpoint_of(model, directory):
    ckpt = ModelCheckpoint(str(directory))
    ckpt.set_model(model)
    ckpt.set_params({"epochs": 1, "metrics": ["loss", "acc_top1"]})
    ckpt.on_train_begin()
    return ckpt.save(1)


def test_the_loss_scaler_is_checkpointed_with_the_optimizer_and_restored(tmp_path, monkeypatch):
    monkeypatch.setattr(paddle.amp, "GradScaler", FakeScaler)  # what hapi (and the restore) make the scaler with
    trained = prepared_model(TinyNet(), amp_configs={"level": "O1", "init_loss_scaling": 32768})
    assert restore_grad_scaler(trained, SCALER_STATE)  # as if a float16 run's loss scale had come down to 2048
    folder = checkpoint_of(trained, tmp_path / "checkpoints")
    saved = paddle.load(f"{folder}/model.pdopt")
    assert saved[GRAD_SCALER_KEY]["incr_count"] == 123

    resumed = prepared_model(TinyNet(), amp_configs={"level": "O1", "init_loss_scaling": 32768})
    assert grad_scaler_of(resumed) is None  # hapi makes it at the first step, with the initial scale
    restore(resumed, folder)
    scaler = grad_scaler_of(resumed)
    assert isinstance(scaler, FakeScaler) and scaler.configs == {"init_loss_scaling": 32768}
    assert sorted(scaler.state) == sorted(SCALER_STATE)
    np.testing.assert_array_equal(scaler.state["scale"], [2048.0])
    assert isinstance(scaler.state["scale"], np.ndarray)  # GradScaler.load_state_dict reads scale[0] as a number
    assert {k: v for k, v in scaler.state.items() if k != "scale"} == {k: v for k, v in SCALER_STATE.items() if k != "scale"}

    without_amp = prepared_model(TinyNet())
    restore(without_amp, folder)  # a run resumed without AMP has nothing to scale
    assert getattr(without_amp, "_scaler", None) is None


def test_a_run_without_a_scaler_saves_plain_optimizer_state(tmp_path):
    model = prepared_model(TinyNet())
    folder = checkpoint_of(model, tmp_path / "checkpoints")
    assert GRAD_SCALER_KEY not in paddle.load(f"{folder}/model.pdopt")


# -- 7. The export check on a GPU ------------------------------------------------------------------
def _logits(rows):
    return np.array(rows, np.float32)


def test_a_near_tie_flip_on_the_gpu_passes():
    # Logit scale 10: the reference separates classes 0 and 1 by 0.05 (0.5% of the scale); TF32 flips them.
    expected = _logits([[5.0, 4.95, -10.0], [0.0, 8.0, 1.0]])
    actual = _logits([[4.97, 4.99, -10.01], [0.01, 8.02, 1.0]])
    on_gpu = compare_logits(expected, actual, device="gpu:0")
    assert on_gpu["top1_agreement"] == 1.0 and on_gpu["top1_exact_agreement"] == 0.5 and on_gpu["near_ties"] == 1
    assert export_agrees(on_gpu, 0.999)
    # On the CPU only summation order differs: a margin of 0.5% is no tie there.
    on_cpu = compare_logits(expected, actual, device="cpu")
    assert on_cpu["top1_agreement"] == 0.5 and not export_agrees(on_cpu, 0.999)


def test_a_real_disagreement_on_the_gpu_fails():
    expected = _logits([[5.0, 2.0, -10.0], [0.0, 8.0, 1.0]])
    actual = _logits([[2.0, 5.0, -10.0], [0.0, 8.0, 1.0]])  # a 3-logit margin (30% of the scale) turned over
    result = compare_logits(expected, actual, device="gpu")
    assert result["top1_agreement"] == 0.5 and result["near_ties"] == 0
    assert not export_agrees(result, 0.999)


def test_same_picks_with_logits_far_off_fail():
    expected = _logits([[5.0, 2.0, -10.0], [0.0, 8.0, 1.0]])
    actual = _logits([[5.0, 2.0, -4.0], [0.0, 8.0, 1.0]])  # every pick agrees, one logit is 6 (60% of the scale) off
    result = compare_logits(expected, actual, device="gpu")
    assert result["top1_agreement"] == 1.0 and result["max_abs_diff_allowed"] == pytest.approx(0.5)
    assert not export_agrees(result, 0.999)
