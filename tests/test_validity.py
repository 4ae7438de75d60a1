# SPDX-License-Identifier: Apache-2.0
"""Tests of the validity rules and the policy that repairs, drops, keeps or refuses breaches."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.data.readers import read_flows
from flowids.data.validity import ValidityPolicy
from flowids.errors import DataError, UsageError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE_12K = SHARED / "data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz"

# The 12k sample's negative values, checked cell by cell: two flows of Flow Duration -1
# (rows 6048 and 9798, whose rates and IAT mean/max are negative too) and 16 flows with a
# Flow IAT Min of -1, those two among them.
NEGATIVE_12K = {
    "flow_duration_us": 2,
    "flow_bytes_per_s": 2,
    "flow_packets_per_s": 2,
    "flow_iat_mean_us": 2,
    "flow_iat_max_us": 2,
    "flow_iat_min_us": 16,
}


@pytest.fixture(scope="module")
def counted():
    """The 12k sample read with no policy: breaches counted, values as written."""
    return read_flows([SAMPLE_12K])


def test_default_policy():
    policy = ValidityPolicy()

    # negative values are kept by default, so that earlier results stay as they were
    assert policy.to_dict() == {"negative": "keep", "sentinel": "keep", "non-finite": "repair"}
    assert policy.text() == "negative=keep,sentinel=keep,non-finite=repair"
    assert ValidityPolicy.from_dict(None) == policy
    assert ValidityPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repair", ("repair", "keep", "repair")),
        ("drop", ("drop", "keep", "drop")),
        ("fail", ("fail", "keep", "fail")),
        ("drop, sentinel=fail", ("drop", "fail", "drop")),
        ("negative=keep,non_finite=drop", ("keep", "keep", "drop")),
        ("", ("keep", "keep", "repair")),
    ],
)
def test_policy_text(text, expected):
    policy = ValidityPolicy.parse(text)

    assert (policy.negative, policy.sentinel, policy.non_finite) == expected
    assert ValidityPolicy.parse(policy.text()) == policy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keep", "'keep' is not an action for every rule; expected repair, drop or fail"),
        ("sentinel=repair", "sentinel='repair' is not an action of that rule; expected one of"),
        ("non-finite=keep", "non-finite='keep' is not an action of that rule"),
        ("zeros=drop", "unknown rule 'zeros'; expected one of negative, sentinel, non-finite"),
    ],
)
def test_bad_policy_text(text, message):
    with pytest.raises(UsageError, match=message):
        ValidityPolicy.parse(text)


def test_breaches_are_counted_without_a_policy(counted):
    report = counted.reports[0]

    assert {rule: dict(values) for rule, values in report.invalid.items()} == {
        "negative": NEGATIVE_12K,
        # PROVENANCE: Init_Win_bytes_forward/backward is -1 in 4298/6136 rows
        "sentinel": {"init_fwd_window_bytes": 4298, "init_bwd_window_bytes": 6136},
        "non-finite": {"flow_bytes_per_s": 14, "flow_packets_per_s": 14},
    }
    assert dict(report.invalid_flows) == {"negative": 16, "sentinel": 6136, "non-finite": 14}
    assert report.non_finite == report.invalid["non-finite"]
    assert report.to_dict()["validity"]["policy"] is None
    assert int((counted.features["flow_duration_us"] == -1).sum()) == 2


def test_repair_sets_negative_values_to_zero(counted):
    policy = ValidityPolicy.parse("repair")
    table = read_flows([SAMPLE_12K], validity=policy)
    report = table.reports[0]

    assert len(table) == 12001
    assert dict(report.dropped) == {}
    assert dict(report.invalid["negative"]) == NEGATIVE_12K
    assert report.to_dict()["validity"]["policy"] == policy.to_dict()
    rows = np.flatnonzero(counted.origin["row"].isin([6048, 9798]).to_numpy())
    assert counted.features["flow_duration_us"].iloc[rows].tolist() == [-1, -1]
    assert table.features["flow_duration_us"].iloc[rows].tolist() == [0, 0]
    assert table.features["flow_bytes_per_s"].iloc[rows].tolist() == [0, 0]
    assert (table.features.drop(columns=["init_fwd_window_bytes", "init_bwd_window_bytes"]) >= 0)[
        np.isfinite(table.features)
    ].all(axis=None)
    # -1 sentinels are kept as written; non-finite values are left to the preprocessing
    assert int((table.features["init_bwd_window_bytes"] == -1).sum()) == 6136
    # PROVENANCE: 19 'Infinity' cells (5 in Flow Bytes/s, 14 in Flow Packets/s) and 9 empty
    assert int(np.isinf(table.features["flow_bytes_per_s"]).sum()) == 5
    assert int(np.isnan(table.features["flow_bytes_per_s"]).sum()) == 9
    assert int(np.isinf(table.features["flow_packets_per_s"]).sum()) == 14
    unchanged = [c for c in table.features.columns if c not in NEGATIVE_12K]
    assert table.features[unchanged].equals(counted.features[unchanged])


def test_drop_drops_each_flow_once_and_counts_it(counted):
    table = read_flows([SAMPLE_12K], validity=ValidityPolicy.parse("drop"))
    report = table.reports[0]

    # 16 flows with a negative value; 14 with a non-finite one, none of them among the 16
    assert dict(report.dropped) == {"negative value": 16, "non-finite value": 14}
    assert len(table) == report.flows_kept == 12001 - 30
    assert sum(report.labels.values()) == 12001 - 30
    assert report.labels["BENIGN"] == 9637 - 22
    assert np.isfinite(table.features).all(axis=None)
    assert not table.origin["row"].isin([491, 6048, 9798, 1888]).any()
    assert Counter(table.labels.tolist()) == report.labels


def test_the_default_policy_reads_negative_values_as_written(counted):
    table = read_flows([SAMPLE_12K], validity=ValidityPolicy())

    assert table.features.equals(counted.features)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            "fail",
            "row 491, column 'Flow IAT Min': -1 is negative; expected >= 0 us "
            "(flow_iat_min_us cannot be negative). 16 such value(s) in this column from row 1 "
            "to row 12001. To go on, use --invalid negative=repair to set such values to 0 and "
            "count them, negative=drop to drop those flows, or negative=keep",
        ),
        (
            "non-finite=fail",
            "row 1888, column 'Flow Bytes/s': a missing or NaN value is not finite; expected a "
            "finite number per s. 14 such value(s) in this column from row 1 to row 12001. To "
            "go on, use --invalid non-finite=repair",
        ),
        (
            "sentinel=fail",
            "row 2, column 'Init_Win_bytes_backward': -1 marks a window size that was not "
            "observed; expected a size >= 0 bytes",
        ),
    ],
)
def test_fail_names_file_row_column_value_and_the_option(policy, message):
    with pytest.raises(DataError) as info:
        read_flows([SAMPLE_12K], validity=ValidityPolicy.parse(policy))

    assert str(info.value).startswith(f"{SAMPLE_12K}, {message}")


def test_the_same_policy_gives_the_same_flows_chunk_by_chunk():
    from flowids.data.readers import iter_flow_chunks

    whole = read_flows([SAMPLE_12K], validity=ValidityPolicy.parse("drop"))
    chunks = list(iter_flow_chunks(SAMPLE_12K, 5000, ValidityPolicy.parse("drop")))

    assert [len(chunk) for chunk in chunks] == [5000, 5000, 1971]
    assert np.array_equal(
        np.concatenate([chunk.features.to_numpy() for chunk in chunks]),
        whole.features.to_numpy(),
    )


def test_policy_travels_from_training_to_prediction(tmp_path, capsys):
    # trained with --invalid drop: the run reads flows for prediction with the same policy
    from flowids.cli import main

    runs = tmp_path / "runs"
    train = ["train", "--data", str(SAMPLE_12K), "--model", "logistic-regression"]
    assert main([*train, "--invalid", "drop", "--runs-dir", str(runs), "-q"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])

    record = json.loads((run_dir / "run.json").read_text())
    assert record["config"]["invalid"] == "negative=drop,sentinel=keep,non-finite=drop"
    assert record["data"]["dropped"] == {"negative value": 16, "non-finite value": 14}
    assert record["data"]["validity"]["negative"] == {
        "action": "drop",
        "flows": 16,
        "values": NEGATIVE_12K,
    }
    assert record["data"]["repaired"] == {}
    saved = json.loads((run_dir / "preprocessing.json").read_text())
    assert saved["validity"] == {"negative": "drop", "sentinel": "keep", "non-finite": "drop"}

    out = tmp_path / "scores.csv"
    assert main(["predict", str(SAMPLE_12K), "--run", str(run_dir), "-o", str(out), "-q"]) == 0
    assert len(pd.read_csv(out)) == 12001 - 30

    code = main(
        ["predict", str(SAMPLE_12K), "--run", str(run_dir), "-o", str(out), "--invalid", "fail"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "row 491, column 'Flow IAT Min': -1 is negative" in err
    assert "warning: reading flows with validity policy negative=fail" in err
    assert "Traceback" not in err
