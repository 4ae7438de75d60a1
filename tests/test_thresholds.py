# SPDX-License-Identifier: Apache-2.0
"""Tests for flowids.thresholds: operating points chosen on validation flows by named rules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.errors import DataError, UsageError
from flowids.thresholds import RULES, OperatingPoint, choose_threshold


@pytest.fixture
def softmax_case(shared_dir: Path) -> pd.DataFrame:
    return pd.read_csv(shared_dir / "cases" / "BR-23-softmax-metric-fixture.csv")


def test_rules() -> None:
    assert RULES == ("fixed", "best-f1", "target-fpr")


def test_br23_fixed_threshold(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    point = choose_threshold(softmax_case["y_true"], softmax_case["p_attack"], "fixed")

    # p_attack >= 0.5: the benign 0.6 (FP) and the attack 0.8 (TP); the attack 0.4 is missed.
    assert point == OperatingPoint(
        rule="fixed",
        threshold=0.5,
        fpr=0.25,
        recall=0.5,
        precision=0.5,
        n_validation=6,
        f1=0.5,
        tn=3,
        fp=1,
        fn=1,
        tp=1,
    )


def test_br23_best_f1(softmax_case: pd.DataFrame) -> None:
    # case BR-23: softmax metric fixture
    # benign p_attack: 0.1, 0.2, 0.6, 0.3; attack p_attack: 0.8, 0.4. By hand, F1 = 2TP /
    # (2TP + FP + FN) at each distinct probability taken as the threshold:
    #   0.8: TP 1, FP 0, FN 1 -> 2/3      0.6: TP 1, FP 1, FN 1 -> 1/2
    #   0.4: TP 2, FP 1, FN 0 -> 4/5      0.3: TP 2, FP 2, FN 0 -> 2/3
    #   0.2: TP 2, FP 3, FN 0 -> 4/7      0.1: TP 2, FP 4, FN 0 -> 1/2
    point = choose_threshold(softmax_case["y_true"], softmax_case["p_attack"], "best-f1")

    assert point.rule == "best-f1"
    assert point.threshold == 0.4
    assert point.f1 == pytest.approx(0.8)
    assert point.precision == pytest.approx(2 / 3)
    assert point.recall == 1.0
    assert point.fpr == 0.25
    assert (point.tn, point.fp, point.fn, point.tp) == (3, 1, 0, 2)
    assert point.note == ""


@pytest.mark.parametrize(
    ("target", "threshold", "fpr", "recall"),
    [
        # FP among the 4 benign flows, by threshold: 0.8 -> 0, 0.6 -> 1, 0.4 -> 1, 0.3 -> 2,
        # 0.2 -> 3, 0.1 -> 4.
        (0.2, 0.8, 0.0, 0.5),
        (0.25, 0.4, 0.25, 1.0),
        (0.5, 0.3, 0.5, 1.0),
        (0.75, 0.2, 0.75, 1.0),
        (0.99, 0.2, 0.75, 1.0),
    ],
)
def test_br23_target_fpr(
    softmax_case: pd.DataFrame, target: float, threshold: float, fpr: float, recall: float
) -> None:
    # case BR-23: softmax metric fixture
    point = choose_threshold(
        softmax_case["y_true"], softmax_case["p_attack"], "target-fpr", target_fpr=target
    )

    assert point.rule == "target-fpr"
    assert point.threshold == threshold
    assert point.fpr == fpr
    assert point.recall == recall
    assert point.target_fpr == target


def test_best_f1_tie_takes_the_highest_threshold() -> None:
    # 0.9: TP 1, FP 0, FN 1 -> F1 2/3; 0.7: 1/2; 0.5: 2/5; 0.3: TP 2, FP 2, FN 0 -> 2/3.
    point = choose_threshold([1, 0, 0, 1], [0.9, 0.7, 0.5, 0.3], "best-f1")

    assert point.threshold == 0.9
    assert point.f1 == pytest.approx(2 / 3)
    assert (point.tp, point.fp) == (1, 0)


def test_verdict_at_the_threshold_is_attack() -> None:
    point = choose_threshold([0, 1, 1], [0.2, 0.4, 0.7], "fixed", threshold=0.4)

    assert (point.tp, point.fn, point.fp, point.tn) == (2, 0, 0, 1)


def test_equal_probabilities_form_one_threshold() -> None:
    # Both flows at 0.6 are called together: no threshold separates them.
    point = choose_threshold([0, 1, 0, 1], [0.6, 0.6, 0.1, 0.9], "target-fpr", target_fpr=0.4)

    # 0.9 -> FPR 0; 0.6 -> FPR 1/2 > 0.4; so 0.9.
    assert point.threshold == 0.9
    assert point.fpr == 0.0


@pytest.mark.parametrize(
    ("y", "only"), [([0, 0, 0], "only benign"), ([1, 1], "only attack"), ([], "no flows")]
)
@pytest.mark.parametrize("rule", ["best-f1", "target-fpr"])
def test_one_class_validation_falls_back_to_fixed(
    y: list[int], only: str, rule: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = [0.2, 0.8, 0.7][: len(y)]

    with caplog.at_level(logging.WARNING, logger="flowids.thresholds"):
        point = choose_threshold(y, p, rule, threshold=0.7, target_fpr=0.01)

    assert point.rule == "fixed"
    assert point.threshold == 0.7
    assert point.n_validation == len(y)
    assert f"rule {rule!r} needs benign and attack validation flows" in point.note
    assert only in point.note
    assert "fell back to the fixed threshold 0.7" in caplog.text


def test_one_class_fixed_rule_leaves_undefined_values_none() -> None:
    point = choose_threshold([0, 0], [0.2, 0.8], "fixed")

    assert point.fpr == 0.5
    assert point.recall is None
    assert point.precision == 0.0
    assert point.note == ""

    nothing_called = choose_threshold([0, 0], [0.2, 0.3], "fixed")
    assert nothing_called.precision is None
    assert nothing_called.f1 is None


def test_unreachable_target_fpr(caplog: pytest.LogCaptureFixture) -> None:
    # The highest probability is a benign flow's, and it alone is FPR 1/2 > 0.1.
    with caplog.at_level(logging.WARNING, logger="flowids.thresholds"):
        point = choose_threshold([0, 1, 0], [0.9, 0.5, 0.1], "target-fpr", target_fpr=0.1)

    assert point.threshold == np.nextafter(0.9, 1.0)
    assert (point.tp, point.fp) == (0, 0)
    assert "no validation probability gives a false-positive rate <= 0.1" in point.note
    assert "just above it" in caplog.text

    at_one = choose_threshold([0, 1, 0], [1.0, 0.5, 0.1], "target-fpr", target_fpr=0.1)
    assert at_one.threshold == 1.0
    assert at_one.fpr == 0.5
    assert "the target is not met" in at_one.note


def test_to_dict_is_json_safe(softmax_case: pd.DataFrame) -> None:
    point = choose_threshold(
        softmax_case["y_true"].to_numpy(),
        softmax_case["p_attack"].to_numpy(dtype=np.float32),
        "best-f1",
    )

    data = json.loads(json.dumps(point.to_dict(), allow_nan=False))

    assert data["rule"] == "best-f1"
    assert data["threshold"] == pytest.approx(0.4)
    assert data["n_validation"] == 6
    assert data["target_fpr"] is None
    assert set(data) == {
        "rule",
        "threshold",
        "fpr",
        "recall",
        "precision",
        "n_validation",
        "f1",
        "tn",
        "fp",
        "fn",
        "tp",
        "target_fpr",
        "note",
    }
    assert all(type(data[key]) is int for key in ("tn", "fp", "fn", "tp", "n_validation"))


def test_unknown_rule() -> None:
    with pytest.raises(UsageError, match="'median' is not known; expected one of fixed, best-f1"):
        choose_threshold([0, 1], [0.1, 0.9], "median")


@pytest.mark.parametrize("target", [None, 0, 0.0, 1, 1.5, -0.1, "low", float("nan")])
def test_target_fpr_must_be_in_open_unit_interval(target) -> None:
    with pytest.raises(UsageError, match="rule 'target-fpr' needs target_fpr"):
        choose_threshold([0, 1], [0.1, 0.9], "target-fpr", target_fpr=target)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "high"])
def test_bad_fixed_threshold(threshold) -> None:
    with pytest.raises(UsageError, match="expected a number in \\[0, 1\\]"):
        choose_threshold([0, 1], [0.1, 0.9], "fixed", threshold=threshold)


def test_bad_validation_data() -> None:
    with pytest.raises(DataError, match="2 ground-truth values but 3 attack probabilities"):
        choose_threshold([0, 1], [0.1, 0.5, 0.9], "best-f1")
    with pytest.raises(DataError, match="validation flow 2: ground truth 2 is not a class"):
        choose_threshold([0, 2], [0.1, 0.9], "best-f1")
    with pytest.raises(DataError, match="validation flow 1: attack probability 1.5 is not"):
        choose_threshold([0, 1], [1.5, 0.9], "best-f1")
    with pytest.raises(DataError, match="attack probability nan is not in \\[0, 1\\]"):
        choose_threshold([0, 1], [0.1, float("nan")], "fixed")
    with pytest.raises(DataError, match="ground truth 'BENIGN' is not a class"):
        choose_threshold(["BENIGN", "DDoS"], [0.1, 0.9], "fixed")
    with pytest.raises(DataError, match="probabilities are not all numbers"):
        choose_threshold([0, 1], [0.1, "high"], "fixed")
