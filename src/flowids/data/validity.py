# SPDX-License-Identifier: Apache-2.0
"""Validity rules for flow features and the policy that says what to do with each breach.

Three rules: a negative value where none can be (durations, inter-arrival times, counts,
sizes, rates), the -1 sentinel of the initial window sizes, and non-finite values. Each is
counted in the file report and then repaired, dropped, kept or refused as the policy says,
the same way at training and at prediction (the policy is saved with the preprocessing).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

NEGATIVE = "negative"
SENTINEL = "sentinel"
NON_FINITE = "non-finite"
RULES: tuple[str, ...] = (NEGATIVE, SENTINEL, NON_FINITE)

KEEP, REPAIR, DROP, FAIL = "keep", "repair", "drop", "fail"

# What each rule can do. A sentinel carries information (no window was seen), so there is
# nothing to repair; a non-finite value cannot be kept, since the scaler needs numbers.
ACTIONS: dict[str, tuple[str, ...]] = {
    NEGATIVE: (REPAIR, DROP, FAIL, KEEP),
    SENTINEL: (KEEP, DROP, FAIL),
    NON_FINITE: (REPAIR, DROP, FAIL),
}
# Negative values are kept by default so that results stay comparable with runs made before
# the policy existed; 'repair' is the choice for new work (see the README).
DEFAULTS: dict[str, str] = {NEGATIVE: KEEP, SENTINEL: KEEP, NON_FINITE: REPAIR}

# Reasons under which dropped flows are counted in FileReport.dropped.
DROP_REASONS: dict[str, str] = {
    NEGATIVE: "negative value",
    SENTINEL: "window sentinel -1",
    NON_FINITE: "non-finite value",
}

SENTINEL_FEATURES: tuple[str, ...] = ("init_fwd_window_bytes", "init_bwd_window_bytes")

RULE_TEXT: dict[str, str] = {
    NEGATIVE: "a negative duration, inter-arrival time, active or idle time, count, size or "
    "rate: repair sets it to 0; drop drops the flow; fail stops; keep reads it as written",
    SENTINEL: "-1 in init_fwd_window_bytes or init_bwd_window_bytes, meaning no window was "
    "seen in that direction: keep reads it as written (it is informative); drop drops the "
    "flow; fail stops",
    NON_FINITE: "a missing, NaN or +/-Infinity feature (CICFlowMeter rates over a zero "
    "duration): repair leaves it to the preprocessing rule (NaN -> 0, +/-Infinity -> the "
    "largest/smallest finite training value); drop drops the flow; fail stops",
}


@dataclass(frozen=True)
class ValidityPolicy:
    """What to do with each validity rule's breaches: 'keep', 'repair', 'drop' or 'fail'.

    Attributes
    ----------
    negative : str
        Negative values of features that cannot be negative. Default 'keep' (read as
        written); 'repair' sets them to 0.
    sentinel : str
        -1 in the initial window sizes. Default 'keep'.
    non_finite : str
        Missing, NaN and +/-Infinity values. Default 'repair' (by the preprocessing rule).

    Examples
    --------
    >>> ValidityPolicy().text()
    'negative=keep,sentinel=keep,non-finite=repair'
    >>> ValidityPolicy.parse("drop").text()
    'negative=drop,sentinel=keep,non-finite=drop'
    >>> ValidityPolicy.parse("repair,sentinel=fail").sentinel
    'fail'
    """

    negative: str = DEFAULTS[NEGATIVE]
    sentinel: str = DEFAULTS[SENTINEL]
    non_finite: str = DEFAULTS[NON_FINITE]

    def __post_init__(self) -> None:
        for rule in RULES:
            action = self.action(rule)
            if action not in ACTIONS[rule]:
                raise UsageError(
                    f"validity policy: {rule}={action!r} is not an action of that rule; "
                    f"expected one of {', '.join(ACTIONS[rule])}"
                )

    def action(self, rule: str) -> str:
        """The action for ``rule`` ('negative', 'sentinel' or 'non-finite')."""
        return getattr(self, rule.replace("-", "_"))

    @classmethod
    def parse(cls, text: str) -> ValidityPolicy:
        """Read a policy from its text form.

        Parameters
        ----------
        text : str
            Comma-separated items. A bare action ('repair', 'drop' or 'fail') applies to the
            negative and non-finite rules; ``RULE=ACTION`` sets one rule, e.g.
            ``"drop,sentinel=fail"``. Rules not named keep their defaults.

        Raises
        ------
        UsageError
            On an unknown rule or an action the rule does not have.
        """
        actions = dict(DEFAULTS)
        for item in str(text).split(","):
            item = item.strip().lower()
            if not item:
                continue
            rule, sep, action = item.partition("=")
            if not sep:
                if item not in (REPAIR, DROP, FAIL):
                    raise UsageError(
                        f"validity policy {text!r}: {item!r} is not an action for every rule; "
                        "expected repair, drop or fail, or RULE=ACTION with RULE one of "
                        f"{', '.join(RULES)} (e.g. 'drop,sentinel=keep')"
                    )
                actions[NEGATIVE] = actions[NON_FINITE] = item
                continue
            rule = rule.strip().replace("_", "-")
            if rule not in RULES:
                raise UsageError(
                    f"validity policy {text!r}: unknown rule {rule!r}; expected one of "
                    f"{', '.join(RULES)}"
                )
            actions[rule] = action.strip()
        return cls(actions[NEGATIVE], actions[SENTINEL], actions[NON_FINITE])

    def text(self) -> str:
        """The full text form, every rule named: 'negative=repair,sentinel=keep,...'."""
        return ",".join(f"{rule}={self.action(rule)}" for rule in RULES)

    def to_dict(self) -> dict[str, str]:
        return {rule: self.action(rule) for rule in RULES}

    @classmethod
    def from_dict(cls, data: Mapping[str, str] | None) -> ValidityPolicy:
        """Rebuild a policy from :meth:`to_dict` output; None gives the default policy."""
        if not data:
            return cls()
        return cls.parse(",".join(f"{rule}={action}" for rule, action in data.items()))


def _unit(name: str) -> str:
    """The unit of a canonical feature as its name suffix gives it, with a leading space."""
    for suffix, unit in (("_us", " us"), ("_bytes2", " bytes^2"), ("_bytes", " bytes")):
        if name.endswith(suffix):
            return unit
    if name.endswith("_per_s") or "_rate_" in name:
        return " per s"
    return ""


def _breaches(values: np.ndarray, names: list[str]) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Per rule, the mask of breaking values and the feature columns it covers.

    Parameters
    ----------
    values : ndarray of float32, shape (n_flows, n_features)
    names : list of str
        Canonical feature name of each column.

    Returns
    -------
    dict of str to (ndarray of bool, list of int)
        The mask has one column per covered feature: every feature, except for the sentinel
        rule, which covers the initial window sizes only.
    """
    every = list(range(len(names)))
    sentinel_columns = [j for j, name in enumerate(names) if name in SENTINEL_FEATURES]
    negative = values < 0
    minus_one = values[:, sentinel_columns] == -1
    if sentinel_columns:
        negative[:, sentinel_columns] &= ~minus_one
    return {
        NEGATIVE: (negative, every),
        SENTINEL: (minus_one, sentinel_columns),
        NON_FINITE: (~np.isfinite(values), every),
    }


def _refusal(rule: str, name: str, value: float, where: str, n: int, span: str) -> DataError:
    """The error for a breach that the policy refuses, with what to change."""
    unit = _unit(name)
    if rule == NEGATIVE:
        found = f"{value:g} is negative; expected >= 0{unit} ({name} cannot be negative)"
        advice = (
            "use --invalid negative=repair to set such values to 0 and count them, "
            "negative=drop to drop those flows, or negative=keep to read them as written "
            "(the default)"
        )
    elif rule == SENTINEL:
        found = (
            "-1 marks a window size that was not observed; expected a size >= 0 bytes, since "
            "the policy refuses the sentinel (sentinel=fail)"
        )
        advice = "use --invalid sentinel=keep to read -1 as written (the default), or sentinel=drop"
    else:
        shown = "a missing or NaN value" if np.isnan(value) else f"{value:g}"
        measure = unit if unit == " per s" else unit and " in" + unit
        found = f"{shown} is not finite; expected a finite number{measure}"
        advice = (
            "use --invalid non-finite=repair to apply the preprocessing's non-finite rule and "
            "count them (the default), or non-finite=drop to drop those flows"
        )
    return DataError(
        f"{where}: {found}. {n:,} such value(s) in this column {span}. To go on, {advice}"
    )


def check_validity(
    features: pd.DataFrame,
    rows: np.ndarray,
    report,
    columns: Mapping[str, str],
    policy: ValidityPolicy | None,
) -> np.ndarray | None:
    """Count each rule's breaches in a chunk and apply the policy to them.

    Parameters
    ----------
    features : DataFrame of shape (n_flows, n_features), float32
        Canonical features of one chunk; repaired values are written into it.
    rows : ndarray of int, shape (n_flows,)
        1-based data row of each flow in its file, for messages.
    report : FileReport
        Receives the counts: ``invalid[rule][feature]`` values, ``invalid_flows[rule]``
        flows, and ``dropped[reason]`` for flows dropped.
    columns : mapping of str to str
        The file's own header name of each canonical feature, for messages.
    policy : ValidityPolicy or None
        None counts breaches and changes nothing.

    Returns
    -------
    ndarray of bool, shape (n_flows,), or None
        Flows to keep; None when every flow is kept.

    Raises
    ------
    DataError
        For the first breach of a rule whose action is 'fail': file, 1-based row, column,
        value, what was expected and which option changes the policy.
    """
    names = list(features.columns)
    breaches = _breaches(features.to_numpy(dtype=np.float32), names)
    drop = np.zeros(len(features), dtype=bool)
    for rule in RULES:
        action = policy.action(rule) if policy is not None else KEEP
        mask, covered = breaches[rule]
        per_feature = mask.sum(axis=0)
        broken = np.flatnonzero(per_feature)
        if not len(broken):
            continue
        for k in broken:
            report.invalid[rule][names[covered[k]]] += int(per_feature[k])
        hit = mask[:, broken].any(axis=1)
        report.invalid_flows[rule] += int(hit.sum())

        if action == FAIL:
            row = int(np.flatnonzero(hit)[0])
            k = int(broken[np.flatnonzero(mask[row, broken])[0]])
            name = names[covered[k]]
            where = f"{report.path}, row {rows[row]}, column {columns.get(name, name)!r}"
            value = float(features[name].iloc[row])
            span = f"from row {rows[0]} to row {rows[-1]}"
            raise _refusal(rule, name, value, where, int(per_feature[k]), span)
        if action == REPAIR and rule == NEGATIVE:
            for k in broken:
                column = features[names[covered[k]]].to_numpy(copy=True)
                column[mask[:, k]] = 0
                features[names[covered[k]]] = column
        if action == DROP:
            report.dropped[DROP_REASONS[rule]] += int((hit & ~drop).sum())
            drop |= hit
    return ~drop if drop.any() else None


def describe_counts(report) -> str:
    """One line of a report's validity counts, e.g. 'negative 2 flows (repair)'."""
    policy = getattr(report, "validity_policy", None) or {}
    parts = []
    for rule in RULES:
        flows = report.invalid_flows.get(rule, 0)
        if flows:
            action = policy.get(rule, "counted only")
            parts.append(f"{rule} {flows:,} flow(s) ({action})")
    return "; ".join(parts)


def validity_summary(reports) -> dict:
    """Per rule, the action taken and the flows and values that broke it, over many files.

    Parameters
    ----------
    reports : list of FileReport

    Returns
    -------
    dict
        ``{rule: {"action": str, "flows": int, "values": {feature: int}}}``; the action is
        'counted only' for files read without a policy, and joined with ' / ' where files
        were read with different policies.
    """
    summary: dict[str, dict] = {}
    for rule in RULES:
        actions = sorted(
            {(report.validity_policy or {}).get(rule, "counted only") for report in reports}
        )
        values: Counter = Counter()
        for report in reports:
            values.update(report.invalid[rule])
        summary[rule] = {
            "action": " / ".join(actions),
            "flows": int(sum(report.invalid_flows.get(rule, 0) for report in reports)),
            "values": dict(values.most_common()),
        }
    return summary


def repaired_values(reports) -> dict[str, int]:
    """Values repaired, by what was done to them, for a run record's 'Values repaired' table."""
    repaired: Counter = Counter()
    for report in reports:
        # Read without a policy, negative values stay; non-finite ones meet the preprocessing.
        policy = report.validity_policy or {NON_FINITE: REPAIR}
        if policy.get(NEGATIVE) == REPAIR:
            for name, n in report.invalid[NEGATIVE].items():
                repaired[f"negative {name} set to 0"] += n
        if policy.get(NON_FINITE) == REPAIR:
            for name, n in report.invalid[NON_FINITE].items():
                repaired[f"non-finite {name} (by the preprocessing rule)"] += n
    return dict(repaired.most_common())
