# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests of training, the run record and prediction through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.cli import main
from flowids.data.readers import read_flows
from flowids.predict import evaluate_files, load_trained_run, predict_files
from flowids.runs import list_runs

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEDNESDAY = SHARED / "data/cicids2017/wednesday_random_sample_1k_mlcve.csv"
CASES = SHARED / "cases"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One short training run on the real Wednesday sample, shared by the tests below."""
    runs = tmp_path_factory.mktemp("runs")
    code = main(["train", "--data", str(WEDNESDAY), "--epochs", "4", "--runs-dir", str(runs), "-q"])
    assert code == 0
    (path,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    return path


def test_train_prints_run_directory_last(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(CASES / "BR-14-rare-classes.csv"),
            "--epochs",
            "1",
            "--runs-dir",
            str(tmp_path),
            "-q",
        ]
    )

    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert Path(out[-1]).is_dir()
    assert Path(out[-1]).parent == tmp_path
    assert Path(out[-1]).name.endswith("-seed-20200924-rmsprop")


def test_run_record_is_complete(run_dir):
    expected = {
        "README.md",
        "run.json",
        "model.keras",
        "preprocessing.json",
        "decision.json",
        "metrics.json",
        "config.json",
        "environment.json",
        "history.csv",
        "test_flows.csv.gz",
        "learning_curves.png",
        "precision.png",
        "recall.png",
        "roc.png",
        "confusion_matrix.png",
    }
    assert expected <= {p.name for p in run_dir.iterdir()}

    record = json.loads((run_dir / "run.json").read_text())
    assert record["config"]["epochs"] == 4
    assert record["config"]["seed"] == 20200924
    assert record["split"]["test_flows"] == 300
    assert record["split"]["train_flows"] + record["split"]["validation_flows"] == 700
    assert record["data"]["files"][0]["rows_read"] == 1000
    assert record["data"]["labels"]["BENIGN"] == 630

    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history[["loss", "val_loss", "precision", "recall"]].notna().all().all()

    readme = (run_dir / "README.md").read_text()
    assert "bilstm_1" in readme and "| Bidirectional |" in readme
    assert "![" in readme and "roc.png" in readme
    assert record["data"]["files"][0]["sha256"] in readme
    assert "### Validity rules" in readme
    duplicates = record["data"]["duplicates"]
    assert f"held {duplicates['exact_duplicates']:,} exact duplicate flow records" in readme


def test_preprocessing_is_plain_json(run_dir):
    data = json.loads((run_dir / "preprocessing.json").read_text())

    assert data["format"] == "flowids-preprocessing/1"
    assert len(data["mean"]) == len(data["features"]) == len(data["scale"])
    assert "bwd_psh_flags" in data["constant_features_dropped"]
    assert not list(run_dir.glob("*.pkl")) and not list(run_dir.glob("*.pickle"))


def test_predict_on_test_flows_reproduces_metrics(run_dir, tmp_path):
    run = load_trained_run(run_dir)
    recorded = json.loads((run_dir / "metrics.json").read_text())["test"]

    summary = predict_files(run, [run_dir / "test_flows.csv.gz"], tmp_path / "scores.csv")

    for key in ("tn", "fp", "fn", "tp", "n_flows"):
        assert summary.metrics[key] == recorded[key]
    for key in ("precision", "recall", "roc_auc", "pr_auc"):
        assert summary.metrics[key] == pytest.approx(recorded[key], abs=1e-12)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == 300
    assert set(scores["verdict"]) <= {"attack", "benign"}
    assert (scores["verdict"] == "attack").sum() == recorded["tp"] + recorded["fp"]


def test_model_reloads_in_fresh_process(run_dir):
    # The same scores come out of a new interpreter that only has the run directory.
    script = textwrap.dedent(
        f"""
        import os
        os.environ["KERAS_BACKEND"] = "jax"
        import numpy as np
        from flowids.data.readers import read_flows
        from flowids.predict import load_trained_run
        run = load_trained_run({str(run_dir)!r})
        table = read_flows([{str(run_dir / "test_flows.csv.gz")!r}])
        np.save({str(run_dir.parent / "fresh.npy")!r}, run.score(table.features))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)

    fresh = np.load(run_dir.parent / "fresh.npy")
    here = load_trained_run(run_dir).score(read_flows([run_dir / "test_flows.csv.gz"]).features)
    np.testing.assert_array_equal(fresh, here)


def test_one_row_scores_as_inside_larger_file(run_dir):
    # case BR-20a/BR-20b: a one-row file gets the same score as that row inside a larger one.
    run = load_trained_run(run_dir)
    single = read_flows([CASES / "BR-20a-predict-single-flow.csv"])
    pair = read_flows([CASES / "BR-20b-predict-one-benign-one-attack.csv"])
    larger = read_flows([CASES / "BR-30-constant-columns.csv", WEDNESDAY])

    p_single = run.score(single.features)
    p_pair = run.score(pair.features)
    p_larger = run.score(larger.features)

    assert p_single.shape == (1,)
    assert p_pair[1] == p_single[0]
    assert p_larger[2] == p_single[0]  # third row of BR-30 is the same flow


def test_short_predict_file(run_dir, tmp_path):
    # case BR-22: a file shorter than any window still gets a verdict per flow.
    code = main(
        [
            "predict",
            "--run",
            str(run_dir),
            str(CASES / "BR-22-short-predict-file.csv"),
            "-o",
            str(tmp_path / "out.jsonl"),
            "-q",
        ]
    )

    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert code == 0
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert {"source_file", "attack_probability", "verdict", "label", "dst_port"} <= set(first) or {
        "file",
        "attack_probability",
        "verdict",
        "label",
    } <= set(first)
    assert 0.0 <= first["attack_probability"] <= 1.0


def test_decision_rule_is_stored_with_model(run_dir):
    # case BR-24: the decision is a stored threshold on the attack probability, not an argmax.
    decision = json.loads((run_dir / "decision.json").read_text())

    assert decision["model"] == "bilstm"
    assert decision["model_file"] == "model.keras"
    assert decision["output"] == "attack probability"
    assert (decision["rule"], decision["threshold"]) == ("fixed", 0.5)
    assert decision["n_validation"] == 210
    assert load_trained_run(run_dir).threshold == 0.5


def test_prediction_never_refits(run_dir, tmp_path):
    # Scoring a file whose values are far from the training data leaves the saved
    # preprocessing untouched, and scores of the other flows do not move.
    before = (run_dir / "preprocessing.json").read_bytes()
    run = load_trained_run(run_dir)
    outlier = read_flows([CASES / "BR-19-leakage-outlier.csv"])

    alone = run.score(outlier.features.iloc[:9])
    together = run.score(outlier.features)

    np.testing.assert_array_equal(alone, together[:9])
    assert (run_dir / "preprocessing.json").read_bytes() == before


def test_identifiers_kept_in_output(run_dir, tmp_path):
    # case BR-17: identifier columns never become features but are kept for output.
    code = main(
        [
            "predict",
            "--run",
            str(run_dir),
            str(CASES / "BR-17-traffic-labelling-identifiers.csv"),
            "-o",
            str(tmp_path / "out.csv"),
            "-q",
        ]
    )

    out = pd.read_csv(tmp_path / "out.csv")
    assert code == 0
    assert {"flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "timestamp"} <= set(out.columns)
    run = load_trained_run(run_dir)
    assert not {"src_port", "dst_port", "protocol"} & set(run.preprocessor.feature_names_)


def test_missing_features_are_refused(run_dir, tmp_path, capsys):
    frame = pd.read_csv(WEDNESDAY, nrows=5)
    frame.drop(columns=[" Flow Duration", " Flow IAT Max"]).to_csv(
        tmp_path / "cut.csv", index=False
    )

    code = main(
        ["predict", "--run", str(run_dir), str(tmp_path / "cut.csv"), "-o", str(tmp_path / "o.csv")]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert "flow_duration_us" in err and "flow_iat_max_us" in err and "cut.csv" in err
    assert not (tmp_path / "o.csv").exists()


def test_crashed_run_is_not_listed(tmp_path, monkeypatch):
    import flowids.training as training

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(training, "write_plots", broken)

    with pytest.raises(RuntimeError, match="disk full"):
        main(
            ["train", "--data", str(WEDNESDAY), "--epochs", "1", "--runs-dir", str(tmp_path), "-q"]
        )

    assert list_runs(tmp_path).empty
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "nowhere.csv"], "nowhere.csv: no such file"),
        (["train", "--data", str(CASES / "BR-23-softmax-metric-fixture.csv")], "none of its 3"),
        (["train", "--data", str(WEDNESDAY), "--epochs", "0"], "epochs"),
        (["train", "--data", str(WEDNESDAY), "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--data", str(WEDNESDAY), "--set", "bogus=1"], "bogus"),
        (["predict", "--run", "nope", str(WEDNESDAY), "-o", "x.csv"], "nope"),
        (
            ["train", "--data", str(SHARED / "data/pcap/chrissanders_portscan.pcap")],
            "is a packet capture, not a flow CSV; turn it into flows with `flowids extract`",
        ),
        (["train", "--data", str(WEDNESDAY), "--runs-dir", "/proc/nope"], "cannot create it"),
    ],
)
def test_bad_input_exits_2_with_message(argv, message, tmp_path, capsys):
    if "--runs-dir" not in argv:
        argv = [*argv, "--runs-dir", str(tmp_path)]
    code = main(argv)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for option in ("--data", "--preset", "--config", "--epochs", "--seed", "--runs-dir", "--set"):
        assert option in out


def test_predict_mixed_layouts_keeps_columns_aligned(run_dir, tmp_path):
    # An MLCVE file (no identifiers) and a GeneratedLabelledFlows file (all identifiers) in
    # one output: every row has the same columns, filled where the input had them.
    glf = SHARED / "data/cicids2017/friday_ddos_file_head_299_glf.csv"

    summary = predict_files(load_trained_run(run_dir), [WEDNESDAY, glf], tmp_path / "out.csv")

    out = pd.read_csv(tmp_path / "out.csv", low_memory=False)
    assert summary.flows == len(out) == 1299
    assert out["src_ip"].iloc[:1000].isna().all()
    assert out["src_ip"].iloc[1000:].notna().all()
    assert (out["dst_port"].notna()).all()
    assert summary.metrics["n_flows"] == 1299


def test_evaluate_writes_transfer_table(run_dir, tmp_path, capsys):
    ddos = SHARED / "data/cicids2017/friday_ddos_only_1000_glf.csv"
    benign = SHARED / "data/cicids2017/friday_ddos_file_head_299_glf.csv"

    code = main(
        ["evaluate", "--run", str(run_dir), str(ddos), str(benign), "-o", str(tmp_path), "-q"]
    )

    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "transfer.csv")
    assert code == 0
    assert list(table["data"]) == [ddos.name, benign.name, "all files"]
    assert list(table["flows"]) == [1000, 299, 1299]
    assert table.loc[0, "tp"] + table.loc[0, "fn"] == 1000
    assert table.loc[0, "tn"] + table.loc[0, "fp"] == 0
    assert table.loc[1, "tn"] + table.loc[1, "fp"] == 299
    assert table.loc[2, "tp"] == table.loc[0, "tp"]
    assert table.loc[0, "recall"] == pytest.approx(table.loc[0, "tp"] / 1000)
    assert "DDoS" in table.loc[0, "recall_per_attack"]
    assert "# Transfer of run" in out and (tmp_path / "transfer.json").is_file()


def test_evaluate_refuses_unlabelled_files(run_dir, capsys):
    lab = SHARED / "data/cicflowmeter_lab/kihy_slowloris_flows.csv"

    code = main(["evaluate", "--run", str(run_dir), str(lab), "--allow-other-producer"])

    assert code == 2
    assert "needs a label for every flow" in capsys.readouterr().err


def test_same_seed_gives_same_metrics(tmp_path, run_dir):
    # Repeatability: the module's run, trained again with the same data, config and seed.
    code = main(
        ["train", "--data", str(WEDNESDAY), "--epochs", "4", "--runs-dir", str(tmp_path), "-q"]
    )

    (again,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    first = json.loads((run_dir / "metrics.json").read_text())["test"]
    second = json.loads((again / "metrics.json").read_text())["test"]
    assert code == 0
    assert first == second
    assert pd.read_csv(run_dir / "history.csv").equals(pd.read_csv(again / "history.csv"))


def test_repeats_report_mean_and_spread(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(WEDNESDAY),
            "--model",
            "logistic-regression",
            "--repeats",
            "3",
            "--runs-dir",
            str(tmp_path),
            "-q",
        ]
    )

    out = capsys.readouterr().out
    runs = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    seeds = [json.loads((p / "config.json").read_text())["seed"] for p in runs]
    assert code == 0
    assert sorted(seeds) == [20200924, 20200925, 20200926]
    assert "over 3 seeds: metric mean (std, min-max)" in out
    assert out.strip().splitlines()[-1] in {str(p) for p in runs}


def test_predict_refuses_to_overwrite_an_input(run_dir, tmp_path, capsys):
    own = tmp_path / "own.csv"
    own.write_bytes((CASES / "BR-14-rare-classes.csv").read_bytes())

    code = main(["predict", "--run", str(run_dir), str(own), "-o", str(own)])

    assert code == 2
    assert "is also an input file" in capsys.readouterr().err
    assert own.read_bytes() == (CASES / "BR-14-rare-classes.csv").read_bytes()


def test_predict_refuses_a_directory_as_output(run_dir, tmp_path, capsys):
    code = main(["predict", "--run", str(run_dir), str(WEDNESDAY), "-o", str(tmp_path)])

    assert code == 2
    assert "is a directory" in capsys.readouterr().err


def test_predict_writes_gzip_when_asked(run_dir, tmp_path):
    summary = predict_files(
        load_trained_run(run_dir),
        [CASES / "BR-20b-predict-one-benign-one-attack.csv"],
        tmp_path / "scores.csv.gz",
    )

    out = pd.read_csv(tmp_path / "scores.csv.gz", compression="gzip")
    assert summary.flows == len(out) == 2
    assert list(out["label"]) == ["BENIGN", "DDoS"]


def test_predict_header_only_file(run_dir, tmp_path):
    header = (CASES / "BR-20a-predict-single-flow.csv").read_text().splitlines()[0]
    (tmp_path / "empty.csv").write_text(header + "\n")

    summary = predict_files(load_trained_run(run_dir), [tmp_path / "empty.csv"], tmp_path / "o.csv")

    assert summary.flows == 0
    assert summary.metrics is None


def test_evaluate_flags_the_runs_own_data(run_dir, tmp_path, caplog):
    ddos = SHARED / "data/cicids2017/friday_ddos_only_1000_glf.csv"

    results = evaluate_files(load_trained_run(run_dir), [WEDNESDAY, ddos])

    assert results[str(WEDNESDAY)]["in_training_data"] is True
    assert results[str(ddos)]["in_training_data"] is False
    assert "part of the run's own data" in caplog.text
