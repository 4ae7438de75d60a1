# SPDX-License-Identifier: Apache-2.0
"""Tests for flowids.splits: random, dedup, time and files splits, twins and duplicates."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from flowids.data.readers import FlowTable, read_flows
from flowids.errors import UsageError
from flowids.splits import SPLITS, Split, count_twins, find_duplicates, flow_times, make_split

PRESET_SEED = 20200924
GLF_FILES = (
    "thursday_webattack_xss_652_glf.csv",
    "friday_portscan_only_1000_glf.csv",
    "friday_ddos_file_head_299_glf.csv",
)


def _read(shared_dir: Path, *names: str) -> FlowTable:
    """Read files named relative to shared/ (cases/... or data/...)."""
    return read_flows([shared_dir / name for name in names])


@pytest.fixture(scope="module")
def sample_12k() -> FlowTable:
    """The 12k all-days sample, read once for this module (tests only read it)."""
    shared = Path(__file__).resolve().parents[1].parent / "shared"
    return _read(shared, "data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz")


@pytest.fixture
def glf_table(shared_dir: Path) -> FlowTable:
    return _read(shared_dir, *(f"data/cicids2017/{name}" for name in GLF_FILES))


def _independent_twins(features: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> int:
    """Twins counted another way: row tuples, NaN replaced by a marker no feature holds."""
    rows = [tuple(row) for row in features.fillna(-1e30).itertuples(index=False)]
    seen = {rows[i] for i in train}
    return sum(rows[i] in seen for i in test)


def _check_partition(split: Split, n_flows: int) -> None:
    kept = np.arange(n_flows) if split.kept is None else split.kept
    both = np.concatenate([split.train, split.test])
    assert len(both) == len(set(both.tolist()))
    assert sorted(both.tolist()) == sorted(kept.tolist())


def test_split_names() -> None:
    assert SPLITS == ("random", "dedup", "time", "files")


def test_unknown_split_lists_allowed_names(sample_12k: FlowTable) -> None:
    with pytest.raises(UsageError, match="'day' is not known; expected one of random, dedup, time"):
        make_split(sample_12k, "day", test_fraction=0.2, seed=1)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_test_fraction_must_be_inside_zero_one(sample_12k: FlowTable, fraction: float) -> None:
    with pytest.raises(UsageError, match="strictly between 0 and 1"):
        make_split(sample_12k, "random", test_fraction=fraction, seed=1)


def test_count_twins_by_hand() -> None:
    features = pd.DataFrame(
        {
            "a": np.array([1.0, 2.0, 1.0, np.nan, 2.0, -0.0], dtype=np.float32),
            "b": np.array([np.nan, 5.0, np.nan, 5.0, 6.0, 5.0], dtype=np.float32),
        }
    )

    # train: (1, NaN) and (2, 5). Test (1, NaN) is a twin (NaN equals NaN); (NaN, 5),
    # (2, 6) and (-0, 5) are not.
    assert count_twins(features, np.array([0, 1]), np.array([2, 3, 4, 5])) == 1
    # (-0.0, 5) equals (0, 5) as values.
    features.loc[1, "a"] = 0.0
    assert count_twins(features, np.array([0, 1]), np.array([2, 3, 4, 5])) == 2


def test_br13_duplicates_and_conflicts(shared_dir: Path) -> None:
    # case BR-13: duplicates conflicting labels
    table = _read(shared_dir, "cases/BR-13-duplicates-conflicting-labels.csv")

    counts = find_duplicates(table.features, table.labels)

    # Rows 1-4: one BENIGN flow four times -> 3 exact duplicates. Rows 5-8: one vector,
    # once BENIGN and three times DoS Hulk -> 2 exact duplicates (the 2nd and 3rd DoS Hulk),
    # 1 conflicting vector of 4 flows. Row 9: a single BENIGN flow.
    assert counts == {"exact_duplicates": 5, "conflicting_vectors": 1, "conflicting_flows": 4}


def test_br13_dedup_split(shared_dir: Path) -> None:
    # case BR-13: duplicates conflicting labels
    table = _read(shared_dir, "cases/BR-13-duplicates-conflicting-labels.csv")

    split = make_split(table, "dedup", test_fraction=0.5, seed=0)

    # The 4 flows of the conflicting vector go whatever their label; of the rest, the
    # repeated copies of row 1 go. Rows 1 and 9 (positions 0 and 8) stay.
    assert split.removed == {"exact duplicate": 3, "conflicting label": 4}
    assert split.kept.tolist() == [0, 8]
    assert sorted([*split.train.tolist(), *split.test.tolist()]) == [0, 8]
    assert split.test_twins_in_train == 0
    assert split.details["duplicates"] == {
        "exact_duplicates": 5,
        "conflicting_vectors": 1,
        "conflicting_flows": 4,
    }


def test_find_duplicates_length_mismatch() -> None:
    features = pd.DataFrame({"a": [1.0, 1.0]})

    with pytest.raises(UsageError, match="1 labels for 2 flows"):
        find_duplicates(features, np.array(["BENIGN"], dtype=object))


def test_random_split_is_the_seeded_stratified_split(shared_dir: Path) -> None:
    # Every label here has at least 4 flows, so the strata are the labels themselves.
    table = _read(shared_dir, "data/cicids2017/wednesday_random_sample_1k_mlcve.csv")

    split = make_split(table, "random", test_fraction=0.2, seed=PRESET_SEED)

    train, test = train_test_split(
        np.arange(len(table)),
        test_size=0.2,
        random_state=PRESET_SEED,
        stratify=table.labels,
        shuffle=True,
    )
    assert split.train.tolist() == train.tolist()
    assert split.test.tolist() == test.tolist()
    assert (len(split.train), len(split.test)) == (800, 200)
    assert split.stratified_by == "label"
    assert split.removed == {}
    assert split.kept is None


def test_random_split_single_flow_label_joins_largest_of_its_class(
    sample_12k: FlowTable,
) -> None:
    # The 12k sample has one Web Attack - XSS flow; it is stratified with DoS Hulk (985).
    strata = sample_12k.labels.copy()
    strata[strata == "Web Attack - XSS"] = "DoS Hulk"

    split = make_split(sample_12k, "random", test_fraction=0.2, seed=PRESET_SEED)

    train, test = train_test_split(
        np.arange(len(sample_12k)),
        test_size=0.2,
        random_state=PRESET_SEED,
        stratify=strata,
        shuffle=True,
    )
    assert split.train.tolist() == train.tolist()
    assert split.test.tolist() == test.tolist()
    assert split.stratified_by == "label"


@pytest.mark.parametrize(
    "name",
    [
        "data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz",
        "data/cicids2017/wednesday_random_sample_1k_mlcve.csv",
        "data/cicids2017/grouped_labels_sample_6311_no_dstport.csv.gz",
    ],
)
@pytest.mark.parametrize("split_name", ["random", "dedup"])
def test_stratification_keeps_labels_in_both_parts(
    shared_dir: Path, name: str, split_name: str
) -> None:
    table = _read(shared_dir, name)

    split = make_split(table, split_name, test_fraction=0.2, seed=PRESET_SEED)

    kept = np.arange(len(table)) if split.kept is None else split.kept
    counts = Counter(table.labels[kept].tolist())
    train_labels = set(table.labels[split.train].tolist())
    test_labels = set(table.labels[split.test].tolist())
    for label, n in counts.items():
        if n >= 2:
            assert label in train_labels and label in test_labels, label
    # Proportions hold to within one flow per label.
    for label, n in counts.items():
        assert abs(Counter(table.labels[split.test].tolist())[label] - 0.2 * n) < 1.0 + 1e-9


def test_random_split_counts_twins(sample_12k: FlowTable, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flowids.splits"):
        split = make_split(sample_12k, "random", test_fraction=0.2, seed=PRESET_SEED)

    expected = _independent_twins(sample_12k.features, split.train, split.test)
    assert expected > 0
    assert split.test_twins_in_train == expected
    assert (
        f"random split (seed {PRESET_SEED}): 9,600 training flows, 2,401 test flows, "
        f"{expected:,} test flows with a twin in training"
    ) in caplog.text
    _check_partition(split, len(sample_12k))


def test_no_twin_crosses_a_dedup_split(
    sample_12k: FlowTable, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="flowids.splits"):
        split = make_split(sample_12k, "dedup", test_fraction=0.2, seed=PRESET_SEED)

    assert split.test_twins_in_train == 0
    assert _independent_twins(sample_12k.features, split.train, split.test) == 0
    duplicates = split.details["duplicates"]
    # Exact duplicates inside conflicting vectors are counted under 'conflicting label'.
    assert split.removed["conflicting label"] == duplicates["conflicting_flows"]
    assert split.removed["exact duplicate"] < duplicates["exact_duplicates"]
    assert len(split.kept) == len(sample_12k) - sum(split.removed.values())
    assert not np.isin(split.train, np.setdiff1d(np.arange(len(sample_12k)), split.kept)).any()
    assert "0 test flows with a twin in training" in caplog.text
    assert f"removed {split.removed['exact duplicate']:,} exact duplicate" in caplog.text
    _check_partition(split, len(sample_12k))


def test_dedup_split_of_clean_flows_keeps_all(shared_dir: Path) -> None:
    table = _read(shared_dir, "data/cicids2017/thursday_webattack_sqli_21_glf.csv")
    assert find_duplicates(table.features, table.labels)["exact_duplicates"] == 0

    split = make_split(table, "dedup", test_fraction=0.25, seed=3)

    assert split.kept is None
    assert split.removed == {"exact duplicate": 0, "conflicting label": 0}


def test_time_split_respects_order(glf_table: FlowTable) -> None:
    split = make_split(glf_table, "time", test_fraction=0.2, seed=PRESET_SEED)

    times = flow_times(glf_table)
    assert times[split.train].max() <= times[split.test].min()
    # The training part is in time order, so its last part (validation) is the latest.
    assert (np.diff(times[split.train].astype(np.int64)) >= 0).all()
    # 652 + 1000 + 299 = 1951 flows; ceil(0.2 * 1951) = 391 test flows: the 299 DDoS-file
    # flows at 15:30 and the last 92 of the 628 PortScan flows at 14:51 (by row).
    assert (len(split.train), len(split.test)) == (1560, 391)
    assert split.details["train_time"] == {
        "first": "2017-07-06T10:15:00",
        "last": "2017-07-07T14:51:00",
    }
    assert split.details["test_time"] == {
        "first": "2017-07-07T14:51:00",
        "last": "2017-07-07T15:30:00",
    }
    assert split.details["test_flows_at_train_end"] == 92
    assert split.stratified_by == "none"
    _check_partition(split, len(glf_table))


def test_time_split_ties_keep_file_then_row_order(glf_table: FlowTable) -> None:
    split = make_split(glf_table, "time", test_fraction=0.2, seed=1)

    times = flow_times(glf_table)
    portscan = glf_table.origin["file"].str.endswith("friday_portscan_only_1000_glf.csv")
    at_1451 = np.flatnonzero(portscan.to_numpy() & (times == np.datetime64("2017-07-07T14:51")))
    rows = glf_table.origin["row"].to_numpy()
    in_train = at_1451[np.isin(at_1451, split.train)]
    in_test = at_1451[np.isin(at_1451, split.test)]
    assert rows[in_train].max() < rows[in_test].min()
    order = np.concatenate([split.train, split.test])
    tied = order[np.isin(order, at_1451)]
    assert rows[tied].tolist() == sorted(rows[tied].tolist())


def test_time_split_does_not_depend_on_the_seed(glf_table: FlowTable) -> None:
    first = make_split(glf_table, "time", test_fraction=0.3, seed=1)
    second = make_split(glf_table, "time", test_fraction=0.3, seed=2)

    assert first.train.tolist() == second.train.tolist()
    assert first.test.tolist() == second.test.tolist()


def test_time_split_across_dialects(shared_dir: Path) -> None:
    table = _read(
        shared_dir,
        "data/cse-cic-ids2018/thursday_2018-02-15_slowloris_benign_8654_modified.csv.gz",
        "data/cicids2017/friday_ddos_only_1000_glf.csv",
    )

    split = make_split(table, "time", test_fraction=0.1, seed=0)

    # The 2017 file is older, so every one of its flows trains.
    ddos = np.flatnonzero(table.origin["file"].str.endswith("friday_ddos_only_1000_glf.csv"))
    assert np.isin(ddos, split.train).all()
    assert split.details["train_time"]["first"] == "2017-07-07T15:56:00"
    assert split.details["test_time"]["last"] == "2018-02-15T11:02:37"


def test_time_split_names_files_without_timestamps(shared_dir: Path) -> None:
    table = _read(
        shared_dir,
        "data/cicids2017/friday_ddos_only_1000_glf.csv",
        "data/cicids2017/wednesday_random_sample_1k_mlcve.csv",
    )

    with pytest.raises(UsageError, match="wednesday_random_sample_1k_mlcve.csv has none") as error:
        make_split(table, "time", test_fraction=0.2, seed=0)
    assert "friday_ddos_only" not in str(error.value)


def test_files_split_never_mixes_files(shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    names = [
        "data/cicids2017/wednesday_random_sample_1k_mlcve.csv",
        "data/cicids2017/friday_ddos_only_1000_glf.csv",
        "data/cicids2017/friday_portscan_only_1000_glf.csv",
    ]
    table = _read(shared_dir, *names)
    test_files = [str(shared_dir / names[1]), str(shared_dir / names[2])]

    with caplog.at_level(logging.INFO, logger="flowids.splits"):
        split = make_split(table, "files", test_fraction=0.2, seed=5, test_files=test_files)

    files = table.origin["file"].to_numpy()
    assert set(files[split.train]) == {str(shared_dir / names[0])}
    assert set(files[split.test]) == set(test_files)
    assert (len(split.train), len(split.test)) == (1000, 2000)
    assert split.details["train_files"] == [str(shared_dir / names[0])]
    assert split.details["test_files"] == test_files
    assert split.test_twins_in_train == _independent_twins(table.features, split.train, split.test)
    # The training flows are shuffled with the seed: same seed, same order.
    assert split.train.tolist() != sorted(split.train.tolist())
    again = make_split(table, "files", test_fraction=0.2, seed=5, test_files=test_files)
    other = make_split(table, "files", test_fraction=0.2, seed=6, test_files=test_files)
    assert again.train.tolist() == split.train.tolist()
    assert other.train.tolist() != split.train.tolist()
    assert "files split: training on" in caplog.text
    _check_partition(split, len(table))


def test_files_split_matches_the_same_file_by_another_path(shared_dir: Path) -> None:
    names = [
        "data/cicids2017/friday_ddos_only_1000_glf.csv",
        "data/cicids2017/friday_portscan_only_1000_glf.csv",
    ]
    table = _read(shared_dir, *names)
    other_spelling = shared_dir / "data" / "cicids2017" / ".." / "cicids2017" / Path(names[1]).name

    split = make_split(table, "files", test_fraction=0.2, seed=0, test_files=[other_spelling])

    assert split.details["test_files"] == [str(shared_dir / names[1])]


@pytest.mark.parametrize(
    ("test_files", "message"),
    [
        (None, "the files split needs test files"),
        ([], "the files split needs test files"),
        (["elsewhere.csv"], "elsewhere.csv are not among the input files"),
        ("both", "cover every input file"),
    ],
)
def test_files_split_refuses_bad_test_files(
    shared_dir: Path, test_files: list[str] | str | None, message: str
) -> None:
    names = [
        "data/cicids2017/friday_ddos_only_1000_glf.csv",
        "data/cicids2017/friday_portscan_only_1000_glf.csv",
    ]
    table = _read(shared_dir, *names)
    if test_files == "both":
        test_files = [str(shared_dir / name) for name in names]

    with pytest.raises(UsageError, match=message):
        make_split(table, "files", test_fraction=0.2, seed=0, test_files=test_files)


def test_test_files_only_for_files_split(sample_12k: FlowTable) -> None:
    with pytest.raises(UsageError, match="only the 'files' split uses them"):
        make_split(sample_12k, "random", test_fraction=0.2, seed=0, test_files=["a.csv"])


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("name", ["random", "dedup"])
def test_br14_rare_classes_do_not_crash(shared_dir: Path, name: str, fraction: float) -> None:
    # case BR-14: rare classes
    table = _read(shared_dir, "cases/BR-14-rare-classes.csv")

    split = make_split(table, name, test_fraction=fraction, seed=0)

    _check_partition(split, len(table))
    assert len(split.train) >= 1 and len(split.test) >= 1
    assert split.test_twins_in_train == _independent_twins(table.features, split.train, split.test)


def test_br14_strata(shared_dir: Path) -> None:
    # case BR-14: rare classes
    table = _read(shared_dir, "cases/BR-14-rare-classes.csv")

    # BENIGN 5, DDoS 4, Heartbleed 1 (joins DDoS), Infiltration 2: three strata, and
    # ceil(0.2 * 12) = 3 test flows, one from each.
    by_label = make_split(table, "random", test_fraction=0.2, seed=0)
    assert by_label.stratified_by == "label"
    test_labels = Counter(table.labels[by_label.test].tolist())
    assert test_labels["BENIGN"] == 1 and test_labels["Infiltration"] == 1
    assert test_labels["DDoS"] + test_labels["Heartbleed"] == 1

    # ceil(0.1 * 12) = 2 test flows cannot hold three strata: benign/attack only.
    binary = make_split(table, "random", test_fraction=0.1, seed=0)
    assert binary.stratified_by == "binary"
    assert sorted(table.labels[binary.test].tolist())[0] == "BENIGN"

    # dedup: the vector of all 5 BENIGN and 2 Infiltration flows conflicts (7 flows); the 4
    # DDoS flows are one record (3 exact duplicates); DDoS and Heartbleed stay.
    dedup = make_split(table, "dedup", test_fraction=0.5, seed=0)
    assert dedup.removed == {"exact duplicate": 3, "conflicting label": 7}
    assert sorted(table.labels[dedup.kept].tolist()) == ["DDoS", "Heartbleed"]


def test_br14_files_and_time(shared_dir: Path) -> None:
    # case BR-14: rare classes
    table = _read(
        shared_dir,
        "cases/BR-14-rare-classes.csv",
        "cases/BR-13-duplicates-conflicting-labels.csv",
    )
    br13 = str(shared_dir / "cases" / "BR-13-duplicates-conflicting-labels.csv")

    files = make_split(table, "files", test_fraction=0.2, seed=0, test_files=[br13])
    assert (len(files.train), len(files.test)) == (12, 9)

    with pytest.raises(UsageError, match="BR-14-rare-classes.csv, .*BR-13-duplicates"):
        make_split(table, "time", test_fraction=0.2, seed=0)


def test_split_to_dict_is_json_safe(glf_table: FlowTable) -> None:
    for name, extra in [
        ("random", {}),
        ("dedup", {}),
        ("time", {}),
        ("files", {"test_files": [glf_table.origin["file"].iloc[0]]}),
    ]:
        split = make_split(glf_table, name, test_fraction=0.2, seed=1, **extra)

        data = json.loads(json.dumps(split.to_dict(), allow_nan=False))

        assert data["name"] == name
        assert data["train_flows"] + data["test_flows"] == (
            len(glf_table) if split.kept is None else len(split.kept)
        )
        assert data["test_twins_in_train"] == split.test_twins_in_train


def test_split_needs_two_flows(shared_dir: Path) -> None:
    table = _read(shared_dir, "cases/BR-13-duplicates-conflicting-labels.csv").take(np.array([0]))

    with pytest.raises(UsageError, match="holds 1 flow\\(s\\); a split needs at least 2"):
        make_split(table, "random", test_fraction=0.5, seed=0)
