# SPDX-License-Identifier: Apache-2.0
"""Tests of the fitted preprocessing: feature choice, non-finite repair, scaling and its JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

import flowids.features.preprocessing as preprocessing
from flowids.data.readers import read_flows
from flowids.data.schema import CIC2017, CIC2018, FEATURES
from flowids.errors import DataError, MissingFeaturesError, RunRecordError
from flowids.features.preprocessing import NON_FINITE_RULE, Preprocessor

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Canonical features that never change across the four flows of BR-30 (checked cell by cell
# in the CSV: all 0 in every row).
BR30_CONSTANT = [
    "fwd_psh_flags",
    "bwd_psh_flags",
    "fwd_urg_flags",
    "bwd_urg_flags",
    "fin_flag_count",
    "syn_flag_count",
    "rst_flag_count",
    "urg_flag_count",
    "cwr_flag_count",
    "ece_flag_count",
    "fwd_bulk_bytes_avg",
    "fwd_bulk_packets_avg",
    "fwd_bulk_rate_avg_bytes_per_s",
    "bwd_bulk_bytes_avg",
    "bwd_bulk_packets_avg",
    "bwd_bulk_rate_avg_bytes_per_s",
    "fwd_act_data_packets",
    "active_mean_us",
    "active_std_us",
    "active_max_us",
    "active_min_us",
    "idle_mean_us",
    "idle_std_us",
    "idle_max_us",
    "idle_min_us",
]


@pytest.fixture(scope="module")
def sample_12k():
    return read_flows([SHARED / "data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz"])


@pytest.fixture(scope="module")
def fitted_12k(sample_12k):
    return Preprocessor().fit(sample_12k.features, dialects=sample_12k.dialects)


def _read(cases_dir: Path, name: str):
    return read_flows([cases_dir / name])


def test_missing_feature_lists_missing_and_found(cases_dir, data_dir):
    # case BR-01: a frame lacking a feature is refused with both lists, never a KeyError
    preprocessor = Preprocessor().fit(_read(cases_dir, "BR-01-leading-space-header.csv").features)
    xlsx = read_flows([data_dir / "cicids2017/wednesday_slowloris_benign_500_mlcve_from_xlsx.csv"])

    with pytest.raises(
        MissingFeaturesError,
        match=(
            r"^xlsx: lacks 1 feature\(s\) the trained model needs: init_bwd_window_bytes\. "
            r"Found 75 feature\(s\): flow_duration_us, total_fwd_packets, "
        ),
    ):
        preprocessor.transform(xlsx.features, source="xlsx")
    lacking = xlsx.features.drop(columns=["flow_duration_us", "flow_bytes_per_s"])
    with pytest.raises(
        MissingFeaturesError,
        match=(
            r"^input: lacks 3 feature\(s\) the trained model needs: flow_duration_us, "
            r"flow_bytes_per_s, init_bwd_window_bytes\. Found 73 feature\(s\): "
            r"total_fwd_packets, .*, idle_min_us$"
        ),
    ):
        preprocessor.transform(lacking)


def test_non_finite_rule_at_fit_and_transform(cases_dir):
    # case BR-03: NaN -> 0, +inf -> largest finite training value; the same at prediction
    table = _read(cases_dir, "BR-03-infinity-nan-rates.csv")
    preprocessor = Preprocessor().fit(table.features)

    out = preprocessor.transform(table.features)

    assert out.shape == (5, len(preprocessor.feature_names_))
    assert np.isfinite(out).all()
    assert table.labels.tolist() == ["BENIGN", "BENIGN", "BENIGN", "PortScan", "DDoS"]
    # the file's rates, as float32, with the rule applied by hand
    bytes_max = float(np.float32(24005.69627))
    packets_max = float(np.float32(91.54714678))
    assert preprocessor.posinf_values_["flow_bytes_per_s"] == bytes_max
    assert preprocessor.posinf_values_["flow_packets_per_s"] == packets_max
    repaired_bytes = np.array([bytes_max, bytes_max, 0, 0, float(np.float32(1.199496212))])
    repaired_packets = np.array([packets_max] * 4 + [float(np.float32(0.9995801763))])
    for name, repaired in (
        ("flow_bytes_per_s", repaired_bytes),
        ("flow_packets_per_s", repaired_packets),
    ):
        j = preprocessor.feature_names_.index(name)
        assert preprocessor.mean_[j] == pytest.approx(repaired.mean(), rel=1e-12)
        assert preprocessor.scale_[j] == pytest.approx(repaired.std(), rel=1e-12)
        expected = ((repaired - repaired.mean()) / repaired.std()).astype(np.float32)
        np.testing.assert_allclose(out[:, j], expected, rtol=1e-6)
    assert dict(preprocessor.last_repairs_) == {"flow_bytes_per_s": 3, "flow_packets_per_s": 3}
    # the same rule applied at fit and at transform: training flows come out standardised
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-6)
    assert "+Infinity -> the largest finite training value" in NON_FINITE_RULE


def test_non_finite_at_prediction_uses_training_values(cases_dir):
    # case BR-03: a flow scored later gets the values fitted on training flows
    table = _read(cases_dir, "BR-03-infinity-nan-rates.csv")
    preprocessor = Preprocessor().fit(table.features)
    later = table.features.iloc[[4]].copy()
    later["flow_bytes_per_s"] = [-np.inf]
    later["flow_packets_per_s"] = [np.nan]

    out = preprocessor.transform(later)

    j = preprocessor.feature_names_.index("flow_bytes_per_s")
    k = preprocessor.feature_names_.index("flow_packets_per_s")
    smallest = preprocessor.neginf_values_["flow_bytes_per_s"]
    assert smallest == float(np.float32(1.199496212))
    assert out[0, j] == np.float32((smallest - preprocessor.mean_[j]) / preprocessor.scale_[j])
    assert out[0, k] == np.float32((0.0 - preprocessor.mean_[k]) / preprocessor.scale_[k])


def test_scaler_only_sees_finite_numbers(cases_dir, monkeypatch):
    # case BR-03: the scaler is never handed NaN or Infinity
    seen: list[np.ndarray] = []

    class RecordingScaler(StandardScaler):
        def fit(self, X, y=None, sample_weight=None):  # noqa: N803 (scikit-learn's name)
            seen.append(np.array(X, copy=True))
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(preprocessing, "StandardScaler", RecordingScaler)
    table = _read(cases_dir, "BR-03-infinity-nan-rates.csv")
    assert not np.isfinite(table.features.to_numpy()).all()

    Preprocessor().fit(table.features)

    assert len(seen) == 1
    assert seen[0].shape == (5, 47)
    assert np.isfinite(seen[0]).all()


def test_fit_excludes_the_outlier_it_never_saw(cases_dir):
    # case BR-19: fitted on the training part only, the outlier cannot move mean or scale
    table = _read(cases_dir, "BR-19-leakage-outlier.csv")
    train, outlier = table.features.iloc[:9], table.features.iloc[[9]]
    assert outlier["flow_duration_us"].iloc[0] == np.float32(119999998)
    preprocessor = Preprocessor().fit(train)
    j = preprocessor.feature_names_.index("flow_duration_us")

    # six BENIGN flows of 98310 us and three DDoS flows of 5002100 us
    gap = 5002100 - 98310
    assert preprocessor.mean_[j] == pytest.approx(98310 + gap / 3, rel=1e-12)
    assert preprocessor.scale_[j] == pytest.approx(gap * math.sqrt(2) / 3, rel=1e-12)
    with_outlier = Preprocessor().fit(table.features)
    assert with_outlier.mean_[j] > preprocessor.mean_[j] + 1e7

    mean, scale = preprocessor.mean_.copy(), preprocessor.scale_.copy()
    alone = preprocessor.transform(outlier)
    with_others = preprocessor.transform(pd.concat([train.iloc[[0, 8]], outlier]))
    assert np.array_equal(alone[0], with_others[2])
    assert np.array_equal(preprocessor.mean_, mean)
    assert np.array_equal(preprocessor.scale_, scale)
    expected = (float(np.float32(119999998)) - mean[j]) / scale[j]
    assert alone[0, j] == np.float32(expected)
    assert alone[0, j] == pytest.approx(51.16, abs=0.01)


def test_single_flow_gets_the_score_it_gets_in_a_larger_file(cases_dir, fitted_12k, sample_12k):
    # case BR-20a/20b: one row transforms exactly as it does inside a larger frame
    single = _read(cases_dir, "BR-20a-predict-single-flow.csv")
    pair = _read(cases_dir, "BR-20b-predict-one-benign-one-attack.csv")
    assert pair.labels.tolist() == ["BENIGN", "DDoS"]

    alone = fitted_12k.transform(single.features)
    in_pair = fitted_12k.transform(pair.features)
    in_sample = fitted_12k.transform(pd.concat([sample_12k.features, single.features]))

    assert alone.shape == (1, len(fitted_12k.feature_names_))
    assert np.array_equal(alone[0], in_pair[1])
    assert np.array_equal(alone[0], in_sample[-1])
    assert np.array_equal(fitted_12k.transform(pair.features.iloc[[0]])[0], in_pair[0])


def test_constant_columns_dropped_and_recorded(cases_dir, tmp_path):
    # case BR-30: constant features are dropped on training flows, recorded, never divided by 0
    table = _read(cases_dir, "BR-30-constant-columns.csv")

    preprocessor = Preprocessor().fit(table.features)

    assert preprocessor.constant_features_ == BR30_CONSTANT
    assert preprocessor.feature_names_ == [n for n in FEATURES if n not in BR30_CONSTANT]
    assert len(preprocessor.feature_names_) == 76 - 25
    assert np.all(preprocessor.scale_ > 0)
    path = tmp_path / "preprocessing.json"
    preprocessor.save(path)
    assert json.loads(path.read_text())["constant_features_dropped"] == BR30_CONSTANT
    # a later flow where a constant feature does change: still finite, no division by zero
    later = table.features.copy()
    later["fwd_psh_flags"] = 1.0
    with np.errstate(divide="raise", invalid="raise"):
        out = preprocessor.transform(later)
    assert np.isfinite(out).all()
    assert np.array_equal(out, preprocessor.transform(table.features))


def test_real_constant_columns(fitted_12k):
    # PROVENANCE: eight columns are constant zero in the real CIC-IDS2017 rows
    assert fitted_12k.constant_features_ == [
        "bwd_psh_flags",
        "bwd_urg_flags",
        "fwd_bulk_bytes_avg",
        "fwd_bulk_packets_avg",
        "fwd_bulk_rate_avg_bytes_per_s",
        "bwd_bulk_bytes_avg",
        "bwd_bulk_packets_avg",
        "bwd_bulk_rate_avg_bytes_per_s",
    ]
    assert len(fitted_12k.feature_names_) == 68
    assert fitted_12k.dialects_ == [CIC2017]


def test_json_round_trip_gives_identical_output(fitted_12k, sample_12k, tmp_path):
    path = tmp_path / "preprocessing.json"
    fitted_12k.save(path)

    loaded = Preprocessor.load(path)

    assert loaded.to_dict() == fitted_12k.to_dict()
    assert np.array_equal(
        loaded.transform(sample_12k.features), fitted_12k.transform(sample_12k.features)
    )
    data = json.loads(path.read_text())
    assert data["format"] == "flowids-preprocessing/1"
    assert data["non_finite_rule"] == NON_FINITE_RULE
    assert data["dialects"] == [CIC2017]


def test_transform_of_the_12k_sample_is_finite(fitted_12k, sample_12k):
    out = fitted_12k.transform(sample_12k.features)

    assert out.dtype == np.float32
    assert out.shape == (12001, 68)
    assert np.isfinite(out).all()
    assert sum(fitted_12k.last_repairs_.values()) == 28


def test_transform_of_no_flows(fitted_12k, sample_12k):
    assert fitted_12k.transform(sample_12k.features.iloc[:0]).shape == (0, 68)


def test_extra_columns_are_ignored_and_order_does_not_matter(fitted_12k, sample_12k):
    part = sample_12k.features.iloc[:50]
    shuffled = part[part.columns[::-1]].assign(extra=1.0)

    assert np.array_equal(fitted_12k.transform(shuffled), fitted_12k.transform(part))


def test_fit_refuses_no_flows_and_one_flow(cases_dir):
    single = _read(cases_dir, "BR-20a-predict-single-flow.csv")

    with pytest.raises(DataError, match="cannot fit preprocessing on 0 training flows"):
        Preprocessor().fit(single.features.iloc[:0])
    with pytest.raises(DataError, match="every one of the 76 features is constant in the 1 train"):
        Preprocessor().fit(single.features)


def test_other_producer_refused_unless_allowed(fitted_12k, caplog):
    fitted_12k.check_dialects([CIC2017], "a.csv", allow_other=False)

    with pytest.raises(DataError, match=r"^b.csv: flow records written by cse-cic-ids2018, but"):
        fitted_12k.check_dialects([CIC2018], "b.csv", allow_other=False)
    fitted_12k.check_dialects([CIC2018], "b.csv", allow_other=True)
    assert "scoring anyway as asked" in caplog.text


def test_load_refuses_damaged_files(fitted_12k, tmp_path):
    missing = tmp_path / "none.json"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**fitted_12k.to_dict(), "format": "flowids-preprocessing/0"}))
    short = tmp_path / "short.json"
    short.write_text(json.dumps({**fitted_12k.to_dict(), "mean": [0.0]}))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"format": "flowids-preprocessing/1", "features": []}))

    with pytest.raises(RunRecordError, match="no preprocessing file"):
        Preprocessor.load(missing)
    with pytest.raises(RunRecordError, match="not valid JSON"):
        Preprocessor.load(broken)
    with pytest.raises(RunRecordError, match="'flowids-preprocessing/0' is not"):
        Preprocessor.load(other)
    with pytest.raises(RunRecordError, match="mean has 1 value"):
        Preprocessor.load(short)
    with pytest.raises(RunRecordError, match="incomplete or damaged preprocessing"):
        Preprocessor.load(partial)


def test_validity_policy_is_saved_and_old_files_read_with_the_default(fitted_12k, sample_12k):
    from flowids.data.validity import ValidityPolicy

    policy = ValidityPolicy.parse("drop,sentinel=fail")
    fitted = Preprocessor().fit(sample_12k.features, validity=policy)
    saved = fitted.to_dict()

    assert saved["validity"] == {"negative": "drop", "sentinel": "fail", "non-finite": "drop"}
    assert Preprocessor.from_dict(saved).validity == policy
    older = {key: value for key, value in fitted_12k.to_dict().items() if key != "validity"}
    assert Preprocessor.from_dict(older).validity == ValidityPolicy()
    damaged = {**saved, "validity": {"negative": "clip"}}
    with pytest.raises(RunRecordError, match="incomplete or damaged preprocessing"):
        Preprocessor.from_dict(damaged)
