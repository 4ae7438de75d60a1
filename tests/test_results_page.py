# SPDX-License-Identifier: Apache-2.0
"""The results page generator: every number it prints comes from the run it cites."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    spec = importlib.util.spec_from_file_location("results", REPO / "benchmarks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(page: str, header_start: str) -> list[dict]:
    """Rows of every Markdown table in ``page`` whose header starts with ``header_start``."""
    rows, header = [], None
    for line in page.splitlines():
        if line.startswith(f"| {header_start} "):
            header = [cell.strip() for cell in line.strip("|").split("|")]
        elif header and line.startswith("| ") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append(dict(zip(header, cells, strict=True)))
        elif not line.startswith("|"):
            header = None
    return rows


def test_page_numbers_match_run_records(results, tmp_path):
    experiments = [results.EXPERIMENTS[0], results.EXPERIMENTS[2]]
    sections = results.run_all(
        tmp_path,
        epochs=1,
        models=("random-forest", "logistic-regression"),
        experiments=experiments,
        repeat_models=("logistic-regression",),
        repeats=2,
        window_presets=(),
    )

    page = results.render(sections, 1.0, quick=True, experiments=experiments)

    rows = [row for row in _rows(page, "model") if "precision" in row and "twins" in row]
    assert len(rows) == 4
    for row in rows:
        record = json.loads((tmp_path / row["run"] / "run.json").read_text())
        test = record["metrics"]["test"]
        assert row["model"] == record["model"]
        assert row["precision"] == f"{test['precision']:.4f}"
        assert row["recall"] == f"{test['recall']:.4f}"
        assert row["test flows"] == f"{test['n_flows']:,}"
        assert row["twins"] == f"{record['split']['test_twins_in_train']:,}"
    # The Wednesday -> Friday runs test on the three Friday files only.
    friday = [row for row in rows if row["test flows"] == "11,998"]
    assert len(friday) == 2
    transfer = [row for row in _rows(page, "model") if "flows" in row and "twins" not in row]
    assert {row["flows"] for row in transfer} == {"8,654"}
    assert "Quick mode" in page


def test_window_findings_read_the_table(results):
    rows = [
        {"preset": "seed-20200924", "rule": "fixed", "f1": 0.90, "fpr": 0.30, "roc_auc": 0.95},
        {"preset": "windows-t8", "rule": "fixed", "f1": 0.99, "fpr": 0.01, "roc_auc": 0.99},
        {"preset": "seed-20200924", "rule": "best-f1", "f1": 0.98, "fpr": 0.02, "roc_auc": 0.95},
        {"preset": "windows-t8", "rule": "best-f1", "f1": 0.97, "fpr": 0.02, "roc_auc": 0.99},
    ]

    lines = results.window_findings(rows)

    assert lines[0].startswith("- Threshold `fixed`: F1 0.9000 with one flow per step against")
    assert "windows scores higher here" in lines[0]
    assert "one flow per step scores higher here" in lines[1]
