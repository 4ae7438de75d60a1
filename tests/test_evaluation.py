# SPDX-License-Identifier: Apache-2.0
"""Tests for flowids.evaluation: attack probability, verdicts, metrics, plots, Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.errors import DataError, UsageError
from flowids.evaluation import (
    attack_probability,
    binary_metrics,
    confusion_markdown,
    history_metrics,
    metrics_markdown,
    per_label_markdown,
    plot_confusion_matrix,
    plot_history_metric,
    plot_learning_curves,
    plot_roc,
    verdicts,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

METRIC_KEYS = {
    "n_flows",
    "n_benign",
    "n_attack",
    "threshold",
    "tn",
    "fp",
    "fn",
    "tp",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "false_alarms_per_10k_benign",
    "roc_auc",
    "pr_auc",
    "per_label",
    "notes",
}


@pytest.fixture
def shared_dir() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def softmax_case(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "cases" / "BR-23-softmax-metric-fixture.csv")


@pytest.fixture
def sigmoid_case(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "cases" / "BR-24-sigmoid-output-fixture.csv")


@pytest.fixture
def history() -> dict[str, list[float]]:
    return {
        "loss": [0.69, 0.41, 0.30],
        "precision_1": [0.50, 0.70, 0.80],
        "recall_1": [0.40, 0.60, 0.75],
        "val_loss": [0.60, 0.45, 0.38],
        "val_precision_1": [0.55, 0.66, 0.72],
        "val_recall_1": [0.35, 0.58, 0.70],
    }


def _assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000


# attack_probability


def test_softmax_outputs_give_attack_column(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    outputs = softmax_case[["p_benign", "p_attack"]].to_numpy()

    result = attack_probability(outputs)

    assert result.shape == (6,)
    np.testing.assert_array_equal(result, [0.1, 0.2, 0.6, 0.3, 0.8, 0.4])


def test_sigmoid_outputs_are_thresholded_not_argmaxed(sigmoid_case: pd.DataFrame) -> None:
    # case BR-24: sigmoid output fixture
    outputs = sigmoid_case[["p_attack"]].to_numpy()
    assert outputs.shape == (6, 1)

    probability = attack_probability(outputs)
    called = verdicts(probability, 0.5)

    # argmax over one column is 0 everywhere: every flow would read as benign
    assert outputs.argmax(axis=1).tolist() == [0, 0, 0, 0, 0, 0]
    assert called.dtype == np.int8
    assert called.tolist() == [0, 0, 1, 0, 1, 0]
    metrics = binary_metrics(sigmoid_case["y_true"].to_numpy(), outputs)
    assert (metrics["tn"], metrics["fp"], metrics["fn"], metrics["tp"]) == (3, 1, 1, 1)


def test_flat_outputs_pass_through() -> None:
    result = attack_probability(np.array([0.0, 0.25, 1.0], dtype=np.float32))

    assert result.dtype == np.float64
    assert result.tolist() == [0.0, 0.25, 1.0]


@pytest.mark.parametrize(
    ("outputs", "match"),
    [
        (np.zeros((4, 3)), r"shape \(4, 3\); expected \(n_flows, 2\)"),
        (np.zeros((2, 2, 2)), r"shape \(2, 2, 2\)"),
        (np.array([[0.5, 0.6], [0.2, 0.8]]), r"row 1 sums to 1\.1"),
        (np.array([0.2, 1.5]), r"outside \[0, 1\] \(first: 1\.5\)"),
        (np.array([[-0.5], [0.5]]), r"outside \[0, 1\] \(first: -0\.5\)"),
        (np.array([0.2, np.nan]), r"non-finite values \(first: nan\)"),
        (np.array([0.2, np.inf]), r"non-finite values \(first: inf\)"),
        (np.array(["x", "y"]), r"cannot read them as numbers"),
    ],
)
def test_attack_probability_refuses_bad_outputs(outputs: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        attack_probability(outputs)


# verdicts


def test_probability_at_threshold_counts_as_attack() -> None:
    probability = np.array([0.29, 0.3, 0.31])

    assert verdicts(probability, 0.3).tolist() == [0, 1, 1]
    assert verdicts(probability, 0.0).tolist() == [1, 1, 1]
    assert verdicts(probability, 1.0).tolist() == [0, 0, 0]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, math.nan, "high"])
def test_verdicts_refuse_bad_threshold(threshold: object) -> None:
    with pytest.raises(UsageError, match=r"expected a number in \[0, 1\]"):
        verdicts(np.array([0.5]), threshold)


# binary_metrics


def test_softmax_case_metrics(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    outputs = softmax_case[["p_benign", "p_attack"]].to_numpy()
    y_true = softmax_case["y_true"].to_numpy()

    metrics = binary_metrics(y_true, attack_probability(outputs), threshold=0.5)

    assert set(metrics) == METRIC_KEYS
    assert (metrics["n_flows"], metrics["n_benign"], metrics["n_attack"]) == (6, 4, 2)
    assert (metrics["tn"], metrics["fp"], metrics["fn"], metrics["tp"]) == (3, 1, 1, 1)
    assert metrics["threshold"] == 0.5
    assert metrics["precision"] == 0.5
    assert metrics["recall"] == 0.5
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert round(metrics["accuracy"], 3) == 0.667
    assert metrics["roc_auc"] == pytest.approx(0.875)
    # F1 = 2 tp / (2 tp + fp + fn) = 2 / 4
    assert metrics["f1"] == pytest.approx(0.5)
    # FPR = fp / (fp + tn) = 1 / 4; per 10 000 benign flows: 2500
    assert metrics["false_positive_rate"] == 0.25
    assert metrics["false_alarms_per_10k_benign"] == 2500.0
    # ranked by attack probability: 0.8 (attack), 0.6 (benign), 0.4 (attack), ...
    # average precision = 0.5 * 1 (recall 0 -> 0.5 at precision 1)
    #                   + 0.5 * 2/3 (recall 0.5 -> 1 at precision 2/3) = 5/6
    assert metrics["pr_auc"] == pytest.approx(5 / 6)
    assert metrics["per_label"] is None
    assert metrics["notes"] == []


def test_softmax_outputs_accepted_directly(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    outputs = softmax_case[["p_benign", "p_attack"]].to_numpy()
    y_true = softmax_case["y_true"].to_numpy()

    from_outputs = binary_metrics(y_true, outputs)
    from_column = binary_metrics(y_true, outputs[:, 1])

    assert from_outputs == from_column
    # precision over the attack column only, not averaged over both one-hot columns
    assert from_outputs["precision"] == 0.5


def test_metrics_are_json_safe(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    y_true = softmax_case["y_true"].to_numpy()
    labels = ["BENIGN"] * 4 + ["DoS Hulk", "PortScan"]

    metrics = binary_metrics(y_true, softmax_case["p_attack"].to_numpy(), labels=labels)

    assert json.loads(json.dumps(metrics)) == metrics
    for key in ("n_flows", "tn", "fp", "fn", "tp"):
        assert type(metrics[key]) is int
    for key in ("accuracy", "precision", "roc_auc", "pr_auc", "threshold"):
        assert type(metrics[key]) is float


def test_per_label_breakdown(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    y_true = softmax_case["y_true"].to_numpy()
    labels = np.array(["BENIGN"] * 4 + ["DoS Hulk", "PortScan"])

    metrics = binary_metrics(y_true, softmax_case["p_attack"].to_numpy(), labels=labels)

    assert metrics["per_label"] == {
        "BENIGN": {"n_flows": 4, "detected": 1, "false_positive_rate": 0.25},
        "DoS Hulk": {"n_flows": 1, "detected": 1, "recall": 1.0},
        "PortScan": {"n_flows": 1, "detected": 0, "recall": 0.0},
    }


def test_all_benign_flows() -> None:
    y_true = np.zeros(4, dtype=int)
    probability = np.array([0.1, 0.2, 0.3, 0.4])

    metrics = binary_metrics(y_true, probability)

    assert (metrics["tn"], metrics["fp"], metrics["fn"], metrics["tp"]) == (4, 0, 0, 0)
    assert metrics["accuracy"] == 1.0
    assert metrics["precision"] is None
    assert metrics["recall"] is None
    assert metrics["f1"] is None
    assert metrics["false_positive_rate"] == 0.0
    assert metrics["false_alarms_per_10k_benign"] == 0.0
    assert metrics["roc_auc"] is None
    assert metrics["pr_auc"] is None
    assert metrics["notes"] == [
        "precision is undefined: no flow was called attack",
        "recall is undefined: there are no attack flows",
        "f1 is undefined: no attack flows and none called",
        "roc_auc is undefined: all flows are benign, it needs both classes",
        "pr_auc is undefined: there are no attack flows",
    ]


def test_all_benign_with_a_false_alarm() -> None:
    metrics = binary_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.9]))

    assert metrics["precision"] == 0.0
    assert metrics["f1"] == 0.0
    assert metrics["false_positive_rate"] == 0.25
    assert metrics["false_alarms_per_10k_benign"] == 2500.0
    assert metrics["roc_auc"] is None


def test_all_attack_flows() -> None:
    metrics = binary_metrics(np.ones(3, dtype=int), np.array([0.9, 0.7, 0.2]))

    assert (metrics["tn"], metrics["fp"], metrics["fn"], metrics["tp"]) == (0, 0, 1, 2)
    assert metrics["precision"] == 1.0
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["false_positive_rate"] is None
    assert metrics["false_alarms_per_10k_benign"] is None
    assert metrics["roc_auc"] is None
    assert metrics["pr_auc"] == 1.0
    assert "roc_auc is undefined: all flows are attack, it needs both classes" in metrics["notes"]


def test_perfect_separation() -> None:
    y_true = np.array([0, 0, 0, 1, 1])
    probability = np.array([0.0, 0.1, 0.49, 0.51, 1.0])

    metrics = binary_metrics(y_true, probability)

    assert (metrics["tn"], metrics["fp"], metrics["fn"], metrics["tp"]) == (3, 0, 0, 2)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
        assert metrics[key] == 1.0
    assert metrics["false_positive_rate"] == 0.0
    assert metrics["notes"] == []


def test_threshold_changes_verdicts(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    y_true = softmax_case["y_true"].to_numpy()
    probability = softmax_case["p_attack"].to_numpy()

    # at 0.4 the attack flow scored exactly 0.4 counts as attack
    low = binary_metrics(y_true, probability, threshold=0.4)
    high = binary_metrics(y_true, probability, threshold=0.7)

    assert (low["tn"], low["fp"], low["fn"], low["tp"]) == (3, 1, 0, 2)
    assert low["recall"] == 1.0
    assert low["precision"] == pytest.approx(2 / 3)
    assert (high["tn"], high["fp"], high["fn"], high["tp"]) == (4, 0, 1, 1)
    assert high["precision"] == 1.0
    assert high["false_alarms_per_10k_benign"] == 0.0
    assert low["roc_auc"] == high["roc_auc"] == pytest.approx(0.875)


@pytest.mark.parametrize(
    ("y_true", "probability", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], r"y_true, flow 3: 2 is not a class \(1 such values\)"),
        (
            [0, 1, np.nan],
            [0.1, 0.2, 0.3],
            r"y_true, flow 3: nan is not a class.*expected 0 for benign or 1",
        ),
        (["0", "1"], [0.1, 0.2], r"y_true, flow 1: '0' is not a class \(2 such values\)"),
        ([[0, 1]], [0.1, 0.2], r"y_true has shape \(1, 2\)"),
        ([0, 1, 1], [0.1, 0.2], r"attack_probability has 2 flows but y_true has 3"),
        ([], [], r"no flows to score"),
    ],
)
def test_binary_metrics_refuses_bad_input(y_true: list, probability: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        binary_metrics(np.asarray(y_true), np.asarray(probability, dtype=float))


def test_labels_must_match_and_be_one_class() -> None:
    y_true = np.array([0, 1, 1])
    probability = np.array([0.1, 0.9, 0.2])

    with pytest.raises(DataError, match=r"labels has 2 flows but y_true has 3"):
        binary_metrics(y_true, probability, labels=["BENIGN", "Bot"])
    with pytest.raises(DataError, match=r"'Bot' has both benign and attack flows"):
        binary_metrics(y_true, probability, labels=["Bot", "Bot", "Bot"])
    with pytest.raises(DataError, match=r"labels, flow 2: None is not a label"):
        binary_metrics(y_true, probability, labels=["BENIGN", None, "Bot"])


# history_metrics


def test_history_metrics_normalises_suffixed_names(history: dict[str, list[float]]) -> None:
    table = history_metrics(history)

    assert list(table.columns) == [
        "epoch",
        "loss",
        "val_loss",
        "precision",
        "val_precision",
        "recall",
        "val_recall",
    ]
    assert table["epoch"].tolist() == [1, 2, 3]
    assert table["precision"].tolist() == [0.50, 0.70, 0.80]
    assert table["val_recall"].tolist() == [0.35, 0.58, 0.70]


def test_history_metrics_fills_missing_with_nan() -> None:
    table = history_metrics({"loss": [0.7, 0.5], "auc": [0.6, 0.8], "recall": [0.1, 0.2]})

    assert table.shape == (2, 7)
    assert table["loss"].tolist() == [0.7, 0.5]
    assert table["recall"].tolist() == [0.1, 0.2]
    assert table[["val_loss", "precision", "val_precision", "val_recall"]].isna().all().all()


def test_history_metrics_empty() -> None:
    table = history_metrics({})

    assert table.shape == (0, 7)


def test_history_metrics_refuses_ambiguous_or_ragged() -> None:
    with pytest.raises(DataError, match=r"'precision' and 'precision_2' both name 'precision'"):
        history_metrics({"precision": [0.5], "precision_2": [0.6]})
    with pytest.raises(DataError, match=r"different lengths"):
        history_metrics({"loss": [0.5, 0.4], "val_loss": [0.6]})


# plots


def test_plot_learning_curves(history: dict[str, list[float]], tmp_path: Path) -> None:
    path = plot_learning_curves(history_metrics(history), tmp_path / "loss.png")

    assert path == tmp_path / "loss.png"
    _assert_png(path)


@pytest.mark.parametrize("metric", ["precision", "recall"])
def test_plot_history_metric(history: dict[str, list[float]], metric: str, tmp_path: Path) -> None:
    path = plot_history_metric(history_metrics(history), metric, tmp_path / f"{metric}.png")

    _assert_png(path)


def test_plot_history_metric_refuses_unknown_or_absent(tmp_path: Path) -> None:
    table = history_metrics({"loss": [0.7, 0.5]})

    with pytest.raises(UsageError, match=r"'auc' is not known; expected one of precision"):
        plot_history_metric(table, "auc", tmp_path / "auc.png")
    with pytest.raises(DataError, match=r"no 'precision' values"):
        plot_history_metric(table, "precision", tmp_path / "precision.png")
    assert not list(tmp_path.iterdir())


def test_plot_roc(softmax_case: pd.DataFrame, tmp_path: Path) -> None:
    # case BR-23: softmax metric fixture
    path = plot_roc(
        softmax_case["y_true"].to_numpy(),
        softmax_case["p_attack"].to_numpy(),
        tmp_path / "roc.png",
        threshold=0.5,
    )

    _assert_png(path)


def test_plot_roc_needs_both_classes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"3 benign and 0 attack flows"):
        plot_roc(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]), tmp_path / "roc.png")


def test_plot_confusion_matrix(softmax_case: pd.DataFrame, tmp_path: Path) -> None:
    # case BR-23: softmax metric fixture
    metrics = binary_metrics(softmax_case["y_true"].to_numpy(), softmax_case["p_attack"])

    path = plot_confusion_matrix(metrics, tmp_path / "confusion.png")

    _assert_png(path)


def test_plot_confusion_matrix_all_benign(tmp_path: Path) -> None:
    metrics = binary_metrics(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.9]))

    _assert_png(plot_confusion_matrix(metrics, tmp_path / "confusion.png"))


# Markdown


def test_metrics_markdown(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    metrics = binary_metrics(softmax_case["y_true"].to_numpy(), softmax_case["p_attack"])

    text = metrics_markdown(metrics)

    lines = text.splitlines()
    assert lines[:2] == ["| metric | value |", "| --- | --- |"]
    assert "| n_flows | 6 |" in lines
    assert "| tp | 1 |" in lines
    assert "| threshold | 0.5000 |" in lines
    assert "| accuracy | 0.6667 |" in lines
    assert "| roc_auc | 0.8750 |" in lines
    assert "| pr_auc | 0.8333 |" in lines
    assert "| false_alarms_per_10k_benign | 2500.0000 |" in lines
    assert len(lines) == 18


def test_metrics_markdown_explains_undefined() -> None:
    metrics = binary_metrics(np.zeros(2, dtype=int), np.array([0.1, 0.2]))

    text = metrics_markdown(metrics)

    assert "| precision | undefined |" in text
    assert "- precision is undefined: no flow was called attack" in text


def test_confusion_markdown(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    metrics = binary_metrics(softmax_case["y_true"].to_numpy(), softmax_case["p_attack"])

    assert confusion_markdown(metrics) == (
        "| true label \\ verdict | benign | attack |\n"
        "| --- | ---: | ---: |\n"
        "| benign | 3 (75.0 %) | 1 (25.0 %) |\n"
        "| attack | 1 (50.0 %) | 1 (50.0 %) |\n"
    )


def test_confusion_markdown_empty_row() -> None:
    metrics = binary_metrics(np.zeros(2, dtype=int), np.array([0.1, 0.2]))

    assert "| attack | 0 | 0 |" in confusion_markdown(metrics)


def test_per_label_markdown() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    probability = np.array([0.1, 0.2, 0.7, 0.9, 0.8, 0.3, 0.6, 0.9])
    labels = ["BENIGN"] * 3 + ["DoS Hulk"] * 3 + ["Web Attack | XSS"] * 2

    metrics = binary_metrics(y_true, probability, labels=labels)

    assert per_label_markdown(metrics) == (
        "| label | flows | called attack | recall | false-positive rate |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
        "| BENIGN | 3 | 1 | - | 0.3333 |\n"
        "| DoS Hulk | 3 | 2 | 0.6667 | - |\n"
        "| Web Attack \\| XSS | 2 | 2 | 1.0000 | - |\n"
    )


def test_per_label_markdown_needs_labels(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    metrics = binary_metrics(softmax_case["y_true"].to_numpy(), softmax_case["p_attack"])

    with pytest.raises(UsageError, match=r"call binary_metrics with labels="):
        per_label_markdown(metrics)
