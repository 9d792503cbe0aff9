"""hapi_runner.training.metrics against hand computations, known small cases, and scikit-learn where it is installed."""

import importlib.util
import itertools

import numpy as np
import pytest

from hapi_runner.training import metrics
from hapi_runner.errors import UsageError


def one_hot_probs(predicted, num_classes, confidence=0.9):
    """Probabilities whose argmax is ``predicted``."""
    probs = np.full((len(predicted), num_classes), (1 - confidence) / (num_classes - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


# Three classes, worked out by hand:
#   true 0: predicted 0, 0, 1        true 1: predicted 1, 1, 1, 2        true 2: predicted 0
LABELS = [0, 0, 0, 1, 1, 1, 1, 2]
PREDICTED = [0, 0, 1, 1, 1, 1, 2, 0]


def test_confusion_matrix_counts_rows_as_true_class():
    confusion = metrics.confusion_matrix(LABELS, PREDICTED, 3)
    assert confusion.tolist() == [[2, 1, 0], [0, 3, 1], [1, 0, 0]]


def test_per_class_scores_match_hand_computation():
    scores = metrics.per_class_scores(metrics.confusion_matrix(LABELS, PREDICTED, 3), ["a", "b", "c"])
    # precision: 0 -> 2/3, 1 -> 3/4, 2 -> 0/1; recall: 0 -> 2/3, 1 -> 3/4, 2 -> 0/1
    assert scores["precision"] == pytest.approx([2 / 3, 3 / 4, 0.0])
    assert scores["recall"] == pytest.approx([2 / 3, 3 / 4, 0.0])
    assert scores["f1"] == pytest.approx([2 / 3, 3 / 4, 0.0])
    assert scores["support"] == [3, 4, 1]
    assert scores["macro"]["f1"] == pytest.approx((2 / 3 + 3 / 4) / 3)
    assert scores["weighted"]["precision"] == pytest.approx((3 * 2 / 3 + 4 * 3 / 4) / 8)
    assert scores["notes"] == []  # class 2 was predicted once and exists once: defined, just 0


def test_f1_below_one_half_is_the_harmonic_mean():
    # class 0: 1 hit, predicted 4 times, 2 true samples: precision 1/4, recall 1/2 (precision + recall < 1)
    scores = metrics.per_class_scores([[1, 1], [3, 0]])
    assert (scores["precision"][0], scores["recall"][0]) == (0.25, 0.5)
    assert scores["f1"][0] == pytest.approx(2 * 0.25 * 0.5 / 0.75) and scores["f1"][1] == 0.0


def test_undefined_scores_count_as_zero_with_a_note():
    # class 2 never predicted and absent; class 1 predicted but absent
    confusion = metrics.confusion_matrix([0, 0, 0], [0, 1, 0], 3)
    scores = metrics.per_class_scores(confusion, ["cat", "dog", "eel"])
    assert scores["precision"] == pytest.approx([1.0, 0.0, 0.0])
    assert scores["recall"] == pytest.approx([2 / 3, 0.0, 0.0])
    assert scores["f1"][2] == 0.0
    assert any("precision of 'eel' is undefined" in n for n in scores["notes"])
    assert any("recall of 'dog' is undefined" in n for n in scores["notes"])
    assert not any("precision of 'dog'" in n for n in scores["notes"])


def test_most_confused_orders_by_count_and_gives_row_fraction():
    confusion = np.array([[5, 3, 0], [1, 7, 4], [0, 4, 2]])
    pairs = metrics.most_confused(confusion, ["a", "b", "c"], top=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [(1, 2, 4), (2, 1, 4), (0, 1, 3)]
    assert pairs[0]["fraction"] == pytest.approx(4 / 12)
    assert pairs[0]["true_name"] == "b" and pairs[0]["predicted_name"] == "c"
    assert metrics.most_confused(np.eye(3, dtype=int) * 4) == []


def test_average_ranks_share_ties():
    assert metrics.average_ranks([0.3, 0.1, 0.3, 0.5]).tolist() == [2.5, 1.0, 2.5, 4.0]


@pytest.mark.parametrize("positive, scores, expected", [
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # the classic example: 3 of 4 pairs ordered
    ([0, 1], [0.2, 0.9], 1.0),
    ([0, 1], [0.9, 0.2], 0.0),
    ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # every pair tied: one half each
    ([1, 0, 0], [0.5, 0.5, 0.1], 0.75),  # one tie (1/2) and one win out of 2 pairs
])
def test_roc_auc_known_cases(positive, scores, expected):
    assert metrics.roc_auc(np.array(positive, bool), scores) == pytest.approx(expected)


def test_roc_auc_equals_pairwise_mann_whitney_count():
    rng = np.random.default_rng(3)
    positive = rng.random(60) < 0.4
    scores = np.round(rng.random(60), 1)  # coarse: many ties
    pairs = [(p, n) for p, n in itertools.product(scores[positive], scores[~positive])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert metrics.roc_auc(positive, scores) == pytest.approx(expected)
    curve = metrics.roc_curve(positive, scores)
    # the trapezoidal area under the tie-grouped curve is the same number
    assert np.trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(expected)


def test_roc_auc_undefined_with_one_class():
    assert metrics.roc_auc(np.ones(4, bool), [0.1, 0.2, 0.3, 0.4]) is None


def test_roc_curve_points_by_hand():
    curve = metrics.roc_curve(np.array([0, 0, 1, 1], bool), [0.1, 0.4, 0.35, 0.8])
    assert curve["tpr"] == pytest.approx([0, 0.5, 0.5, 1.0, 1.0])
    assert curve["fpr"] == pytest.approx([0, 0, 0.5, 0.5, 1.0])
    assert curve["thresholds"][0] == float("inf") and curve["thresholds"][1:] == pytest.approx([0.8, 0.4, 0.35, 0.1])


@pytest.mark.parametrize("positive, sensitivity, specificity", [(1, 3 / 4, 4 / 6), (0, 4 / 6, 3 / 4)])
def test_sensitivity_specificity_follow_the_positive_class(positive, sensitivity, specificity):
    # class 1: 3 of 4 found; class 0: 4 of 6 kept
    confusion = np.array([[4, 2], [1, 3]])
    result = metrics.sensitivity_specificity(confusion, positive)
    assert result["sensitivity"] == pytest.approx(sensitivity)
    assert result["specificity"] == pytest.approx(specificity)


def test_classification_report_binary_section_and_none_for_more_classes():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    report = metrics.classification_report(labels, probs, ["healthy", "sick"])
    assert report["accuracy"] == 0.75
    assert report["binary"]["roc_auc"] == pytest.approx(0.75)
    assert report["binary"]["sensitivity"] == 0.5 and report["binary"]["specificity"] == 1.0
    three = metrics.classification_report(LABELS, one_hot_probs(PREDICTED, 3))
    assert three["binary"] is None
    assert three["confusion_matrix"] == [[2, 1, 0], [0, 3, 1], [1, 0, 0]]
    assert three["most_confused"][0]["true_name"] == "class_0"


@pytest.mark.parametrize("labels, probs, match", [
    ([0, 1], np.ones((3, 2)), "2 labels for 3 rows"),
    ([0, 1], np.ones(2), r"\[N, classes\]"),
    ([0, 5], np.ones((2, 3)), r"labels must lie in \[0, 2\]"),
    ([0.0, 1.0], np.ones((2, 2)), "integers"),
    ([], np.ones((0, 2)), "no samples"),
])
def test_bad_inputs_are_one_line_usage_errors(labels, probs, match):
    with pytest.raises(UsageError, match=match):
        metrics.classification_report(labels, probs)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn is not installed (pip install -e '.[test]' installs it)")
def test_agrees_with_sklearn():
    from sklearn import metrics as sk

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    labels[labels == 3] = 0  # class 3 absent: zero-division paths
    probs = rng.dirichlet(np.ones(4), 200)
    report = metrics.classification_report(labels, probs)
    predicted = probs.argmax(1)
    p, r, f, s = sk.precision_recall_fscore_support(labels, predicted, labels=range(4), zero_division=0)
    assert report["precision"] == pytest.approx(p) and report["recall"] == pytest.approx(r)
    assert report["f1"] == pytest.approx(f) and report["support"] == s.tolist()
    binary = labels[:100] % 2
    scores = np.round(probs[:100, 1], 2)
    assert metrics.roc_auc(binary == 1, scores) == pytest.approx(sk.roc_auc_score(binary, scores))


def test_the_text_table_has_a_row_per_class_and_the_binary_line():
    labels = [0, 1, 1, 0, 1]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    report = metrics.classification_report(labels, probs, ["neg", "pos"])
    lines = metrics.format_per_class(report, ["neg", "pos"]).splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "F1", "support"]
    assert lines[1].split() == ["neg", "0.5000", "0.5000", "0.5000", "2"] and lines[2].split()[-1] == "3"
    assert lines[3].split()[0] == "macro" and len(lines) == 5
    assert lines[4] == "positive class pos: ROC-AUC 0.8333, sensitivity 0.6667, specificity 0.5000"
    assert len({len(line) for line in lines[:3]}) == 1  # the columns line up


def test_without_roc_points_keeps_the_rates_and_leaves_the_report_whole():
    report = metrics.classification_report([0, 1, 1, 0], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]))
    kept = metrics.without_roc_points(report)
    assert "roc" not in kept["binary"] and kept["binary"]["roc_auc"] == report["binary"]["roc_auc"]
    assert "roc" in report["binary"] and metrics.without_roc_points(metrics.classification_report([0, 2], np.eye(3)[[0, 2]]))["binary"] is None
