"""What the first-epoch changes do to a network and an optimizer: zero-initialised residual scales, fan-out
convolutions, no weight decay on norms and biases, the short last batch."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from hapi_runner import TrainConfig
from hapi_runner.model.builtin import build_model
from hapi_runner.model.initialisation import initialise, kaiming_fan_out_convs, residual_blocks, zero_init_residual
from hapi_runner.training.decay import decay_exempt, decay_note, split_for_decay
from hapi_runner.training.optim import build_optimizer


class OwnBlock(nn.Layer):
    """A residual block of the user's own, torchvision style: conv-bn-relu-conv-bn plus a shortcut."""

    def __init__(self, channels, downsample=False):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels, 3, padding=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(channels)
        self.conv2 = nn.Conv2D(channels, channels, 3, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(channels)
        self.shortcut = nn.Sequential(nn.Conv2D(channels, channels, 1), nn.BatchNorm2D(channels)) if downsample else None

    def forward(self, x):
        out = self.bn2(self.conv2(nn.functional.relu(self.bn1(self.conv1(x)))))
        return nn.functional.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class OwnNet(nn.Layer):
    """A stem, two of the blocks above, a plain conv-bn pair that is no block, and a classifier."""

    def __init__(self, classes=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2D(1, 4, 3, padding=1), nn.BatchNorm2D(4))
        self.blocks = nn.Sequential(OwnBlock(4), OwnBlock(4, downsample=True))
        self.head = nn.Sequential(nn.Conv2D(4, 8, 1, groups=2), nn.BatchNorm2D(8))
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.head(self.blocks(self.stem(x))).mean(axis=[2, 3]))


def _scales_at_zero(network):
    return sorted(name for name, p in network.named_parameters() if name.endswith(".weight") and len(p.shape) == 1
                  and not np.any(p.numpy()))


@pytest.mark.parametrize("model, blocks", [("resnet18", 8), ("resnet50", 16)])
def test_zero_init_residual_zeroes_the_last_bn_of_every_paddle_vision_block(model, blocks):
    network = build_model(model, 10, 1, 32)
    changed = zero_init_residual(network)
    assert len(changed) == blocks
    last = "bn2" if model == "resnet18" else "bn3"
    assert _scales_at_zero(network) == sorted(f"{name}.{last}.weight" for name in changed)
    # A block starting as the identity: its output is relu(shortcut), whatever its convolutions hold.
    block = network.layer1[1]  # no downsample: the shortcut is x itself
    block.eval()
    x = paddle.randn([2, block.conv1.weight.shape[1], 8, 8])
    np.testing.assert_allclose(block(x).numpy(), nn.functional.relu(x).numpy(), atol=1e-6)


def test_zero_init_residual_recognises_the_users_blocks_and_leaves_the_rest():
    network = OwnNet()
    assert zero_init_residual(network) == ["blocks.0", "blocks.1"]
    # The closing bn2 of each block; not bn1, not the shortcut's BatchNorm, not the stem's or head's.
    assert _scales_at_zero(network) == ["blocks.0.bn2.weight", "blocks.1.bn2.weight"]


def test_no_residual_blocks_in_lenet_or_mobilenet():
    assert list(residual_blocks(build_model("lenet", 10, 1, 28))) == []
    assert zero_init_residual(build_model("mobilenet_v2", 10, 1, 32)) == []


def test_kaiming_fan_out_draws_from_two_over_fan_out():
    paddle.seed(3)
    wide = nn.Conv2D(16, 256, 3, bias_attr=True)
    network = nn.Sequential(wide, nn.Conv2D(256, 64, 1, groups=4), nn.Linear(4, 4))
    linear_before = network[2].weight.numpy().copy()
    wide.bias.set_value(paddle.ones_like(wide.bias))
    assert kaiming_fan_out_convs(network) == 2
    std = np.sqrt(2.0 / (256 * 3 * 3))  # fan-out: output channels x kernel area; Paddle's fan-in one is sqrt(2/144)
    assert wide.weight.numpy().std() == pytest.approx(std, rel=0.05)
    assert network[1].weight.numpy().std() == pytest.approx(np.sqrt(2.0 / 64), rel=0.1)
    assert not np.any(wide.bias.numpy())
    np.testing.assert_array_equal(network[2].weight.numpy(), linear_before)  # linear layers are not convolutions


def test_initialise_follows_the_config_and_leaves_pretrained_runs_alone():
    network = OwnNet()
    before = {k: v.numpy().copy() for k, v in network.state_dict().items()}
    assert initialise(network, TrainConfig(pretrained="weights.pdparams")) == ""
    assert all(np.array_equal(before[k], v.numpy()) for k, v in network.state_dict().items())
    assert initialise(network, TrainConfig(zero_init_residual=False)) == ""
    assert initialise(OwnNet(), TrainConfig()) == "initialisation: zero-initialised the last BatchNorm scale of 2 residual blocks"
    note = initialise(network, TrainConfig(conv_init="kaiming-fan-out"))
    assert note == ("initialisation: Kaiming-normal (fan-out) weights for 7 convolutions; "
                    "zero-initialised the last BatchNorm scale of 2 residual blocks")


def test_a_network_without_batch_norm_keeps_paddles_initialisation_and_decay():
    lenet = build_model("lenet", 10, 1, 28)
    before = {k: v.numpy().copy() for k, v in lenet.state_dict().items()}
    assert initialise(lenet, TrainConfig()) == ""
    assert all(np.array_equal(before[k], v.numpy()) for k, v in lenet.state_dict().items())
    exempting = TrainConfig(decay_norm_and_bias=False)
    assert decay_exempt(lenet, lenet.parameters(), exempting) == []
    resnet = build_model("resnet18", 10, 1, 32)
    assert len(decay_exempt(resnet, resnet.parameters(), exempting)) == 2 * 20 + 1  # 20 BatchNorms, the fc bias
    assert decay_exempt(resnet, resnet.parameters(), TrainConfig(decay_norm_and_bias=False, weight_decay=0.0)) == []
    assert decay_exempt(resnet, resnet.parameters(), TrainConfig()) == []  # the default decays every parameter


def test_conv_init_is_checked():
    with pytest.raises(Exception, match="conv_init.*kaiming-fan-out"):
        TrainConfig(conv_init="xavier")


def test_split_for_decay_exempts_norms_and_biases():
    network = OwnNet()
    decayed, exempt = split_for_decay(network.parameters())
    names = {id(p): n for n, p in network.named_parameters()}
    assert sorted(names[id(p)] for p in decayed) == [
        "blocks.0.conv1.weight", "blocks.0.conv2.weight", "blocks.1.conv1.weight", "blocks.1.conv2.weight",
        "blocks.1.shortcut.0.weight", "fc.weight", "head.0.weight", "stem.0.weight"]
    exempt_names = {names[id(p)] for p in exempt}
    assert {"fc.bias", "stem.0.bias", "blocks.0.bn2.weight", "blocks.0.bn2.bias"} <= exempt_names
    assert not any(n.endswith(("_mean", "_variance")) for n in exempt_names)  # running statistics are not trained


@pytest.mark.parametrize("optimizer", ["momentum", "sgd", "adam", "adamw"])
@pytest.mark.parametrize("decay_all", [False, True])
def test_the_optimizer_decays_only_the_weights(optimizer, decay_all):
    """One step on a zero gradient: only decay moves a parameter, so what moved was decayed."""
    paddle.seed(0)
    network = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1D(4))
    with paddle.no_grad():
        network[1].weight.set_value(paddle.full([4], 2.0))
        network[1].bias.set_value(paddle.full([4], 1.0))
        network[0].bias.set_value(paddle.full([4], 1.0))
    # BatchNorm's running mean and variance are parameters too in Paddle, but not trained ones.
    before = {n: p.numpy().copy() for n, p in network.named_parameters() if not p.stop_gradient}
    config = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.5, decay_norm_and_bias=decay_all)
    opt, _ = build_optimizer(config, network.parameters(), steps_per_epoch=1,
                             no_decay=decay_exempt(network, network.parameters(), config))
    (network(paddle.ones([2, 3])) * 0.0).sum().backward()
    opt.step()
    moved = sorted(n for n, p in network.named_parameters() if n in before and not np.allclose(p.numpy(), before[n]))
    assert moved == (sorted(before) if decay_all else ["0.weight"])


def test_runner_drops_the_short_last_batch_of_a_batch_norm_network_only_when_asked(tmp_path):
    from hapi_runner import Runner

    common = dict(model="lenet", dataset="synthetic", synthetic_like="mnist", synthetic_size=100, batch_size=32,
                  epochs=1, threads=1, save_dir=str(tmp_path))
    batches = lambda network=None, **changes: len(Runner(TrainConfig(**{**common, **changes}), network=network).train_loader)
    assert batches(OwnNet(10)) == 3  # 100 = 3 x 32 + 4: the 4 wait for the next epoch's shuffle
    assert batches(OwnNet(10), drop_last=False) == 4
    assert batches(OwnNet(10), batch_size=128) == 1  # fewer images than a batch: kept
    assert batches() == 4  # LeNet has no BatchNorm: trained as before


def test_a_run_applies_the_changes_to_the_users_network_file_and_records_them(tmp_path, capsys):
    import json

    from hapi_runner import Runner
    from usernets import RESNET, write_net

    path = write_net(tmp_path, "net.py", RESNET)
    config = TrainConfig(model=f"{path}:ResNet", model_kwargs={"layers": [1, 2]}, conv_init="kaiming-fan-out",
                         decay_norm_and_bias=False, dataset="synthetic",
                         synthetic_like="mnist", synthetic_size=64, batch_size=32, epochs=1, threads=1,
                         save_dir=str(tmp_path / "run"), verbose=0, report=False, export=False, visualdl=False)
    runner = Runner(config)
    assert runner.initialisation.endswith("zero-initialised the last BatchNorm scale of 3 residual blocks")
    assert _scales_at_zero(runner.network) == ["blocks.0.bn3.weight", "blocks.1.bn3.weight", "blocks.2.bn3.weight"]
    assert runner.network.out.bias.regularizer is not None and runner.network.out.weight.regularizer is None
    runner.fit()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["zero_init_residual"], saved["conv_init"], saved["decay_norm_and_bias"], saved["drop_last"]) == \
        (True, "kaiming-fan-out", False, True)
    out = capsys.readouterr().out
    assert "hapi_runner: initialisation: Kaiming-normal (fan-out) weights for 12 convolutions" in out
    exempt = len(decay_exempt(runner.network, runner.network.parameters(), config))
    assert exempt > 0 and f"hapi_runner: weight decay: {exempt} BatchNorm scales and shifts and biases left out" in out


def test_the_decay_note_says_what_the_exemption_left_out_or_why_nothing():
    asked = TrainConfig(decay_norm_and_bias=False)
    resnet = build_model("resnet18", 10, 1, 32)
    assert decay_note(decay_exempt(resnet, resnet.parameters(), asked), asked).startswith("weight decay: 41 BatchNorm")
    lenet = build_model("lenet", 10, 1, 28)
    assert "left nothing out (it applies to networks with BatchNorm)" in decay_note(decay_exempt(lenet, lenet.parameters(), asked), asked)
    assert decay_note([], TrainConfig()) == ""  # not asked for
    assert decay_note([], TrainConfig(decay_norm_and_bias=False, weight_decay=0.0)) == ""  # no decay to leave out


def test_a_network_handed_to_the_runner_keeps_its_weights(tmp_path):
    from hapi_runner import Runner

    network = OwnNet(classes=10)
    before = {k: v.numpy().copy() for k, v in network.state_dict().items()}
    runner = Runner(TrainConfig(dataset="synthetic", synthetic_like="mnist", synthetic_size=64, epochs=1, threads=1,
                                save_dir=str(tmp_path)), network=network)
    assert runner.initialisation == ""
    assert all(np.array_equal(before[k], v.numpy()) for k, v in network.state_dict().items())


def test_a_run_folder_from_before_these_fields_resumes_as_it_trained(tmp_path):
    import json

    from hapi_runner.config.train_config import load_run_config

    old = {k: v for k, v in TrainConfig().to_dict().items()
           if k not in ("zero_init_residual", "conv_init", "decay_norm_and_bias", "drop_last")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = load_run_config(str(tmp_path))
    assert (config.zero_init_residual, config.conv_init, config.decay_norm_and_bias, config.drop_last) == \
        (False, "paddle", True, False)
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    assert load_run_config(str(tmp_path)).drop_last is True


def test_paddles_batch_norm_momentum_is_the_share_kept_of_the_running_mean():
    """Paddle's momentum 0.9 is PyTorch's 0.1: running = 0.9 * running + 0.1 * batch, so no setting is needed."""
    norm = nn.BatchNorm2D(1)
    norm.train()
    norm(paddle.full([4, 1, 2, 2], 5.0))
    assert float(norm.state_dict()["_mean"].numpy()[0]) == pytest.approx(0.5)
