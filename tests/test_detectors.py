# SPDX-License-Identifier: Apache-2.0
"""Tests of the detector face: baselines and the MLP trained, saved and reloaded alike."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from flowids.cli import main
from flowids.data.labels import is_attack
from flowids.data.readers import read_flows
from flowids.errors import RunRecordError
from flowids.features.preprocessing import Preprocessor
from flowids.models.detectors import BaselineDetector, build_detector, load_detector
from flowids.models.presets import resolve_config
from flowids.predict import load_trained_run, predict_files

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEDNESDAY = SHARED / "data/cicids2017/wednesday_random_sample_1k_mlcve.csv"


@pytest.fixture(scope="module")
def flows():
    table = read_flows([WEDNESDAY])
    x = Preprocessor().fit(table.features).transform(table.features)
    return x, is_attack(table.labels)


@pytest.mark.parametrize("model", ["random-forest", "gradient-boosting", "logistic-regression"])
def test_baseline_round_trip(model, flows, tmp_path):
    x, y = flows
    detector = build_detector(x.shape[1], resolve_config(overrides={"model": model}))

    detector.fit(x[:700], y[:700], x[700:], y[700:], progress=False)
    before = detector.attack_probability(x[700:])
    name = detector.save(tmp_path)
    after = load_detector(tmp_path, name).attack_probability(x[700:])

    assert name == "model.skops"
    assert before.shape == (300,)
    assert ((before >= 0) & (before <= 1)).all()
    np.testing.assert_array_equal(before, after)
    # Every baseline separates this Wednesday sample well above chance.
    assert ((before >= 0.5) == y[700:]).mean() > 0.9


def test_mlp_has_about_the_bilstm_size(flows):
    x, _ = flows
    mlp = build_detector(68, resolve_config(overrides={"model": "mlp"}))
    bilstm = build_detector(68, resolve_config())

    # flatten; 68*384+384 + 4*384 | 384*192+192 + 4*192 | 192*64+64 + 4*64 | 64*16+16 + 4*16
    # | 16*2+2 = 27,776 + 74,688 + 12,608 + 1,104 + 34 + (1,536+768+256+64 batchnorm)
    assert mlp.model.count_params() == 116_466
    assert bilstm.model.count_params() == 121_202
    assert [layer.name for layer in mlp.model.layers][:3] == ["flows", "flatten", "dense_1"]


def test_untrusted_saved_model_is_refused(tmp_path):
    # A .skops file holding a function outside scikit-learn must not be loaded.
    import skops.io

    skops.io.dump(make_pipeline(FunctionTransformer(os.system)), tmp_path / "model.skops")

    with pytest.raises(RunRecordError, match="types flowids does not load: .*system"):
        BaselineDetector.load(tmp_path / "model.skops")


def test_random_forest_run_through_cli(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            str(WEDNESDAY),
            "--model",
            "random-forest",
            "--runs-dir",
            str(tmp_path),
            "-q",
        ]
    )

    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    record = json.loads((run_dir / "run.json").read_text())
    assert code == 0
    assert run_dir.name.endswith("-seed-20200924-random-forest")
    assert record["model"] == "random-forest"
    assert record["estimator"] == "RandomForestClassifier"
    assert (run_dir / "model.skops").is_file() and not (run_dir / "model.keras").exists()
    assert not (run_dir / "learning_curves.png").exists()

    summary = predict_files(
        load_trained_run(run_dir), [run_dir / "test_flows.csv.gz"], tmp_path / "o.csv"
    )
    recorded = record["metrics"]["test"]
    assert (summary.metrics["tp"], summary.metrics["fp"]) == (recorded["tp"], recorded["fp"])
