# SPDX-License-Identifier: Apache-2.0
"""Choose the operating point, the threshold on attack probability, on validation flows.

A named rule picks the threshold (a fixed value, the best F1, or a target false-positive
rate); the operating point records it with the FPR, recall and precision it gives there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from flowids.errors import DataError, UsageError
from flowids.evaluation import check_threshold

logger = logging.getLogger(__name__)

FIXED = "fixed"
BEST_F1 = "best-f1"
TARGET_FPR = "target-fpr"
RULES: tuple[str, ...] = (FIXED, BEST_F1, TARGET_FPR)

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on attack probability and what it gives on the validation flows.

    A flow is called an attack when its attack probability is >= ``threshold``.

    Attributes
    ----------
    rule : str
        The rule that chose the threshold: 'fixed', 'best-f1' or 'target-fpr'. After a
        fallback it is 'fixed' and ``note`` names the rule that was asked for.
    threshold : float
        Attack probability from which a flow counts as an attack.
    fpr : float or None
        False-positive rate on validation, FP / (FP + TN); None without benign flows.
    recall : float or None
        TP / (TP + FN) on validation; None without attack flows.
    precision : float or None
        TP / (TP + FP) on validation; None when no flow is called attack.
    n_validation : int
        Validation flows the rule saw.
    f1 : float or None
        2 TP / (2 TP + FP + FN) on validation; None when there is no attack flow and none is
        called attack.
    tn, fp, fn, tp : int
        Validation confusion counts at the threshold.
    target_fpr : float or None
        The target of the 'target-fpr' rule, else None.
    note : str
        Why the rule fell back or what is undefined; '' when nothing is to be said.
    """

    rule: str
    threshold: float
    fpr: float | None
    recall: float | None
    precision: float | None
    n_validation: int
    f1: float | None = None
    tn: int = 0
    fp: int = 0
    fn: int = 0
    tp: int = 0
    target_fpr: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        """JSON-safe form for run records: Python numbers, None where undefined."""
        return asdict(self)


def choose_threshold(
    y_val: np.ndarray,
    p_val: np.ndarray,
    rule: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    target_fpr: float | None = None,
) -> OperatingPoint:
    """Choose the threshold on validation flows by a named rule.

    Parameters
    ----------
    y_val : ndarray of int, shape (n_flows,)
        Ground truth of the validation flows: 0 benign, 1 attack.
    p_val : ndarray of float, shape (n_flows,)
        Attack probability of each validation flow, in [0, 1].
    rule : {'fixed', 'best-f1', 'target-fpr'}
        'fixed' keeps ``threshold``; 'best-f1' takes the threshold with the highest F1 on
        validation (on ties the highest such threshold); 'target-fpr' takes the lowest
        threshold whose validation false-positive rate is at most ``target_fpr``.
    threshold : float, default 0.5
        The threshold of the 'fixed' rule, and of any fallback; in [0, 1].
    target_fpr : float, optional
        Required by 'target-fpr': the highest acceptable false-positive rate, in (0, 1).

    Returns
    -------
    OperatingPoint
        The threshold and the FPR, recall and precision it gives on validation.

    Raises
    ------
    UsageError
        On an unknown rule, a threshold outside [0, 1], or a missing or out-of-range
        ``target_fpr``.
    DataError
        If the lengths differ, ``y_val`` holds a value other than 0 or 1, or ``p_val`` a
        value that is not a probability.

    Notes
    -----
    The thresholds tried are the distinct validation probabilities: each is the highest
    threshold that gives its set of verdicts. When no validation probability meets the target
    FPR (the highest one belongs to too many benign flows), the threshold is set just above
    the highest validation probability (1 if that is 1), so that no validation flow is called
    attack, and the note says so.

    Validation flows of one class only (or none) cannot rank thresholds: 'best-f1' and
    'target-fpr' then fall back to 'fixed' at ``threshold``, log a warning and say so in
    ``note``.
    """
    threshold = check_threshold(threshold)
    _check_rule(rule, target_fpr)
    truth, probability = _check_validation(y_val, p_val)

    note = ""
    n_attack = int(truth.sum())
    if rule != FIXED and (n_attack == 0 or n_attack == truth.size):
        only = "no flows" if truth.size == 0 else "only benign" if n_attack == 0 else "only attack"
        note = (
            f"rule {rule!r} needs benign and attack validation flows, but validation holds "
            f"{only}; fell back to the fixed threshold {threshold:g}"
        )
        logger.warning("choose_threshold: %s", note)
        rule = FIXED
    elif rule == BEST_F1:
        threshold = _best_f1_threshold(truth, probability)
    elif rule == TARGET_FPR:
        threshold, note = _target_fpr_threshold(truth, probability, target_fpr)

    point = _operating_point(truth, probability, rule, threshold, note)
    if rule == TARGET_FPR:
        point = replace(point, target_fpr=float(target_fpr))
    logger.info(
        "operating point (%s): threshold %.6g, validation FPR %s, recall %s, precision %s "
        "on %s flows",
        point.rule,
        point.threshold,
        _show(point.fpr),
        _show(point.recall),
        _show(point.precision),
        f"{point.n_validation:,}",
    )
    return point


def _sweep(truth: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, ...]:
    """Confusion counts at each distinct probability taken as threshold, highest first.

    Returns ``(thresholds, tp, fp)`` with ``tp[i]`` and ``fp[i]`` the attack and benign flows
    whose probability is >= ``thresholds[i]``.
    """
    order = np.argsort(-probability, kind="stable")
    sorted_p, sorted_y = probability[order], truth[order]
    tp_cumulative = np.cumsum(sorted_y)
    fp_cumulative = np.cumsum(1 - sorted_y)
    # The last flow of each run of equal probabilities closes that threshold's verdict set.
    last = np.flatnonzero(np.r_[sorted_p[1:] != sorted_p[:-1], True])
    return sorted_p[last], tp_cumulative[last], fp_cumulative[last]


def _best_f1_threshold(truth: np.ndarray, probability: np.ndarray) -> float:
    thresholds, tp, fp = _sweep(truth, probability)
    fn = int(truth.sum()) - tp
    f1 = 2 * tp / (2 * tp + fp + fn)
    # Thresholds run from high to low, so the first maximum is the highest threshold.
    return float(thresholds[int(np.argmax(f1))])


def _target_fpr_threshold(
    truth: np.ndarray, probability: np.ndarray, target_fpr: float
) -> tuple[float, str]:
    thresholds, _, fp = _sweep(truth, probability)
    meets = fp / int((truth == 0).sum()) <= target_fpr
    if meets.any():
        # FP only grows as the threshold falls, so the last threshold that meets is lowest.
        return float(thresholds[np.flatnonzero(meets)[-1]]), ""

    highest = float(thresholds[0])
    if highest < 1.0:
        threshold = float(np.nextafter(highest, np.inf))
        outcome = "threshold set just above it, so no validation flow is called attack"
    else:
        threshold = 1.0
        outcome = "threshold set to 1, the highest possible; the target is not met"
    note = (
        f"no validation probability gives a false-positive rate <= {target_fpr:g} (the "
        f"highest, {highest:.6g}, belongs to a benign flow); {outcome}"
    )
    logger.warning("choose_threshold: %s", note)
    return threshold, note


def _operating_point(
    truth: np.ndarray, probability: np.ndarray, rule: str, threshold: float, note: str
) -> OperatingPoint:
    called = probability >= threshold
    tp = int((called & (truth == 1)).sum())
    fp = int((called & (truth == 0)).sum())
    fn = int((~called & (truth == 1)).sum())
    tn = int((~called & (truth == 0)).sum())
    return OperatingPoint(
        rule=rule,
        threshold=float(threshold),
        fpr=_ratio(fp, fp + tn),
        recall=_ratio(tp, tp + fn),
        precision=_ratio(tp, tp + fp),
        n_validation=int(truth.size),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        tn=tn,
        fp=fp,
        fn=fn,
        tp=tp,
        note=note,
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _show(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _check_rule(rule: str, target_fpr: float | None) -> None:
    if rule not in RULES:
        raise UsageError(
            f"threshold rule {rule!r} is not known; expected one of {', '.join(RULES)}"
        )
    if rule != TARGET_FPR:
        return
    try:
        value = float(target_fpr)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 1.0:
        raise UsageError(
            f"rule 'target-fpr' needs target_fpr, the highest acceptable false-positive rate, "
            f"strictly between 0 and 1; got {target_fpr!r} (e.g. 0.001 for 10 false alarms "
            "per 10,000 benign flows)"
        )


def _check_validation(y_val: np.ndarray, p_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_val).reshape(-1)
    try:
        probability = np.asarray(p_val, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(
            "validation attack probabilities are not all numbers; expected probabilities in "
            "[0, 1], one per flow"
        ) from None
    if truth.size != probability.size:
        raise DataError(
            f"validation: {truth.size} ground-truth values but {probability.size} attack "
            "probabilities; expected one of each per flow"
        )

    bad = np.flatnonzero(~np.isin(truth, (0, 1)))
    if bad.size:
        found = truth[bad[0]].item() if isinstance(truth[bad[0]], np.generic) else truth[bad[0]]
        raise DataError(
            f"validation flow {bad[0] + 1}: ground truth {found!r} is not a class "
            f"({bad.size} such values); expected 0 for benign or 1 for attack"
        )
    bad = np.flatnonzero(~((probability >= 0.0) & (probability <= 1.0)))
    if bad.size:
        found = float(probability[bad[0]])
        raise DataError(
            f"validation flow {bad[0] + 1}: attack probability {found!r} is not "
            f"in [0, 1] ({bad.size} such values); expected probabilities, not logits"
        )
    return truth.astype(np.int64), probability
