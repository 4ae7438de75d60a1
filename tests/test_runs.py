# SPDX-License-Identifier: Apache-2.0
"""Tests of run directories: atomic writing, the README report, listing, showing, comparing."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.errors import RunRecordError, UsageError
from flowids.report import render_run_readme, reproduce_command
from flowids.runs import (
    COMPARE_COLUMNS,
    LIST_COLUMNS,
    RunWriter,
    compare_runs,
    list_runs,
    load_run,
    resolve_run,
    show_run,
)

FIRST = datetime(2026, 12, 3, 17, 15, 0)
SECOND = datetime(2026, 12, 4, 9, 30, 5)


def make_record(tn: int, fp: int, fn: int, tp: int, seconds: float = 120.0) -> dict:
    """A hand-made run record whose test metrics follow from the four confusion counts."""
    n_benign, n_attack = tn + fp, fn + tp
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    fpr = fp / n_benign
    return {
        "kind": "train",
        "model": "bilstm",
        "preset": "seed-20200924",
        "optimizer": "rmsprop",
        "flowids_version": "0.1.0",
        "config": {"epochs": 10, "batch_size": 256, "learning_rate": 0.001, "seed": 20200924},
        "data": {
            "files": [
                {
                    "path": "/data/cicids2017/Wednesday.csv",
                    "sha256": "ab" * 32,
                    "dialect": "cicids2017-machinelearningcsv",
                    "rows_read": 10_003,
                    "flows_kept": 10_000,
                }
            ],
            "dropped": {"empty row": 3},
            "repaired": {"non-finite flow_bytes_per_s -> 0": 19},
            "labels": {"BENIGN": 7_500, "DoS Hulk": 2_500},
        },
        "split": {
            "name": "random",
            "seed": 20200924,
            "train_flows": 6_000,
            "validation_flows": 2_000,
            "test_flows": n_benign + n_attack,
            "test_twins_in_train": 40,
        },
        "preprocessing": {
            "n_features_in": 78,
            "n_features": 70,
            "constant_features_dropped": ["bwd_psh_flags", "fwd_urg_flags"],
            "non_finite_rule": "non-finite rates -> 0, counted",
            "scaling": "standard",
        },
        "architecture": [
            {
                "name": "bidirectional",
                "type": "Bidirectional",
                "output_shape": "(None, 1, 128)",
                "params": 69_120,
            },
            {"name": "dense", "type": "Dense", "output_shape": "(None, 1)", "params": 129},
        ],
        "total_params": 69_249,
        "trainable_params": 69_249,
        "training": {"seconds": seconds, "epochs_run": 10, "flows_per_s": 500.0},
        "metrics": {
            "test": {
                "tn": tn,
                "fp": fp,
                "fn": fn,
                "tp": tp,
                "n_flows": n_benign + n_attack,
                "n_benign": n_benign,
                "n_attack": n_attack,
                "threshold": 0.5,
                "accuracy": (tn + tp) / (n_benign + n_attack),
                "precision": precision,
                "recall": recall,
                "f1": 2 * precision * recall / (precision + recall),
                "false_positive_rate": fpr,
                "false_alarms_per_10k_benign": fpr * 10_000,
                "roc_auc": 0.99,
                "pr_auc": 0.98,
                "per_label": {
                    "BENIGN": {"n_flows": n_benign, "detected": fp, "false_positive_rate": fpr},
                    "DoS Hulk": {"n_flows": n_attack, "detected": tp, "recall": recall},
                },
                "notes": [],
            }
        },
        "prediction": {"flows_per_s": 20_000.0},
        "environment": {"python": "3.11.2", "keras": "3.6.0", "numpy": "2.1.0"},
        "plots": {"learning_curves": "learning_curves.png", "roc": "roc.png"},
        "files": {"model": "model.keras", "history": "history.csv"},
    }


def write_run(runs_dir: Path, now: datetime, record: dict) -> Path:
    with RunWriter(runs_dir, "seed-20200924", "rmsprop", now=now) as writer:
        (writer.path / "model.keras").write_bytes(b"weights")
        return writer.finish(record)


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Run A (older): 1490/10/25/475. Run B (newer): 1497/3/100/400."""
    first = write_run(tmp_path, FIRST, make_record(1490, 10, 25, 475, seconds=120.0))
    second = write_run(tmp_path, SECOND, make_record(1497, 3, 100, 400, seconds=300.5))
    return first, second


def test_finish_publishes_exactly_one_complete_run(tmp_path: Path) -> None:
    with RunWriter(tmp_path, "seed-20200924", "rmsprop", now=FIRST) as writer:
        assert writer.path.parent == tmp_path
        assert writer.path.name.startswith(".incomplete-20261203-171500-seed-20200924-rmsprop-")
        (writer.path / "model.keras").write_bytes(b"weights")
        final = writer.finish(make_record(1490, 10, 25, 475))

    assert final == writer.final_path == tmp_path / "20261203-171500-seed-20200924-rmsprop"
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
    assert sorted(p.name for p in final.iterdir()) == ["README.md", "model.keras", "run.json"]
    record = json.loads((final / "run.json").read_text())
    assert record["run_id"] == final.name
    assert record["created"] == "2026-12-03T17:15:00"
    assert record["metrics"]["test"]["tp"] == 475
    assert len(list_runs(tmp_path)) == 1


def test_run_json_is_sorted_indented_and_converts_numpy(tmp_path: Path) -> None:
    record = {
        "model": "bilstm",
        "threshold": np.float32(0.5),
        "tp": np.int64(475),
        "curve": np.array([0.25, 0.75]),
        "roc_auc": float("nan"),
        "data_path": Path("/data/x.csv"),
    }

    final = write_run(tmp_path, FIRST, record)

    text = (final / "run.json").read_text()
    assert text.startswith('{\n  "created": "2026-12-03T17:15:00",\n  "curve": [\n    0.25,')
    stored = json.loads(text)
    assert list(stored) == sorted(stored)
    assert stored["threshold"] == 0.5
    assert stored["tp"] == 475
    assert stored["curve"] == [0.25, 0.75]
    assert stored["roc_auc"] is None
    assert stored["data_path"] == "/data/x.csv"


def test_exception_inside_block_leaves_nothing(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "seed-20200924", "rmsprop", now=FIRST)
    with pytest.raises(RuntimeError, match="fit diverged"), writer:
        (writer.path / "model.keras").write_bytes(b"half written")
        raise RuntimeError("fit diverged")

    assert list(tmp_path.iterdir()) == []
    assert list_runs(tmp_path).empty
    assert writer.final_path is None


def test_block_without_finish_is_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with RunWriter(tmp_path, "seed-20200924", "rmsprop", now=FIRST) as writer:
        (writer.path / "history.csv").write_text("epoch,loss\n")

    assert list(tmp_path.iterdir()) == []
    assert "ended without finish()" in caplog.text


def test_unstorable_value_fails_finish_and_leaves_nothing(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "seed-20200924", "rmsprop", now=FIRST)
    with (
        pytest.raises(UsageError, match=r"record\['config'\]\['callback'\] has type object"),
        writer,
    ):
        writer.finish({"config": {"callback": object()}})

    assert list(tmp_path.iterdir()) == []


def test_finish_twice_or_outside_block_is_a_usage_error(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "seed-20200924", "rmsprop", now=FIRST)
    with pytest.raises(UsageError, match="inside the `with` block"):
        writer.finish({})

    with writer:
        writer.finish({})
        with pytest.raises(UsageError, match="call it once"):
            writer.finish({})
    assert [p.name for p in tmp_path.iterdir()] == ["20261203-171500-seed-20200924-rmsprop"]


@pytest.mark.parametrize("preset", ["../escape", "", ".hidden", "a b"])
def test_preset_that_cannot_name_a_directory_is_refused(tmp_path: Path, preset: str) -> None:
    with pytest.raises(UsageError, match="cannot be part of a directory name"):
        RunWriter(tmp_path, preset, "rmsprop")


def test_name_clash_appends_a_suffix(tmp_path: Path) -> None:
    paths = [write_run(tmp_path, FIRST, {"model": "bilstm"}) for _ in range(3)]

    base = "20261203-171500-seed-20200924-rmsprop"
    assert [p.name for p in paths] == [base, f"{base}-2", f"{base}-3"]
    assert load_run(paths[2])["run_id"] == f"{base}-3"
    assert "# Run " + base + "-3" in (paths[2] / "README.md").read_text()


def test_list_runs_is_newest_first_and_skips_incomplete(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    runs_dir = first.parent
    (runs_dir / ".incomplete-20261205-000000-seed-20200924-rmsprop-99").mkdir()
    (runs_dir / "20261206-000000-crashed").mkdir()
    (runs_dir / "20261206-000000-crashed" / "model.keras").write_bytes(b"")

    runs = list_runs(runs_dir)

    assert list(runs.columns) == LIST_COLUMNS
    assert list(runs["run_id"]) == [second.name, first.name]
    newest = runs.iloc[0]
    assert newest["precision"] == pytest.approx(400 / 403)
    assert newest["recall"] == pytest.approx(0.8)
    assert newest["false_positive_rate"] == pytest.approx(0.002)
    assert newest["test_flows"] == 2000
    assert newest["data"] == "Wednesday.csv"
    assert newest["split"] == "random"
    assert newest["training_seconds"] == 300.5
    assert newest["path"] == str(second)


def test_list_runs_of_missing_directory_is_empty(tmp_path: Path) -> None:
    runs = list_runs(tmp_path / "runs")

    assert runs.empty
    assert list(runs.columns) == LIST_COLUMNS


def test_show_run_gives_results_with_counts(two_runs: tuple[Path, Path]) -> None:
    text = show_run(two_runs[0])

    assert text.startswith("run       20261203-171500-seed-20200924-rmsprop")
    assert "precision 0.9794  recall 0.9500 (475 of 500 attacks)" in text
    assert "false-positive rate 0.0067 (10 of 1,500 benign), 66.7 false alarms" in text
    assert "6,000 train / 2,000 validation / 2,000 test flows; 40 test twins" in text
    assert "69,249 params" in text


def test_compare_runs_writes_table_csv_and_chart(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    out_dir = tmp_path / "comparison"

    frame = compare_runs(list(two_runs), out_dir)

    assert list(frame.columns) == COMPARE_COLUMNS
    assert list(frame.index) == [p.name for p in two_runs]
    csv = pd.read_csv(out_dir / "comparison.csv", index_col="run_id")
    assert csv.loc[two_runs[0].name, "precision"] == pytest.approx(475 / 485)
    assert csv.loc[two_runs[1].name, "recall"] == pytest.approx(0.8)
    assert csv.loc[two_runs[1].name, "false_alarms_per_10k_benign"] == pytest.approx(20.0)
    assert csv.loc[two_runs[1].name, "prediction_flows_per_s"] == 20_000.0
    markdown = (out_dir / "comparison.md").read_text()
    assert f"| `{two_runs[0].name}` | bilstm | seed-20200924 | random | Wednesday.csv |" in (
        markdown
    )
    assert "| 0.9794 | 0.9500 | 0.9645 | 0.0067 | 66.67 | 0.9900 | 120.0 | 20,000 |" in markdown
    assert (out_dir / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_needs_runs() -> None:
    with pytest.raises(UsageError, match="no runs given"):
        compare_runs([])


def test_readme_reports_architecture_confusion_and_reproduction(
    two_runs: tuple[Path, Path],
) -> None:
    readme = (two_runs[0] / "README.md").read_text()

    assert readme.startswith("# Run 20261203-171500-seed-20200924-rmsprop\n")
    assert "| bidirectional | Bidirectional | `(None, 1, 128)` | 69,120 |" in readme
    assert "| dense | Dense | `(None, 1)` | 129 |" in readme
    assert "Total parameters: 69,249; trainable: 69,249." in readme
    confusion = readme.split("### Confusion matrix")[1].split("###")[0]
    benign_row, attack_row = [line for line in confusion.splitlines() if line[:3] == "| b"] + [
        line for line in confusion.splitlines() if line[:3] == "| a"
    ]
    assert "1,490" in benign_row and "| 10 " in benign_row
    assert "| 25 " in attack_row and "475" in attack_row
    assert "This run trained a bilstm model from preset `seed-20200924`" in readme
    assert "precision 0.9794, recall 0.9500 (475 of 500 attack flows detected)" in readme
    assert "(10 of 1,500 benign flows called attacks), that is 66.67 false alarms" in readme
    assert "| `Wednesday.csv` | cicids2017-machinelearningcsv | 10,003 | 10,000 |" in readme
    assert "| empty row | 3 |" in readme
    assert "| BENIGN | 7,500 | 0.7500 |" in readme
    assert "40 test flows (2.0 %) have an exact twin" in readme
    assert "![Learning curves" in readme and "](learning_curves.png)" in readme
    assert (
        "flowids train --data /data/cicids2017/Wednesday.csv --preset seed-20200924 "
        "--model bilstm --split random --seed 20200924"
    ) in readme
    assert "| keras | 3.6.0 |" in readme


def test_readme_of_a_bare_record_has_only_what_is_there() -> None:
    text = render_run_readme({"run_id": "20261203-171500-seed-20200924-rmsprop"})

    assert text.startswith("# Run 20261203-171500-seed-20200924-rmsprop\n")
    assert "No test metrics were recorded." in text
    assert "## Data" not in text
    assert "## Model" not in text
    assert reproduce_command({"run_id": "x"}) == "flowids train"


def test_load_run_reports_missing_path(tmp_path: Path) -> None:
    with pytest.raises(RunRecordError, match="no such run directory"):
        load_run(tmp_path / "20261203-171500-seed-20200924-rmsprop")


def test_load_run_says_a_hidden_temporary_directory_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / ".incomplete-20261203-171500-seed-20200924-rmsprop-4242"
    path.mkdir()

    with pytest.raises(RunRecordError, match="incomplete run .no run.json.: its writer stopped"):
        load_run(path)


def test_load_run_says_a_directory_with_files_but_no_record_looks_incomplete(
    tmp_path: Path,
) -> None:
    (tmp_path / "model.keras").write_bytes(b"")

    with pytest.raises(RunRecordError, match="no run.json; it looks like an incomplete run"):
        load_run(tmp_path)


def test_load_run_refuses_a_damaged_record(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"run_id": ')

    with pytest.raises(RunRecordError, match="not a readable run record"):
        load_run(tmp_path)

    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(RunRecordError, match="expected a JSON object with a run_id, found list"):
        load_run(tmp_path)


def test_load_run_accepts_the_record_file(two_runs: tuple[Path, Path]) -> None:
    assert load_run(two_runs[0] / "run.json")["run_id"] == two_runs[0].name


def test_resolve_run_by_latest_id_prefix_and_path(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    runs_dir = first.parent

    assert resolve_run("latest", runs_dir) == second
    assert resolve_run(first.name, runs_dir) == first
    assert resolve_run("20261203", runs_dir) == first
    assert resolve_run(str(second), Path("elsewhere")) == second
    with pytest.raises(RunRecordError, match="ambiguous .* matches 20261203-"):
        resolve_run("2026120", runs_dir)
    with pytest.raises(RunRecordError, match="no run with that id"):
        resolve_run("20250101", runs_dir)


def test_resolve_latest_without_runs(tmp_path: Path) -> None:
    with pytest.raises(RunRecordError, match="no complete runs, so no latest run"):
        resolve_run("latest", tmp_path)
