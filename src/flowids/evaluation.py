# SPDX-License-Identifier: Apache-2.0
"""Binary evaluation of attack probabilities: verdicts at a threshold, metrics with attack as the
positive class, plots of training history and results, and Markdown tables for reports."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "val_loss",
    "precision",
    "val_precision",
    "recall",
    "val_recall",
)
HISTORY_METRICS = ("precision", "recall")

_SOFTMAX_ROW_SUM_TOLERANCE = 1e-3
_HISTORY_KEY = re.compile(r"^(?P<name>(?:val_)?(?:loss|precision|recall))(?:_\d+)?$")
_PLOT_DPI = 100


def attack_probability(outputs: np.ndarray) -> np.ndarray:
    """Take the attack probability of each flow from a model's outputs.

    Parameters
    ----------
    outputs : ndarray of shape (n_flows, 2), (n_flows, 1) or (n_flows,)
        Model outputs. Two columns are a softmax over (benign, attack); one column, or a flat
        vector, is a one-unit sigmoid giving the attack probability directly.

    Returns
    -------
    ndarray of shape (n_flows,), float64
        Attack probability of each flow, in [0, 1].

    Raises
    ------
    DataError
        If the shape is none of the above, a value is not finite or lies outside [0, 1], or
        the rows of a two-column output do not sum to 1.

    Notes
    -----
    A one-column output must never go through ``argmax``: over a single column it is 0 for
    every flow, so every flow would be called benign. Verdicts come from :func:`verdicts`.
    """
    return _as_attack_probability(outputs)


def _as_attack_probability(outputs: np.ndarray) -> np.ndarray:
    # The public name is also the usual parameter name, so the other functions call this one.
    try:
        values = np.asarray(outputs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"model outputs: cannot read them as numbers ({exc}); expected an array of "
            "attack probabilities in [0, 1]"
        ) from exc

    if values.ndim == 2 and values.shape[1] == 2:
        _check_probability_values(values, "model outputs")
        row_sums = values.sum(axis=1)
        off = np.flatnonzero(np.abs(row_sums - 1.0) > _SOFTMAX_ROW_SUM_TOLERANCE)
        if off.size:
            first = int(off[0])
            raise DataError(
                f"model outputs of shape {values.shape}: row {first + 1} sums to "
                f"{row_sums[first]:.6g} ({off.size} rows off by more than "
                f"{_SOFTMAX_ROW_SUM_TOLERANCE:g}); expected a softmax over (benign, attack) "
                "whose rows sum to 1; pass the attack column alone if these are not softmax "
                "outputs"
            )
        return values[:, 1].copy()

    if (values.ndim == 2 and values.shape[1] == 1) or values.ndim == 1:
        flat = values.reshape(-1).copy()
        _check_probability_values(flat, "model outputs")
        return flat

    raise DataError(
        f"model outputs have shape {values.shape}; expected (n_flows, 2) for a softmax over "
        "(benign, attack), or (n_flows, 1) or (n_flows,) for a one-unit sigmoid"
    )


def verdicts(attack_probability: np.ndarray, threshold: float) -> np.ndarray:
    """Call each flow attack (1) or benign (0) at a threshold.

    Parameters
    ----------
    attack_probability : ndarray of shape (n_flows,)
        Attack probability of each flow, in [0, 1].
    threshold : float
        Attack probability, in [0, 1], from which a flow counts as an attack.

    Returns
    -------
    ndarray of shape (n_flows,), int8
        1 where ``attack_probability >= threshold``, else 0.

    Raises
    ------
    UsageError
        If the threshold is not a finite number in [0, 1].
    """
    threshold = check_threshold(threshold)
    probability = np.asarray(attack_probability, dtype=np.float64)
    return (probability >= threshold).astype(np.int8)


def binary_metrics(
    y_true: np.ndarray,
    attack_probability: np.ndarray,
    threshold: float = 0.5,
    labels: np.ndarray | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score attack probabilities against ground truth, attack being the positive class.

    Parameters
    ----------
    y_true : ndarray of shape (n_flows,)
        Ground truth: 0 for benign, 1 for attack.
    attack_probability : ndarray of shape (n_flows,), (n_flows, 1) or (n_flows, 2)
        Attack probability of each flow, or model outputs that :func:`attack_probability`
        accepts (a two-column softmax is reduced to its attack column).
    threshold : float, default 0.5
        Attack probability from which a flow counts as an attack (see :func:`verdicts`).
    labels : array of str of shape (n_flows,), optional
        Canonical label of each flow, for the per-label breakdown.

    Returns
    -------
    dict
        JSON-safe (Python ints and floats, None where undefined), with the keys
        ``n_flows, n_benign, n_attack, threshold, tn, fp, fn, tp, accuracy, precision, recall,
        f1, false_positive_rate, false_alarms_per_10k_benign, roc_auc, pr_auc, per_label,
        notes``. ``pr_auc`` is the average precision. ``per_label`` is None without
        ``labels``, else ``{label: {"n_flows", "detected", "recall"}}`` for attack labels and
        ``{label: {"n_flows", "detected", "false_positive_rate"}}`` for benign ones, where
        ``detected`` counts flows called attack. ``notes`` lists each undefined value and why.

    Raises
    ------
    DataError
        If lengths differ, ``y_true`` holds a value other than 0 or 1, the probabilities are
        not valid, there are no flows, or one label has both benign and attack flows.
    UsageError
        If the threshold is not a finite number in [0, 1].

    Notes
    -----
    An all-benign set has no precision when nothing is called attack, and neither recall,
    ROC-AUC nor PR-AUC; an all-attack set has no false-positive rate and no ROC-AUC. These
    are None, never 0, and ``notes`` says so.
    """
    threshold = check_threshold(threshold)
    truth = _check_y_true(y_true)
    probability = _as_attack_probability(attack_probability)
    _check_same_length(truth, probability, "attack_probability")
    if truth.size == 0:
        raise DataError("binary_metrics: no flows to score; expected at least one flow")

    called = verdicts(probability, threshold)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(truth, called, labels=[0, 1]).ravel())
    n_benign, n_attack = tn + fp, fn + tp
    notes: list[str] = []

    metrics: dict[str, Any] = {
        "n_flows": int(truth.size),
        "n_benign": n_benign,
        "n_attack": n_attack,
        "threshold": threshold,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "accuracy": (tn + tp) / truth.size,
        "precision": _ratio(tp, tp + fp, "precision", "no flow was called attack", notes),
        "recall": _ratio(tp, tp + fn, "recall", "there are no attack flows", notes),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, "f1", "no attack flows and none called", notes),
        "false_positive_rate": _ratio(
            fp, n_benign, "false_positive_rate", "there are no benign flows", notes
        ),
    }
    fpr = metrics["false_positive_rate"]
    metrics["false_alarms_per_10k_benign"] = None if fpr is None else fpr * 10_000.0
    if fpr is None:
        notes.append("false_alarms_per_10k_benign is undefined: there are no benign flows")

    metrics.update(_ranking_metrics(truth, probability, n_benign, n_attack, notes))
    metrics["per_label"] = None if labels is None else _per_label(truth, called, labels)
    metrics["notes"] = notes
    for note in notes:
        logger.info("binary_metrics: %s", note)
    return metrics


def history_metrics(history: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Tabulate a Keras training history per epoch.

    Parameters
    ----------
    history : mapping of str to sequence of float
        ``History.history`` as Keras returns it from ``fit``: one list per metric, one value
        per epoch. Metric names that Keras suffixed (``precision_1``, ``val_recall_2``) are
        read under their plain name.

    Returns
    -------
    DataFrame of shape (n_epochs, 7)
        Columns ``epoch, loss, val_loss, precision, val_precision, recall, val_recall``;
        ``epoch`` counts from 1, missing metrics are NaN. Other metrics are left out.

    Raises
    ------
    DataError
        If two keys name the same metric, or the lists have different lengths.
    """
    columns: dict[str, list[float]] = {}
    sources: dict[str, str] = {}
    for key, values in history.items():
        match = _HISTORY_KEY.match(key)
        if match is None:
            continue
        name = match.group("name")
        if name in columns:
            raise DataError(
                f"training history: keys {sources[name]!r} and {key!r} both name {name!r}; "
                "expected one key per metric; compile the model with one metric of each kind"
            )
        columns[name] = [float(v) for v in values]
        sources[name] = key

    lengths = {key: len(values) for key, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"training history: metric lists have different lengths {lengths}; expected one "
            "value per epoch in each"
        )

    n_epochs = next(iter(lengths.values()), 0)
    table = pd.DataFrame({"epoch": np.arange(1, n_epochs + 1, dtype=np.int64)})
    for name in HISTORY_COLUMNS[1:]:
        table[name] = columns.get(name, [math.nan] * n_epochs)
    return table.astype({name: np.float64 for name in HISTORY_COLUMNS[1:]})


def plot_learning_curves(history_df: pd.DataFrame, path: Path) -> Path:
    """Plot training and validation cross-entropy loss per epoch to a PNG file.

    Parameters
    ----------
    history_df : DataFrame of shape (n_epochs, 7)
        Output of :func:`history_metrics`.
    path : Path
        PNG file to write; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        If the history has no loss values.
    """
    _check_history_values(history_df, "loss")
    fig, ax = _new_figure()
    ax.plot(history_df["epoch"], history_df["loss"], marker="o", label="training")
    if history_df["val_loss"].notna().any():
        ax.plot(history_df["epoch"], history_df["val_loss"], marker="o", label="validation")
    ax.set_title("Learning curves: cross-entropy loss per epoch")
    ax.set_xlabel("epoch (count)")
    ax.set_ylabel("cross-entropy loss (nats per flow)")
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_history_metric(history_df: pd.DataFrame, metric: str, path: Path) -> Path:
    """Plot a training metric and its validation value per epoch to a PNG file.

    Parameters
    ----------
    history_df : DataFrame of shape (n_epochs, 7)
        Output of :func:`history_metrics`.
    metric : {"precision", "recall"}
        The metric to plot.
    path : Path
        PNG file to write; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UsageError
        If ``metric`` is not one of the allowed names.
    DataError
        If the history has no values for ``metric``.

    Notes
    -----
    The values are those Keras recorded. They treat attack as the positive class only if the
    model's metric was computed on the attack probability. A metric averaged over both
    one-hot columns makes precision equal recall.
    """
    if metric not in HISTORY_METRICS:
        raise UsageError(
            f"plot_history_metric: metric {metric!r} is not known; expected one of "
            f"{', '.join(HISTORY_METRICS)}"
        )
    _check_history_values(history_df, metric)

    fig, ax = _new_figure()
    ax.plot(history_df["epoch"], history_df[metric], marker="o", label="training")
    if history_df[f"val_{metric}"].notna().any():
        ax.plot(history_df["epoch"], history_df[f"val_{metric}"], marker="o", label="validation")
    ax.set_title(f"{metric.capitalize()} per epoch, as recorded during training")
    ax.set_xlabel("epoch (count)")
    ax.set_ylabel(f"{metric} (fraction, 0-1)")
    ax.set_ylim(-0.02, 1.02)
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_roc(
    y_true: np.ndarray,
    attack_probability: np.ndarray,
    path: Path,
    threshold: float = 0.5,
) -> Path:
    """Plot the ROC curve, its AUC and the operating point at the threshold to a PNG file.

    Parameters
    ----------
    y_true : ndarray of shape (n_flows,)
        Ground truth: 0 for benign, 1 for attack.
    attack_probability : ndarray of shape (n_flows,), (n_flows, 1) or (n_flows, 2)
        Attack probability of each flow, or model outputs (see :func:`attack_probability`).
    path : Path
        PNG file to write; its folder must exist.
    threshold : float, default 0.5
        Threshold whose operating point (false-positive rate, recall) is marked.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        If the inputs are invalid, or the flows are all of one class (no ROC curve exists).
    """
    threshold = check_threshold(threshold)
    truth = _check_y_true(y_true)
    probability = _as_attack_probability(attack_probability)
    _check_same_length(truth, probability, "attack_probability")
    n_attack = int(truth.sum())
    n_benign = int(truth.size - n_attack)
    if n_attack == 0 or n_benign == 0:
        raise DataError(
            f"plot_roc: {n_benign} benign and {n_attack} attack flows; a ROC curve needs "
            "flows of both classes"
        )

    fpr, tpr, _ = roc_curve(truth, probability)
    auc = roc_auc_score(truth, probability)
    called = verdicts(probability, threshold)
    point_fpr = int(called[truth == 0].sum()) / n_benign
    point_tpr = int(called[truth == 1].sum()) / n_attack

    fig, ax = _new_figure()
    ax.plot(fpr, tpr, label=f"ROC (AUC = {auc:.4f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC = 0.5)")
    ax.plot(
        [point_fpr],
        [point_tpr],
        marker="o",
        markersize=8,
        linestyle="none",
        color="tab:red",
        label=f"threshold {threshold:g}: FPR {point_fpr:.4f}, recall {point_tpr:.4f}",
    )
    ax.set_title(f"ROC curve ({n_benign} benign, {n_attack} attack flows)")
    ax.set_xlabel("false-positive rate (fraction of benign flows called attack)")
    ax.set_ylabel("recall (fraction of attack flows called attack)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_confusion_matrix(metrics: Mapping[str, Any], path: Path) -> Path:
    """Plot the 2x2 confusion matrix, counts with row-normalised percentages, to a PNG file.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`binary_metrics`.
    path : Path
        PNG file to write; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Rows are the true label (benign, attack), columns the verdict; each row's percentages
    add up to 100 % of that row's flows. A row without flows shows no percentage.
    """
    counts = _confusion_counts(metrics)
    shares = _row_shares(counts)

    fig, ax = _new_figure(width=5.5, height=4.8)
    image = ax.imshow(np.nan_to_num(shares, nan=0.0), cmap="Blues", vmin=0.0, vmax=100.0)
    for row in range(2):
        for col in range(2):
            share = shares[row, col]
            text = f"{counts[row, col]:,}"
            if not math.isnan(share):
                text += f"\n({share:.1f} %)"
            color = "white" if not math.isnan(share) and share > 50.0 else "black"
            ax.text(col, row, text, ha="center", va="center", color=color, fontsize=12)

    ax.set_xticks([0, 1], labels=["benign", "attack"])
    ax.set_yticks([0, 1], labels=["benign", "attack"])
    ax.set_xlabel("verdict")
    ax.set_ylabel("true label")
    ax.set_title(f"Confusion matrix at threshold {metrics['threshold']:g} (flows)")
    fig.colorbar(image, ax=ax, label="share of the true label's flows (%)")
    return _save(fig, path)


def metrics_markdown(metrics: Mapping[str, Any]) -> str:
    """Write the headline metrics as a Markdown table, with notes on undefined values.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`binary_metrics`.

    Returns
    -------
    str
        A ``metric | value`` table (counts as integers, rates with 4 decimals, "undefined"
        for None), followed by the notes as a list when there are any.
    """
    lines = ["| metric | value |", "| --- | --- |"]
    for key in _SCALAR_KEYS:
        lines.append(f"| {key} | {_format_value(metrics.get(key))} |")

    notes = metrics.get("notes") or []
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def confusion_markdown(metrics: Mapping[str, Any]) -> str:
    """Write the confusion matrix as a Markdown table, rows true label, columns verdict.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`binary_metrics`.

    Returns
    -------
    str
        A 2x2 table of flow counts, each with its share of the row in percent.
    """
    counts = _confusion_counts(metrics)
    shares = _row_shares(counts)
    lines = [
        "| true label \\ verdict | benign | attack |",
        "| --- | ---: | ---: |",
    ]
    for row, name in enumerate(("benign", "attack")):
        cells = []
        for col in range(2):
            share = shares[row, col]
            pct = "" if math.isnan(share) else f" ({share:.1f} %)"
            cells.append(f"{int(counts[row, col]):,}{pct}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def per_label_markdown(metrics: Mapping[str, Any]) -> str:
    """Write the per-label breakdown as a Markdown table, most frequent label first.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`binary_metrics` called with ``labels``.

    Returns
    -------
    str
        A ``label | flows | called attack | recall | false-positive rate`` table sorted by flows,
        descending (ties by label). Attack labels fill ``recall``, benign labels
        ``false-positive rate``; the other cell is "-".

    Raises
    ------
    UsageError
        If ``metrics`` has no per-label breakdown.
    """
    per_label = metrics.get("per_label")
    if per_label is None:
        raise UsageError(
            "per_label_markdown: the metrics have no per-label breakdown; call "
            "binary_metrics with labels=<canonical label of each flow>"
        )

    lines = [
        "| label | flows | called attack | recall | false-positive rate |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    ordered = sorted(per_label.items(), key=lambda item: (-item[1]["n_flows"], item[0]))
    for label, row in ordered:
        recall = _format_value(row["recall"]) if "recall" in row else "-"
        fpr = _format_value(row["false_positive_rate"]) if "false_positive_rate" in row else "-"
        name = str(label).replace("|", "\\|")
        lines.append(f"| {name} | {row['n_flows']:,} | {row['detected']:,} | {recall} | {fpr} |")
    return "\n".join(lines) + "\n"


_SCALAR_KEYS = (
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
)


def _check_probability_values(values: np.ndarray, where: str) -> None:
    bad_finite = np.flatnonzero(~np.isfinite(values.reshape(-1)))
    if bad_finite.size:
        first = values.reshape(-1)[bad_finite[0]]
        raise DataError(
            f"{where} of shape {values.shape}: {bad_finite.size} non-finite values (first: "
            f"{first}); expected probabilities in [0, 1]"
        )

    outside = np.flatnonzero((values.reshape(-1) < 0.0) | (values.reshape(-1) > 1.0))
    if outside.size:
        first = values.reshape(-1)[outside[0]]
        raise DataError(
            f"{where} of shape {values.shape}: {outside.size} values outside [0, 1] (first: "
            f"{first:.6g}); expected probabilities in [0, 1]; were logits passed instead of "
            "softmax or sigmoid outputs?"
        )


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float, or raise UsageError unless it lies in [0, 1]."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(
            f"threshold {threshold!r} is not usable; expected a number in [0, 1] (the attack "
            "probability from which a flow counts as an attack)"
        )
    return value


def _check_y_true(y_true: np.ndarray) -> np.ndarray:
    values = np.asarray(y_true)
    if values.ndim != 1:
        raise DataError(
            f"y_true has shape {values.shape}; expected (n_flows,) with 0 for benign and "
            "1 for attack"
        )

    if values.dtype.kind in "biuf":
        bad = np.flatnonzero(~((values == 0) | (values == 1)))
    else:
        bad = np.array(
            [i for i, v in enumerate(values) if isinstance(v, str) or v not in (0, 1)],
            dtype=np.int64,
        )
    if bad.size:
        first = int(bad[0])
        found = values[first].item() if isinstance(values[first], np.generic) else values[first]
        raise DataError(
            f"y_true, flow {first + 1}: {found!r} is not a class ({bad.size} such "
            "values); expected 0 for benign or 1 for attack"
        )
    return values.astype(np.int8)


def _check_same_length(truth: np.ndarray, other: np.ndarray, name: str) -> None:
    if len(other) != len(truth):
        raise DataError(
            f"{name} has {len(other)} flows but y_true has {len(truth)}; expected one value "
            "per flow in each"
        )


def _ratio(
    numerator: int, denominator: int, name: str, reason: str, notes: list[str]
) -> float | None:
    if denominator == 0:
        notes.append(f"{name} is undefined: {reason}")
        return None
    return numerator / denominator


def _ranking_metrics(
    truth: np.ndarray,
    probability: np.ndarray,
    n_benign: int,
    n_attack: int,
    notes: list[str],
) -> dict[str, float | None]:
    if n_benign == 0 or n_attack == 0:
        present = "benign" if n_attack == 0 else "attack"
        notes.append(f"roc_auc is undefined: all flows are {present}, it needs both classes")
        roc_auc = None
    else:
        roc_auc = float(roc_auc_score(truth, probability))

    if n_attack == 0:
        notes.append("pr_auc is undefined: there are no attack flows")
        pr_auc = None
    else:
        pr_auc = float(average_precision_score(truth, probability))
    return {"roc_auc": roc_auc, "pr_auc": pr_auc}


def _per_label(
    truth: np.ndarray, called: np.ndarray, labels: np.ndarray | Sequence[str]
) -> dict[str, dict[str, int | float]]:
    names = np.asarray(labels, dtype=object)
    if names.ndim != 1:
        raise DataError(f"labels have shape {names.shape}; expected (n_flows,) of strings")
    _check_same_length(truth, names, "labels")
    missing = [i for i, v in enumerate(names) if not isinstance(v, str)]
    if missing:
        raise DataError(
            f"labels, flow {missing[0] + 1}: {names[missing[0]]!r} is not a label "
            f"({len(missing)} such values); expected a canonical label string for each flow"
        )

    table: dict[str, dict[str, int | float]] = {}
    for label in sorted(set(names)):
        mask = names == label
        classes = np.unique(truth[mask])
        if classes.size > 1:
            raise DataError(
                f"labels: {label!r} has both benign and attack flows in y_true; expected "
                "each label to be one class"
            )
        n_flows = int(mask.sum())
        detected = int(called[mask].sum())
        rate_name = "recall" if classes[0] == 1 else "false_positive_rate"
        table[str(label)] = {
            "n_flows": n_flows,
            "detected": detected,
            rate_name: detected / n_flows,
        }
    return table


def _confusion_counts(metrics: Mapping[str, Any]) -> np.ndarray:
    missing = [key for key in ("tn", "fp", "fn", "tp") if key not in metrics]
    if missing:
        raise UsageError(
            f"metrics lack {', '.join(missing)}; expected the output of binary_metrics"
        )
    return np.array(
        [[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]], dtype=np.int64
    )


def _row_shares(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    shares = np.full(counts.shape, math.nan)
    np.divide(counts * 100.0, totals, out=shares, where=totals > 0)
    return shares


def _format_value(value: Any) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return f"{float(value):.4f}"


def _check_history_values(history_df: pd.DataFrame, column: str) -> None:
    if "epoch" not in history_df.columns or column not in history_df.columns:
        raise DataError(
            f"training history lacks the column 'epoch' or {column!r} (found "
            f"{list(history_df.columns)}); expected the output of history_metrics"
        )
    if not history_df[column].notna().any():
        raise DataError(
            f"training history has no {column!r} values; compile the model with that metric "
            "to plot it"
        )


def _new_figure(width: float = 6.4, height: float = 4.8) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=_PLOT_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _integer_epochs(ax: Any) -> None:
    ax.xaxis.get_major_locator().set_params(integer=True)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, format="png")
    fig.clear()
    logger.debug("wrote plot %s", path)
    return path
