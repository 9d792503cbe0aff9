"""The project's cross-entropy against hand computations: label smoothing, class weights, soft targets, fillers."""

import numpy as np
import paddle
import pytest

from hapi_runner.datasets.pipeline import FILLER_LABEL
from hapi_runner.errors import UsageError
from hapi_runner.training.losses import SmoothedCrossEntropy, build_loss

C = 5


def _neg_log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return -(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))


def _hand_hard(logits, labels, eps, weight=None):
    """torch's CrossEntropyLoss(weight=, label_smoothing=) for class indices, written out term by term."""
    nlp = _neg_log_softmax(logits.astype(np.float64))
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    num = den = 0.0
    for i, y in enumerate(labels):
        if y == FILLER_LABEL:
            continue
        num += (1 - eps) * w[y] * nlp[i, y] + eps / C * sum(w[k] * nlp[i, k] for k in range(C))
        den += w[y]
    return num / den


def _hand_soft(logits, targets, eps, weight=None):
    nlp = _neg_log_softmax(logits.astype(np.float64))
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    q = (1 - eps) * targets + eps / C
    return float((w * q * nlp).sum() / (w * targets).sum())


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, size=(8, C)).astype(np.float32)
    labels = rng.integers(0, C, size=8)
    return logits, labels


@pytest.mark.smoke
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0, 1.5]])
def test_hard_labels_match_the_hand_computation(batch, eps, weight):
    logits, labels = batch
    loss = SmoothedCrossEntropy(eps, weight)
    value = float(loss(paddle.to_tensor(logits), paddle.to_tensor(labels.reshape(-1, 1))))
    np.testing.assert_allclose(value, _hand_hard(logits, labels, eps, weight), rtol=1e-6)


def test_smoothing_is_timms_formula(batch):
    logits, labels = batch
    nlp = _neg_log_softmax(logits.astype(np.float64))
    expected = 0.9 * nlp[np.arange(8), labels].mean() + 0.1 * nlp.mean(axis=1).mean()
    value = float(SmoothedCrossEntropy(0.1)(paddle.to_tensor(logits), paddle.to_tensor(labels.reshape(-1, 1))))
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_without_smoothing_it_is_paddles_cross_entropy(batch):
    logits, labels = batch
    args = paddle.to_tensor(logits), paddle.to_tensor(labels.reshape(-1, 1))
    weight = [1.0, 2.0, 0.5, 3.0, 1.5]
    np.testing.assert_allclose(float(SmoothedCrossEntropy()(*args)), float(paddle.nn.CrossEntropyLoss()(*args)), rtol=1e-6)
    np.testing.assert_allclose(float(SmoothedCrossEntropy(0.0, weight)(*args)),
                               float(paddle.nn.CrossEntropyLoss(weight=paddle.to_tensor(weight))(*args)), rtol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0, 1.5]])
def test_soft_targets_match_the_hand_computation(batch, eps, weight):
    logits, labels = batch
    rng = np.random.default_rng(4)
    lam = 0.7
    onehot = np.eye(C)[labels]
    targets = (lam * onehot + (1 - lam) * onehot[::-1]).astype(np.float32)
    value = float(SmoothedCrossEntropy(eps, weight)(paddle.to_tensor(logits), paddle.to_tensor(targets)))
    np.testing.assert_allclose(value, _hand_soft(logits, targets, eps, weight), rtol=1e-6)
    # Any distribution rows, not only mixtures of two labels.
    random_rows = rng.dirichlet(np.ones(C), size=8).astype(np.float32)
    value = float(SmoothedCrossEntropy(eps, weight)(paddle.to_tensor(logits), paddle.to_tensor(random_rows)))
    np.testing.assert_allclose(value, _hand_soft(logits, random_rows, eps, weight), rtol=1e-6)


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5, 3.0, 1.5]])
def test_a_one_hot_soft_target_is_the_hard_label(batch, weight):
    logits, labels = batch
    loss = SmoothedCrossEntropy(0.1, weight)
    hard = float(loss(paddle.to_tensor(logits), paddle.to_tensor(labels.reshape(-1, 1))))
    soft = float(loss(paddle.to_tensor(logits), paddle.to_tensor(np.eye(C, dtype=np.float32)[labels])))
    np.testing.assert_allclose(soft, hard, rtol=1e-6)


def test_evaluation_skips_fillers(batch):
    logits, labels = batch
    labels = labels.copy()
    labels[5:] = FILLER_LABEL
    loss = SmoothedCrossEntropy(0.1, [1.0, 2.0, 0.5, 3.0, 1.5])
    with paddle.no_grad():
        value = float(loss(paddle.to_tensor(logits), paddle.to_tensor(labels.reshape(-1, 1))))
        alone = float(loss(paddle.to_tensor(logits[5:]), paddle.to_tensor(labels[5:].reshape(-1, 1))))
    np.testing.assert_allclose(value, _hand_hard(logits, labels, 0.1, [1.0, 2.0, 0.5, 3.0, 1.5]), rtol=1e-6)
    assert alone == 0.0


def test_the_gradient_is_the_smoothed_target_gap(batch):
    logits, labels = batch
    x = paddle.to_tensor(logits, stop_gradient=False)
    SmoothedCrossEntropy(0.1)(x, paddle.to_tensor(labels.reshape(-1, 1))).backward()
    p = np.exp(-_neg_log_softmax(logits.astype(np.float64)))
    q = 0.9 * np.eye(C)[labels] + 0.1 / C
    np.testing.assert_allclose(x.grad.numpy(), (p - q) / 8, atol=1e-6)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, float("nan"), True, "0.1"])
def test_bad_smoothing_is_refused(eps):
    with pytest.raises(UsageError, match="label_smoothing must be"):
        build_loss(eps)


@pytest.mark.parametrize("weight", [[], [1.0, 0.0, 1.0], [1.0, -2.0], [float("inf")]])
def test_bad_class_weights_are_refused(weight):
    with pytest.raises(UsageError, match="class weights must be finite numbers > 0"):
        build_loss(0.0, weight)


def test_class_weight_count_must_match_the_model(batch):
    logits, labels = batch
    with pytest.raises(UsageError, match="3 given, the model has 5 classes"):
        build_loss(0.0, [1.0, 1.0, 1.0])(paddle.to_tensor(logits), paddle.to_tensor(labels.reshape(-1, 1)))


def test_soft_targets_travel_through_hapi_and_accuracy_reads_the_dominant_label():
    """train_batch passes [N, C] float labels to the loss as given; Accuracy takes their argmax."""
    paddle.seed(0)
    net = paddle.nn.Linear(4, C)
    model = paddle.Model(net, inputs=paddle.static.InputSpec([None, 4], "float32", "x"),
                         labels=paddle.static.InputSpec([None, 1], "int64", "label"))
    model.prepare(paddle.optimizer.SGD(0.0, parameters=net.parameters()), build_loss(0.1),
                  paddle.metric.Accuracy(topk=(1,)))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    with paddle.no_grad():
        predicted = net(paddle.to_tensor(x)).numpy().argmax(axis=1)
    dominant = np.where(np.arange(6) < 3, predicted, (predicted + 1) % C)
    targets = (0.6 * np.eye(C)[dominant] + 0.4 * np.eye(C)[(dominant + 2) % C]).astype(np.float32)
    loss, metrics = model.train_batch([x], [targets])
    assert metrics[0] == pytest.approx(0.5)
    with paddle.no_grad():
        expected = _hand_soft(net(paddle.to_tensor(x)).numpy(), targets, 0.1)
    np.testing.assert_allclose(float(np.ravel(loss[0])[0]), expected, rtol=1e-6)


def test_build_loss_keeps_paddles_loss_when_nothing_needs_more():
    assert type(build_loss()) is paddle.nn.CrossEntropyLoss
    assert isinstance(build_loss(0.1), SmoothedCrossEntropy)
    assert isinstance(build_loss(soft_targets=True), SmoothedCrossEntropy)
    assert isinstance(build_loss(0.0, [1.0, 2.0]), SmoothedCrossEntropy)
