# SPDX-License-Identifier: Apache-2.0
"""Tests of `flowids inspect`, and of every shared CSV through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowids.cli import main
from flowids.inspect import inspect_files

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE_12K = SHARED / "data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Every CSV the project was given: real samples and broken-input cases.
ALL_CSVS = sorted(
    str(path.relative_to(SHARED))
    for folder in ("data", "cases")
    for path in (SHARED / folder).rglob("*.csv*")
)


@pytest.fixture(scope="module")
def report_12k(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect-12k")
    return inspect_files([SAMPLE_12K], folder)


def test_12k_report_states_what_the_file_holds(report_12k):
    text = report_12k.read_text()

    # PROVENANCE: 12,001 flows, 9,637 BENIGN, 8 constant columns, 12 labels
    assert "- flows: 12,001 in 1 file(s)" in text
    assert "- labels: 12; BENIGN: 9,637 (80.30 %)" in text
    assert "- features: 76, of which 8 constant" in text
    assert "- producers (dialects): cicids2017" in text
    assert "- time span: unknown (no timestamps)" in text
    # 1,047 flows repeat an earlier flow's features and label; with the destination port
    # as well 281 do (PROVENANCE counts 276 identical lines; some flows were printed with
    # fewer digits by one day file and are the same numbers once read)
    assert "repeat an earlier flow's: 1,047 (8.72 %)" in text
    assert "counting the identifier columns too (ports, addresses, timestamp): 281" in text
    assert "feature vectors that carry more than one label: 3, held by 27 flows" in text
    assert "| sentinel | 6,136 (51.13 %) |" in text
    assert "| `flow_bytes_per_s` | 8,721 | 9 (0.07 %) | 5 (0.04 %) |" in text
    assert "| DoS Hulk | 985 | 985 |" in text
    assert "2,364 attack and 9,637 benign" in text


def test_12k_report_files(report_12k):
    folder = report_12k.parent
    summary = json.loads((folder / "inspect.json").read_text())

    assert sorted(p.name for p in folder.iterdir()) == [
        "inspect.json",
        "labels.png",
        "non_finite.png",
        "report.md",
        "separating_features.png",
    ]
    for name in ("labels.png", "non_finite.png", "separating_features.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in report_12k.read_text()
    assert summary["flows"] == 12001
    assert summary["labels"]["BENIGN"] == 9637
    assert summary["constant_features"] == [
        "bwd_psh_flags",
        "bwd_urg_flags",
        "fwd_bulk_bytes_avg",
        "fwd_bulk_packets_avg",
        "fwd_bulk_rate_avg_bytes_per_s",
        "bwd_bulk_bytes_avg",
        "bwd_bulk_packets_avg",
        "bwd_bulk_rate_avg_bytes_per_s",
    ]
    assert summary["duplicates"] == {
        "exact_duplicates": 1047,
        "conflicting_vectors": 3,
        "conflicting_flows": 27,
        "exact_duplicates_with_identifiers": 281,
    }
    assert summary["files"][0]["sha256"]
    ranking = summary["separation"]
    # the minimum packet length separates best on this sample: attacks send empty packets
    assert next(iter(ranking)) == "packet_length_min_bytes"
    assert ranking["packet_length_min_bytes"]["roc_auc"] == pytest.approx(0.2505, abs=5e-5)


def test_time_span_and_files_with_timestamps(data_dir, tmp_path):
    report = inspect_files(
        [
            data_dir / "cicids2017/friday_ddos_only_1000_glf.csv",
            data_dir / "cicids2017/friday_portscan_only_1000_glf.csv",
        ],
        tmp_path,
    )
    text = report.read_text()

    # 12-hour clock without AM/PM: 3:56 is 15:56, 1:05 is 13:05
    assert "- time span: 2017-07-07 13:05:00 to 2017-07-07 15:56:00" in text
    assert "friday_ddos_only_1000_glf.csv`: flows from 2017-07-07 15:56:00" in text
    assert "| DDoS | 1,000 | 1,000 | 0 |" in text


def test_unlabelled_lab_flows(data_dir, tmp_path):
    report = inspect_files([data_dir / "cicflowmeter_lab/kihy_slowloris_flows.csv"], tmp_path)
    text = report.read_text()

    assert "Every flow is marked unlabelled, so benign and attack cannot be compared." in text
    assert "- producers (dialects): cse-cic-ids2018" in text
    assert not (tmp_path / "separating_features.png").exists()


def test_inspect_command(tmp_path, capsys):
    out = tmp_path / "report"

    assert main(["inspect", str(SAMPLE_12K), "-o", str(out), "--top", "3", "-q"]) == 0

    assert capsys.readouterr().out.strip() == f"wrote {out / 'report.md'}"
    assert (out / "separating_features.png").exists()
    assert main(["inspect", str(SAMPLE_12K), "-o", str(out), "--top", "0"]) == 2
    assert "error: --top 0: expected a positive number of features" in capsys.readouterr().err


# Every shared CSV through the command line: it reads, or stops with a message


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A fast logistic-regression run on the 12k sample, to predict with."""
    runs = tmp_path_factory.mktemp("runs")
    argv = ["train", "--data", str(SAMPLE_12K), "--model", "logistic-regression"]
    assert main([*argv, "--runs-dir", str(runs), "-q"]) == 0
    return next(path for path in runs.iterdir() if path.is_dir())


@pytest.mark.parametrize("name", ALL_CSVS)
def test_every_shared_csv_reads_or_stops_with_a_message(name, quick_run, tmp_path, capsys):
    path = SHARED / name

    predict = main(
        ["predict", str(path), "--run", str(quick_run), "-o", str(tmp_path / "p.csv"), "-q"]
    )
    predict_err = capsys.readouterr().err
    inspect = main(["inspect", str(path), "-o", str(tmp_path / "inspect"), "-q"])
    inspect_err = capsys.readouterr().err

    for code, err in ((predict, predict_err), (inspect, inspect_err)):
        assert "Traceback" not in err
        assert code in (0, 2)
        if code:
            assert err.startswith("error: ") or "\nerror: " in err
            assert str(path) in err or "--allow-other-producer" in err
    assert (inspect == 0) == (tmp_path / "inspect" / "report.md").exists()
