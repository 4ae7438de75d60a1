# SPDX-License-Identifier: Apache-2.0
"""The transfer table: one trained run scored on other labelled files, one row per file.

A detector that looks perfect on its own split can miss most attacks of another day or
dataset; this table puts the counts that show it side by side.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from flowids.report import markdown_table

logger = logging.getLogger(__name__)

COLUMNS = (
    "data",
    "in_training_data",
    "flows",
    "attack_flows",
    "tn",
    "fp",
    "fn",
    "tp",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "false_alarms_per_10k_benign",
    "roc_auc",
    "recall_per_attack",
)


def _per_attack(metrics: dict) -> str:
    """'DDoS 0.4210 (421/1000); PortScan ...' for the attack labels of one file."""
    parts = []
    for label, counts in sorted((metrics.get("per_label") or {}).items()):
        if "recall" in counts:
            parts.append(
                f"{label} {counts['recall']:.4f} ({counts['detected']}/{counts['n_flows']})"
            )
    return "; ".join(parts)


def _yes_no(value) -> str:
    return "" if value is None else ("yes" if value else "no")


def transfer_table(results: dict[str, dict]) -> pd.DataFrame:
    """Rows of the transfer table from :func:`flowids.predict.evaluate_files` output."""
    rows = []
    for data, metrics in results.items():
        rows.append(
            {
                "data": data if data == "all files" else Path(data).name,
                "in_training_data": _yes_no(metrics.get("in_training_data")),
                "flows": metrics["n_flows"],
                "attack_flows": metrics["n_attack"],
                **{key: metrics[key] for key in COLUMNS[4:-1]},
                "recall_per_attack": _per_attack(metrics),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def transfer_markdown(frame: pd.DataFrame, run_id: str, threshold: float) -> str:
    """The transfer table as a Markdown section."""
    shown = frame.drop(columns=["recall_per_attack"])
    rows = [[_cell(value) for value in row] for row in shown.itertuples(index=False, name=None)]
    lines = [
        f"# Transfer of run {run_id}",
        "",
        f"Every file scored with the run's model, preprocessing and threshold ({threshold}); "
        "attack is the positive class. Undefined values (no attack flow, or nothing called "
        "attack) show as n/a. A file marked yes under in_training_data is one the run was "
        "trained on: its scores are not a test.",
        "",
        markdown_table(list(shown.columns), rows),
        "",
        "## Recall per attack label",
        "",
    ]
    for data, per_attack in zip(frame["data"], frame["recall_per_attack"], strict=True):
        lines.append(f"- {data}: {per_attack or 'no attack flows'}")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_transfer(frame: pd.DataFrame, results: dict, out_dir: Path, run_id, threshold) -> None:
    """Write transfer.md, transfer.csv and transfer.json (full metrics) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "transfer.md").write_text(transfer_markdown(frame, run_id, threshold))
    frame.to_csv(out_dir / "transfer.csv", index=False)
    (out_dir / "transfer.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    logger.info("wrote %s", out_dir / "transfer.md")
