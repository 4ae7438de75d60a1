# SPDX-License-Identifier: Apache-2.0
"""A data-quality report on flow CSVs, before any model sees them: `flowids inspect`.

It reads the files as training would (counting every validity breach, changing nothing) and
writes a Markdown report with PNG plots: flows per file and label, per-feature distinct
values, missing and non-finite rates and constant columns, duplicates and conflicting
labels, producers and time span, and the features that best separate benign from attack.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flowids import __version__
from flowids.data.labels import BENIGN, is_attack
from flowids.data.readers import FlowTable, read_flows
from flowids.data.validity import RULES, validity_summary
from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
SUMMARY_FILE = "inspect.json"
# Flows drawn (with a fixed seed) for the separation ranking and its plots on large inputs.
SEPARATION_SAMPLE = 500_000
_SEED = 20200924


@dataclass
class Inspection:
    """Everything the report states, as numbers (also written as JSON)."""

    flows: int
    files: list[dict]
    labels: dict[str, int]
    features: pd.DataFrame
    duplicates: dict[str, int]
    validity: dict
    time_span: dict
    separation: pd.DataFrame | None
    separation_note: str


def inspect_files(paths: list[str | Path], output: str | Path, top: int = 6) -> Path:
    """Read flow CSVs and write the data-quality report into the folder ``output``.

    Parameters
    ----------
    paths : list of str or Path
        Flow CSV files, folders or globs, as for training.
    output : str or Path
        Folder for ``report.md``, ``inspect.json`` and the PNG plots; created if missing.
    top : int
        Number of most separating features to plot.

    Returns
    -------
    Path
        The report file.

    Raises
    ------
    DataError
        If a file cannot be read as flow records (the message names file, row and column).
    UsageError
        If ``top`` is not positive or ``output`` is a file.
    """
    if top < 1:
        raise UsageError(f"--top {top}: expected a positive number of features")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder; give a folder for the report")

    table = read_flows(paths)
    inspection = inspect_table(table)

    folder.mkdir(parents=True, exist_ok=True)
    plots = _write_plots(table, inspection, folder, top)
    report = folder / REPORT_FILE
    report.write_text(report_markdown(inspection, plots, top), encoding="utf-8")
    (folder / SUMMARY_FILE).write_text(_summary_json(inspection), encoding="utf-8")
    logger.info("wrote %s and %d plot(s)", report, len(plots))
    return report


def inspect_table(table: FlowTable) -> Inspection:
    """Compute the facts of the report from flows read without a validity policy."""
    labels = table.labels
    labelled = labels is not None and (labels != "").any()
    files = [
        {
            "path": report.path,
            "dialect": report.dialect,
            "rows_read": report.rows_read,
            "flows": report.flows_kept,
            "dropped": dict(report.dropped),
            "labels": dict(report.labels.most_common()),
            "unknown_columns": list(report.unknown_columns),
            "ignored_columns": list(report.ignored_columns),
            "unit_conversions": dict(report.unit_conversions),
            "sha256": report.sha256,
        }
        for report in table.reports
    ]
    label_counts = Counter(labels.tolist()) if labels is not None else Counter()
    separation, note = _separation(table) if labelled else (None, _no_labels_note(labels))
    return Inspection(
        flows=len(table),
        files=files,
        labels=dict(label_counts.most_common()),
        features=feature_statistics(table.features),
        duplicates=_duplicates(table),
        validity=validity_summary(table.reports),
        time_span=_time_span(table),
        separation=separation,
        separation_note=note,
    )


def feature_statistics(features: pd.DataFrame) -> pd.DataFrame:
    """Per feature: distinct finite values, missing and infinite shares, range, constancy.

    Parameters
    ----------
    features : DataFrame of shape (n_flows, n_features)

    Returns
    -------
    DataFrame with one row per feature
        ``distinct``, ``missing`` (NaN or empty cells), ``infinite``, ``missing_rate`` and
        ``infinite_rate`` (shares of flows), ``min``, ``median``, ``max`` (finite values),
        ``constant`` (at most one distinct finite value).
    """
    rows = []
    n = max(len(features), 1)
    for name in features.columns:
        values = features[name].to_numpy()
        finite = values[np.isfinite(values)]
        missing = int(np.isnan(values).sum())
        infinite = int(np.isinf(values).sum())
        distinct = int(len(np.unique(finite)))
        rows.append(
            {
                "feature": name,
                "distinct": distinct,
                "missing": missing,
                "infinite": infinite,
                "missing_rate": missing / n,
                "infinite_rate": infinite / n,
                "min": float(finite.min()) if len(finite) else float("nan"),
                "median": float(np.median(finite)) if len(finite) else float("nan"),
                "max": float(finite.max()) if len(finite) else float("nan"),
                "constant": distinct <= 1,
            }
        )
    return pd.DataFrame(rows).set_index("feature")


def _duplicates(table: FlowTable) -> dict[str, int]:
    """Exact duplicates and conflicting labels, on features (and with identifiers too)."""
    from flowids.splits import find_duplicates

    labels = table.labels if table.labels is not None else np.full(len(table), "", object)
    counts = find_duplicates(table.features, labels)
    # One 64-bit hash per flow over features, identifiers and label, rather than a copy of
    # the table: a collision would need 2**32 flows to become likely.
    parts = {
        "features": pd.util.hash_pandas_object(table.features, index=False).to_numpy(),
        "label": pd.util.hash_pandas_object(pd.Series(labels, dtype=object), index=False),
    }
    if len(table.identifiers.columns):
        hashed = pd.util.hash_pandas_object(table.identifiers.astype(object), index=False)
        parts["identifiers"] = hashed.to_numpy()
    combined = pd.util.hash_pandas_object(pd.DataFrame(parts), index=False)
    counts["exact_duplicates_with_identifiers"] = int(combined.duplicated().sum())
    return counts


def _time_span(table: FlowTable) -> dict:
    """First and last flow time per file and overall, where a Timestamp column exists."""
    if "timestamp" not in table.identifiers.columns:
        return {"note": "no Timestamp column"}
    from flowids.data.timestamps import parse_timestamps

    spans: dict[str, dict] = {}
    files = table.origin["file"].to_numpy()
    for report in table.reports:
        where = np.flatnonzero(files == report.path)
        if not len(where):
            continue
        text = table.identifiers["timestamp"].iloc[where]
        if text.isna().all():
            spans[report.path] = {"note": "no Timestamp column"}
            continue
        origin = table.origin.iloc[where].reset_index(drop=True)
        try:
            times = parse_timestamps(text.reset_index(drop=True), report.dialect, origin)
        except DataError as exc:
            spans[report.path] = {"note": f"timestamps not read: {exc}"}
            continue
        spans[report.path] = {"first": str(times.min()), "last": str(times.max())}
    known = [span for span in spans.values() if "first" in span]
    overall = (
        {"first": min(s["first"] for s in known), "last": max(s["last"] for s in known)}
        if known
        else {}
    )
    return {"files": spans, **overall}


def _no_labels_note(labels: np.ndarray | None) -> str:
    if labels is None:
        return "The files have no Label column, so benign and attack cannot be compared."
    return "Every flow is marked unlabelled, so benign and attack cannot be compared."


def _separation(table: FlowTable) -> tuple[pd.DataFrame | None, str]:
    """Rank features by how far their univariate ROC-AUC for attack is from 0.5."""
    known = table.labels != ""
    y = is_attack(table.labels[known])
    if y.min() == y.max():
        only = "attack" if y[0] else "benign"
        return None, f"Every labelled flow is {only}, so benign and attack cannot be compared."
    features = table.features[known]
    note = f"All {len(y):,} labelled flows."
    if len(y) > SEPARATION_SAMPLE:
        pick = np.random.default_rng(_SEED).choice(len(y), SEPARATION_SAMPLE, replace=False)
        features, y = features.iloc[np.sort(pick)], y[np.sort(pick)]
        note = f"A random sample of {SEPARATION_SAMPLE:,} labelled flows (seed {_SEED})."

    rows = []
    n_attack, n_benign = int(y.sum()), int(len(y) - y.sum())
    for name in features.columns:
        values = np.nan_to_num(features[name].to_numpy(dtype=np.float64), nan=0.0)
        ranks = pd.Series(values).rank(method="average").to_numpy()
        auc = (ranks[y == 1].sum() - n_attack * (n_attack + 1) / 2) / (n_attack * n_benign)
        rows.append({"feature": name, "roc_auc": float(auc), "distance": abs(auc - 0.5)})
    ranking = pd.DataFrame(rows).sort_values("distance", ascending=False, kind="stable")
    note += (
        f" {n_attack:,} attack and {n_benign:,} benign; NaN counts as 0 and +/-Infinity ranks"
        " above/below every number, as the preprocessing would place them."
    )
    return ranking.set_index("feature"), note


# Plots


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _write_plots(table: FlowTable, inspection: Inspection, folder: Path, top: int) -> dict:
    plots = {"labels": _plot_labels(inspection, folder / "labels.png")}
    rates = inspection.features[["missing_rate", "infinite_rate"]]
    if (rates > 0).any(axis=None):
        plots["non_finite"] = _plot_non_finite(inspection, folder / "non_finite.png")
    if inspection.separation is not None:
        plots["separation"] = _plot_separation(
            table, inspection, folder / "separating_features.png", top
        )
    return plots


def _plot_labels(inspection: Inspection, path: Path) -> str:
    counts = inspection.labels or {"(no label column)": inspection.flows}
    names = [name or "(unlabelled)" for name in counts]
    figure = _new_figure(7.0, 0.35 * len(names) + 1.2)
    axes = figure.add_subplot()
    axes.barh(names[::-1], list(counts.values())[::-1], color="#4477aa")
    axes.set_xscale("log")
    axes.set_xlabel("flows (log scale)")
    axes.set_title(f"Flows per label ({inspection.flows:,} flows)")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path.name


def _plot_non_finite(inspection: Inspection, path: Path) -> str:
    stats = inspection.features
    shown = stats[(stats["missing_rate"] > 0) | (stats["infinite_rate"] > 0)]
    figure = _new_figure(7.0, 0.4 * len(shown) + 1.4)
    axes = figure.add_subplot()
    positions = np.arange(len(shown))
    axes.barh(positions - 0.2, 100 * shown["missing_rate"], 0.4, label="missing or NaN")
    axes.barh(positions + 0.2, 100 * shown["infinite_rate"], 0.4, label="+/-Infinity")
    axes.set_yticks(positions, shown.index)
    axes.invert_yaxis()
    axes.set_xlabel("% of flows")
    axes.set_title("Features with missing or infinite values")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path.name


def _signed_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log10(1.0 + np.abs(values))


def _plot_separation(table: FlowTable, inspection: Inspection, path: Path, top: int) -> str:
    names = list(inspection.separation.index[:top])
    known = table.labels != ""
    y = is_attack(table.labels[known])
    columns = 3 if len(names) > 4 else len(names)
    rows = int(np.ceil(len(names) / columns))
    figure = _new_figure(4.2 * columns, 3.2 * rows)
    for number, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, number + 1)
        values = table.features[name].to_numpy(dtype=np.float64)[known]
        finite = np.isfinite(values)
        shown = _signed_log(values[finite])
        edges = np.histogram_bin_edges(shown, bins=40) if len(shown) else 10
        for klass, label, color in ((0, BENIGN, "#4477aa"), (1, "attack", "#cc3311")):
            part = shown[y[finite] == klass]
            if len(part):
                axes.hist(part, bins=edges, density=True, alpha=0.55, color=color, label=label)
        auc = inspection.separation.loc[name, "roc_auc"]
        axes.set_title(f"{name}\nROC-AUC {auc:.3f}", fontsize=9)
        axes.set_xlabel("sign(x) log10(1 + |x|)", fontsize=8)
        axes.tick_params(labelsize=7)
        if number == 0:
            axes.legend(fontsize=8)
    figure.suptitle("Benign versus attack: the most separating features (densities)")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path.name


# Markdown


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _share(n: int, total: int) -> str:
    return f"{n:,} ({100 * n / total:.2f} %)" if total else f"{n:,}"


def report_markdown(inspection: Inspection, plots: dict, top: int) -> str:
    """The report as Markdown; ``plots`` maps plot names to PNG file names beside it."""
    parts = [
        "# Data-quality report",
        _summary_section(inspection),
        _files_section(inspection),
        _labels_section(inspection, plots),
        _features_section(inspection, plots),
        _validity_section(inspection),
        _duplicates_section(inspection),
        _separation_section(inspection, plots, top),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _summary_section(inspection: Inspection) -> str:
    dialects = sorted({f["dialect"] for f in inspection.files})
    constant = inspection.features.index[inspection.features["constant"]].tolist()
    span = inspection.time_span
    when = f"{span['first']} to {span['last']}" if "first" in span else "unknown (no timestamps)"
    benign = inspection.labels.get(BENIGN, 0)
    lines = [
        f"- flows: {inspection.flows:,} in {len(inspection.files)} file(s)",
        f"- producers (dialects): {', '.join(dialects)}",
        f"- time span: {when}",
        f"- labels: {len(inspection.labels)}; {BENIGN}: {_share(benign, inspection.flows)}",
        f"- features: {len(inspection.features)}, of which {len(constant)} constant",
        f"- exact duplicates (features and label): "
        f"{_share(inspection.duplicates['exact_duplicates'], inspection.flows)}; feature "
        f"vectors with conflicting labels: {inspection.duplicates['conflicting_vectors']:,}",
        "- flows with a value breaking a validity rule: "
        + "; ".join(f"{rule} {inspection.validity[rule]['flows']:,}" for rule in RULES),
    ]
    about = (
        f"Made by flowids {__version__}. The files were read as training reads them (names "
        "normalised, empty rows and repeated headers dropped, labels mapped to the canonical "
        "table) with no validity policy, so every value is counted as written. "
        f"`{SUMMARY_FILE}` beside this report holds the same numbers and each file's sha256."
    )
    return "## Summary\n\n" + about + "\n\n" + "\n".join(lines)


def _files_section(inspection: Inspection) -> str:
    rows = []
    for f in inspection.files:
        dropped = ", ".join(f"{n:,} {why}" for why, n in f["dropped"].items()) or "none"
        rows.append(
            [f"`{f['path']}`", f["dialect"], f"{f['rows_read']:,}", f"{f['flows']:,}", dropped]
        )
    text = "## Files\n\n" + _table(["file", "dialect", "rows read", "flows", "dropped"], rows)
    notes = []
    for f in inspection.files:
        if f["unknown_columns"]:
            shown = ", ".join(repr(name) for name in f["unknown_columns"])
            notes.append(f"- `{f['path']}`: unknown columns ignored: {shown}")
        if f["ignored_columns"]:
            shown = ", ".join(repr(name.strip()) for name in f["ignored_columns"])
            notes.append(f"- `{f['path']}`: columns of the dialect ignored: {shown}")
        for feature, how in f["unit_conversions"].items():
            notes.append(f"- `{f['path']}`: {feature}: {how}")
        span = inspection.time_span.get("files", {}).get(f["path"], {})
        if "first" in span:
            notes.append(f"- `{f['path']}`: flows from {span['first']} to {span['last']}")
        elif "note" in span and span["note"] != "no Timestamp column":
            notes.append(f"- `{f['path']}`: {span['note']}")
    return text + ("\n\n" + "\n".join(notes) if notes else "")


def _labels_section(inspection: Inspection, plots: dict) -> str:
    if not inspection.labels:
        return "## Labels\n\nThe files have no Label column."
    labels = list(inspection.labels)
    header = ["label", "all files", *[f"`{Path(f['path']).name}`" for f in inspection.files]]
    rows = [
        [label or "(unlabelled)", f"{inspection.labels[label]:,}"]
        + [f"{f['labels'].get(label, 0):,}" for f in inspection.files]
        for label in labels
    ]
    text = "## Labels\n\nFlows per label and file:\n\n" + _table(header, rows)
    return text + f"\n\n![Flows per label]({plots['labels']})"


def _features_section(inspection: Inspection, plots: dict) -> str:
    stats = inspection.features
    n = max(inspection.flows, 1)
    rows = [
        [
            f"`{name}`",
            f"{row['distinct']:,}",
            _share(row["missing"], n) if row["missing"] else "0",
            _share(row["infinite"], n) if row["infinite"] else "0",
            f"{row['min']:.6g}",
            f"{row['median']:.6g}",
            f"{row['max']:.6g}",
            "yes" if row["constant"] else "",
        ]
        for name, row in stats.iterrows()
    ]
    constant = stats.index[stats["constant"]].tolist()
    text = (
        "## Features\n\nDistinct values, range and median count finite values only. A constant "
        "feature has at most one distinct finite value; training drops it.\n\n"
        f"Constant features ({len(constant)}): "
        + (", ".join(f"`{name}`" for name in constant) or "none")
        + "\n\n"
        + _table(
            ["feature", "distinct", "missing", "infinite", "min", "median", "max", "constant"],
            rows,
        )
    )
    if "non_finite" in plots:
        text += f"\n\n![Missing and infinite values]({plots['non_finite']})"
    return text


def _validity_section(inspection: Inspection) -> str:
    rows = []
    for rule in RULES:
        entry = inspection.validity[rule]
        values = ", ".join(f"`{name}` {n:,}" for name, n in entry["values"].items()) or "none"
        rows.append([rule, _share(entry["flows"], max(inspection.flows, 1)), values])
    return (
        "## Validity\n\nValues that break a validity rule, as read (nothing was changed here). "
        "At training and prediction the policy (`--invalid`) repairs, drops, keeps or refuses "
        "them.\n\n" + _table(["rule", "flows", "values per feature"], rows)
    )


def _duplicates_section(inspection: Inspection) -> str:
    d = inspection.duplicates
    n = max(inspection.flows, 1)
    return (
        "## Duplicates and conflicting labels\n\n"
        f"- flows whose features and label repeat an earlier flow's: "
        f"{_share(d['exact_duplicates'], n)}\n"
        f"- the same, counting the identifier columns too (ports, addresses, timestamp): "
        f"{_share(d['exact_duplicates_with_identifiers'], n)}\n"
        f"- feature vectors that carry more than one label: {d['conflicting_vectors']:,}, "
        f"held by {d['conflicting_flows']:,} flows\n\n"
        "A random split puts copies of one flow on both sides; `--split dedup` removes "
        "duplicates and conflicting flows before splitting."
    )


def _separation_section(inspection: Inspection, plots: dict, top: int) -> str:
    title = "## Benign versus attack"
    if inspection.separation is None:
        return f"{title}\n\n{inspection.separation_note}"
    ranking = inspection.separation.head(max(top, 10))
    rows = [
        [
            f"`{name}`",
            f"{row['roc_auc']:.4f}",
            "attack higher" if row["roc_auc"] > 0.5 else "benign higher",
        ]
        for name, row in ranking.iterrows()
    ]
    return (
        f"{title}\n\nFeatures ranked by how far the ROC-AUC of the feature alone, as a score "
        "for attack, is from 0.5 (0.5: no separation; 0 or 1: perfect). "
        f"{inspection.separation_note}\n\n"
        + _table(["feature", "ROC-AUC", "direction"], rows)
        + f"\n\n![The most separating features]({plots['separation']})"
    )


def _summary_json(inspection: Inspection) -> str:
    data = {
        "flows": inspection.flows,
        "files": inspection.files,
        "labels": inspection.labels,
        "features": json.loads(inspection.features.to_json(orient="index")),
        "constant_features": inspection.features.index[inspection.features["constant"]].tolist(),
        "duplicates": inspection.duplicates,
        "validity": inspection.validity,
        "time_span": inspection.time_span,
        "separation": None
        if inspection.separation is None
        else json.loads(inspection.separation.to_json(orient="index")),
    }
    return json.dumps(data, indent=2) + "\n"
