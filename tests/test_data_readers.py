# SPDX-License-Identifier: Apache-2.0
"""Tests of the flow CSV reader on the shared broken-input cases and the real data samples."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.data.readers import expand_paths, iter_flow_chunks, read_flows
from flowids.data.schema import (
    CIC2017,
    CIC2018,
    FEATURES,
    IDENTIFIERS,
    JAVA_MASTER,
    PYTHON_CFM,
    map_header,
)
from flowids.errors import DataError, UsageError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE_12K = "cicids2017/all_days_random_sample_12k_mlcve.csv.gz"
GLF_IDENTIFIERS = ["flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "timestamp"]
WEB_BRUTE_FORCE = "Web Attack - Brute Force"

# Every flow CSV under shared/data with what PROVENANCE.md says of it: flow records, labels
# (in canonical spelling) and its 'Infinity' + 'NaN' + empty feature cells.
DATA_FILES = {
    SAMPLE_12K: (
        12001,
        {
            "BENIGN": 9637,
            "DoS Hulk": 985,
            "PortScan": 688,
            "DDoS": 518,
            "DoS GoldenEye": 51,
            "FTP-Patator": 35,
            "SSH-Patator": 27,
            "DoS Slowhttptest": 25,
            "DoS slowloris": 22,
            WEB_BRUTE_FORCE: 6,
            "Bot": 6,
            "Web Attack - XSS": 1,
        },
        19 + 9,
    ),
    "cicids2017/wednesday_random_sample_1k_mlcve.csv": (
        1000,
        {
            "BENIGN": 630,
            "DoS Hulk": 332,
            "DoS GoldenEye": 23,
            "DoS slowloris": 11,
            "DoS Slowhttptest": 4,
        },
        1 + 1,
    ),
    "cicids2017/wednesday_slowloris_benign_500_mlcve_from_xlsx.csv": (
        500,
        {"BENIGN": 320, "DoS slowloris": 180},
        1 + 1,
    ),
    "cicids2017/friday_ddos_file_head_9998_mlcve.csv.gz": (9998, {"BENIGN": 9998}, 13 + 1),
    "cicids2017/friday_ddos_file_head_299_glf.csv": (299, {"BENIGN": 299}, 2),
    "cicids2017/friday_ddos_only_1000_glf.csv": (1000, {"DDoS": 1000}, 0),
    "cicids2017/friday_portscan_only_1000_glf.csv": (1000, {"PortScan": 1000}, 0),
    "cicids2017/thursday_webattack_xss_652_glf.csv": (652, {"Web Attack - XSS": 652}, 0),
    "cicids2017/thursday_webattack_sqli_21_glf.csv": (21, {"Web Attack - Sql Injection": 21}, 0),
    "cicids2017/grouped_labels_sample_6311_no_dstport.csv.gz": (
        6311,
        {
            "WebAttack": 2180,
            "Bot": 1966,
            "DoS": 952,
            "BruteForce": 553,
            "PortScan": 397,
            "BENIGN": 227,
            "Infiltration": 36,
        },
        20,
    ),
    "cse-cic-ids2018/thursday_2018-02-15_slowloris_benign_8654_modified.csv.gz": (
        8654,
        {"BENIGN": 7757, "DoS slowloris": 897},
        87 + 53,
    ),
    "cicflowmeter_lab/kihy_slowloris_flows.csv": (300, {"": 300}, 0),
    "cicflowmeter_lab/kihy_nmap_scan_flows.csv": (1035, {"": 1035}, 0),
    "cicflowmeter_lab/kihy_normal_flows.csv": (934, {"": 934}, 0),
    "cicflowmeter_lab/kihy_dos_hulk_flows.csv": (502, {"": 502}, 0),
    "cicflowmeter_lab/kihy_ftp_patator_flows.csv": (106, {"": 106}, 0),
}


@pytest.fixture(scope="module")
def sample_12k():
    """The 12k all-days sample, read once for the tests of this module."""
    return read_flows([SHARED / "data" / SAMPLE_12K])


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _header_position(lines: list[str], name: str, occurrence: int = 0) -> int:
    names = [cell.strip() for cell in lines[0].split(",")]
    return [i for i, cell in enumerate(names) if cell == name][occurrence]


def _set_cell(lines: list[str], row: int, position: int, value: str) -> None:
    cells = lines[row].split(",")
    cells[position] = value
    lines[row] = ",".join(cells)


# Real data


def test_every_data_csv_is_listed(data_dir):
    found = {str(p.relative_to(data_dir)) for p in data_dir.rglob("*.csv*")}

    assert found == set(DATA_FILES)


@pytest.mark.parametrize("name", sorted(DATA_FILES))
def test_real_data_reads_with_provenance_counts(data_dir, name):
    flows, labels, non_finite = DATA_FILES[name]

    table = read_flows([data_dir / name])

    report = table.reports[0]
    assert len(table) == flows
    assert report.rows_read == flows
    assert report.flows_kept == flows
    assert dict(report.dropped) == {}
    assert Counter(table.labels.tolist()) == labels
    assert dict(report.labels) == labels
    assert sum(report.non_finite.values()) == non_finite
    assert table.features.dtypes.unique().tolist() == [np.float32]
    assert len(table.identifiers) == flows
    expected = CIC2017 if name.startswith("cicids2017/") else CIC2018
    assert table.dialects == [expected]
    assert table.origin["row"].tolist() == list(range(1, flows + 1))
    json.dumps(report.to_dict())


def test_12k_sample_values(sample_12k):
    report = sample_12k.reports[0]

    assert list(sample_12k.features.columns) == list(FEATURES)
    assert len(FEATURES) == 76
    assert dict(report.non_finite) == {"flow_bytes_per_s": 14, "flow_packets_per_s": 14}
    assert report.collapsed_duplicates == (" Fwd Header Length.1",)
    assert list(sample_12k.identifiers.columns) == ["dst_port"]
    # PROVENANCE: two flows have Flow Duration -1; they are read as they are
    assert int((sample_12k.features["flow_duration_us"] == -1).sum()) == 2
    # PROVENANCE: 276 of 12001 lines are exact duplicates. Read as numbers there are 281:
    # some flows were printed with fewer digits by one day file than by another
    # (578616.3522 and 578616.352201258) and are the same flow once read.
    lines = gzip.decompress((SHARED / "data" / SAMPLE_12K).read_bytes()).splitlines()[1:]
    assert len(lines) - len(set(lines)) == 276
    frame = sample_12k.features.assign(
        dst_port=sample_12k.identifiers["dst_port"], label=sample_12k.labels
    )
    assert int(frame.duplicated().sum()) == 281
    assert len(sample_12k) == 12001


def test_unknown_column_of_the_xlsx_sample_is_reported(data_dir):
    table = read_flows([data_dir / "cicids2017/wednesday_slowloris_benign_500_mlcve_from_xlsx.csv"])

    assert table.reports[0].unknown_columns == (" Init_Win_bytes_backward (?)",)
    assert "init_bwd_window_bytes" not in table.features.columns
    assert table.features.shape == (500, 75)


def test_chunked_reading_equals_one_chunk(data_dir, sample_12k):
    path = data_dir / SAMPLE_12K

    chunks = list(iter_flow_chunks(path, chunk_flows=1000))
    table = read_flows([path], chunk_flows=1000)

    assert [len(chunk) for chunk in chunks] == [1000] * 12 + [1]
    assert chunks[-1].origin["row"].tolist() == [12001]
    pd.testing.assert_frame_equal(table.features, sample_12k.features)
    pd.testing.assert_frame_equal(table.identifiers, sample_12k.identifiers)
    pd.testing.assert_frame_equal(table.origin, sample_12k.origin)
    assert np.array_equal(table.labels, sample_12k.labels)
    assert table.reports[0].to_dict() == sample_12k.reports[0].to_dict()


def test_chunk_size_must_be_positive(cases_dir):
    with pytest.raises(UsageError, match="chunk_flows is 0; expected a positive number"):
        next(iter_flow_chunks(cases_dir / "BR-20a-predict-single-flow.csv", chunk_flows=0))


# Inputs: compression, directories, globs, missing and foreign files


def test_gzip_and_plain_give_the_same_table(data_dir, tmp_path):
    plain = data_dir / "cicids2017/wednesday_random_sample_1k_mlcve.csv"
    # gzip is recognised by its bytes, not by the file name
    packed = tmp_path / "wednesday.csv"
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    a, b = read_flows([plain]), read_flows([packed])

    pd.testing.assert_frame_equal(a.features, b.features)
    assert np.array_equal(a.labels, b.labels)
    assert a.reports[0].sha256 != b.reports[0].sha256


def test_directory_and_glob_expand(cases_dir, data_dir, tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("BR-08a-ids2018-80-columns.csv", "BR-08b-ids2018-84-columns.csv"):
        shutil.copy(cases_dir / name, folder / name)
    (folder / "README.md").write_text("not flows\n")
    (folder / "old.csv").mkdir()

    from_folder = read_flows([folder])
    from_glob = read_flows([str(cases_dir / "BR-08?-ids2018-*-columns.csv")])
    lab = read_flows([data_dir / "cicflowmeter_lab"])

    assert [Path(r.path).name for r in from_folder.reports] == [
        "BR-08a-ids2018-80-columns.csv",
        "BR-08b-ids2018-84-columns.csv",
    ]
    assert len(from_folder) == len(from_glob) == 4
    assert from_folder.origin["row"].tolist() == [1, 2, 1, 2]
    pd.testing.assert_frame_equal(from_folder.features, from_glob.features)
    assert len(lab) == 300 + 1035 + 934 + 502 + 106
    assert len(lab.reports) == 5


def test_a_file_named_twice_is_read_once(cases_dir, caplog):
    path = cases_dir / "BR-20b-predict-one-benign-one-attack.csv"

    with caplog.at_level(logging.WARNING, logger="flowids.data.readers"):
        table = read_flows(
            [path, str(cases_dir / "BR-20*.csv"), cases_dir / ".." / "cases" / path.name]
        )

    assert expand_paths([path, path]) == [path]
    assert [Path(r.path).name for r in table.reports] == [
        path.name,
        "BR-20a-predict-single-flow.csv",
    ]
    assert table.origin["file"].tolist().count(str(path)) == 2
    assert f"{path}: named more than once; reading it once" in caplog.text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-file.csv", "no-such-file.csv: no such file or directory"),
        ("no-such-*.csv", "no-such-\\*.csv: the pattern matches no file"),
    ],
)
def test_missing_input_is_a_data_error(tmp_path, spec, message):
    with pytest.raises(DataError, match=message):
        read_flows([tmp_path / spec])


def test_folder_without_csv_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="directory holds no .csv or .csv.gz file"):
        read_flows([tmp_path])


def test_not_a_flow_csv_is_refused(cases_dir):
    # case BR-23: a metric fixture is not a flow CSV; the message says what was found
    path = cases_dir / "BR-23-softmax-metric-fixture.csv"

    with pytest.raises(DataError) as info:
        read_flows([path])

    assert str(info.value) == (
        f"{path}: none of its 3 columns is a known flow feature (found 'y_true', 'p_benign', "
        "'p_attack'); expected a CICFlowMeter flow CSV such as the CIC-IDS2017 "
        "MachineLearningCVE files"
    )


def test_empty_and_header_only_files(cases_dir, tmp_path):
    header = (cases_dir / "BR-20a-predict-single-flow.csv").read_text().splitlines()[0]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = _write_lines(tmp_path / "header-only.csv", [header])

    with pytest.raises(DataError, match="empty.csv: file is empty"):
        read_flows([empty])
    with pytest.raises(DataError, match="header-only.csv: no flow records after dropping"):
        read_flows([header_only])
    table = read_flows([header_only, cases_dir / "BR-20a-predict-single-flow.csv"])
    assert len(table) == 1
    assert [r.rows_read for r in table.reports] == [0, 1]
    assert len(table.reports[0].sha256) == 64


def test_non_numeric_cell_names_file_row_and_column(cases_dir, tmp_path):
    lines = (cases_dir / "BR-20b-predict-one-benign-one-attack.csv").read_text().splitlines()
    _set_cell(lines, 2, _header_position(lines, "Flow Duration"), "abc")
    path = _write_lines(tmp_path / "abc.csv", lines)

    with pytest.raises(DataError) as info:
        read_flows([path])

    assert str(info.value).startswith(
        f"{path}, row 2, column 'Flow Duration': 'abc' is not a number (expected a number, "
        "'Infinity', 'NaN' or an empty cell)"
    )


def test_line_cut_short_is_an_error(cases_dir, tmp_path):
    lines = (cases_dir / "BR-20b-predict-one-benign-one-attack.csv").read_text().splitlines()
    lines[2] = lines[2][:60]
    path = _write_lines(tmp_path / "cut.csv", lines)

    with pytest.raises(DataError, match=r"cut.csv, row 2 \(line 3\): 16 fields where the header"):
        read_flows([path])


def test_extra_field_is_an_error_but_trailing_separators_are_not(cases_dir, tmp_path):
    path = cases_dir / "BR-20b-predict-one-benign-one-attack.csv"
    lines = path.read_text().splitlines()
    shifted = _write_lines(tmp_path / "shifted.csv", [lines[0], lines[1], "9," + lines[2]])
    trailing = _write_lines(tmp_path / "trailing.csv", [lines[0], lines[1] + ",", lines[2] + ",,"])

    with pytest.raises(DataError, match=r"row 2 \(line 3\): 80 fields where the header has 79"):
        read_flows([shifted])
    table = read_flows([trailing])
    pd.testing.assert_frame_equal(table.features, read_flows([path]).features)
    assert table.labels.tolist() == ["BENIGN", "DDoS"]


def test_blank_lines_are_counted_and_rows_stay_true(cases_dir, tmp_path):
    lines = (cases_dir / "BR-20b-predict-one-benign-one-attack.csv").read_text().splitlines()
    path = _write_lines(tmp_path / "blank.csv", [lines[0], "", lines[1], "  ", lines[2], ""])

    table = read_flows([path])

    assert dict(table.reports[0].dropped) == {"empty row": 3}
    assert table.origin["row"].tolist() == [2, 4]
    assert table.labels.tolist() == ["BENIGN", "DDoS"]


def test_huge_number_is_counted_as_non_finite(cases_dir, tmp_path):
    lines = (cases_dir / "BR-20b-predict-one-benign-one-attack.csv").read_text().splitlines()
    _set_cell(lines, 1, _header_position(lines, "Flow Bytes/s"), "1e39")
    path = _write_lines(tmp_path / "huge.csv", lines)

    table = read_flows([path])

    assert table.features["flow_bytes_per_s"].iloc[0] == np.inf
    assert dict(table.reports[0].non_finite) == {"flow_bytes_per_s": 1}


# The shared cases


def test_leading_space_header(cases_dir):
    # case BR-01: names with leading spaces are normalised on load
    table = read_flows([cases_dir / "BR-01-leading-space-header.csv"])

    assert list(table.features.columns) == list(FEATURES)
    assert table.features["flow_duration_us"].tolist() == [98310, 22817, 5002100]
    assert table.features["init_fwd_window_bytes"].tolist() == [29200, -1, 256]
    assert table.identifiers["dst_port"].tolist() == ["80", "53", "80"]
    assert table.labels.tolist() == ["BENIGN", "BENIGN", "DDoS"]
    assert table.dialects == [CIC2017]


def test_duplicate_fwd_header_length_collapsed(cases_dir, caplog):
    # case BR-02: identical copies of 'Fwd Header Length' become one feature, with a warning
    path = cases_dir / "BR-02-duplicate-fwd-header-length.csv"
    header = path.read_text().splitlines()[0].split(",")
    assert [cell.strip() for cell in header].count("Fwd Header Length") == 2

    with caplog.at_level(logging.WARNING, logger="flowids.data.readers"):
        table = read_flows([path])

    assert list(table.features.columns) == list(FEATURES)
    assert table.features.shape == (2, 76)
    assert table.features["fwd_header_length_bytes"].tolist() == [96, 160]
    assert table.reports[0].collapsed_duplicates == (" Fwd Header Length",)
    assert (
        f"{path}: column 'Fwd Header Length' duplicates fwd_header_length_bytes and agrees "
        "with it; keeping one copy"
    ) in caplog.messages
    assert map_header(header).features == list(FEATURES)


def test_duplicate_fwd_header_length_that_differs_is_an_error(cases_dir, tmp_path):
    # case BR-02: copies that differ are an error naming file, row and column
    lines = (cases_dir / "BR-02-duplicate-fwd-header-length.csv").read_text().splitlines()
    _set_cell(lines, 2, _header_position(lines, "Fwd Header Length", occurrence=1), "161")
    path = _write_lines(tmp_path / "differ.csv", lines)

    with pytest.raises(DataError) as info:
        read_flows([path])

    assert str(info.value).startswith(
        f"{path}, row 2, column 'Fwd Header Length': duplicated column of "
        "fwd_header_length_bytes holds 161 where the first copy holds 160; 1 row(s) differ"
    )


def test_infinity_and_nan_are_counted_and_kept(cases_dir):
    # case BR-03: non-finite rates are counted per feature; no row and no class vanishes
    table = read_flows([cases_dir / "BR-03-infinity-nan-rates.csv"])
    report = table.reports[0]

    assert dict(report.non_finite) == {"flow_bytes_per_s": 3, "flow_packets_per_s": 3}
    assert len(table) == 5
    assert table.labels.tolist() == ["BENIGN", "BENIGN", "BENIGN", "PortScan", "DDoS"]
    assert dict(report.labels) == {"BENIGN": 3, "PortScan": 1, "DDoS": 1}
    bytes_per_s = table.features["flow_bytes_per_s"].to_numpy()
    packets_per_s = table.features["flow_packets_per_s"].to_numpy()
    assert bytes_per_s[1] == np.inf
    assert np.isnan(bytes_per_s[2:4]).all()
    assert (packets_per_s[1:4] == np.inf).all()
    assert np.isfinite(table.features.drop(columns=["flow_bytes_per_s", "flow_packets_per_s"])).all(
        axis=None
    )


def test_cp1252_web_attack_labels(cases_dir):
    # case BR-05a: the cp1252 byte 0x96 decodes without error to one canonical label
    path = cases_dir / "BR-05a-webattack-cp1252.csv"
    assert path.read_bytes().count(b"Web Attack \x96 ") == 3

    table = read_flows([path])

    assert table.labels.tolist() == [
        "BENIGN",
        WEB_BRUTE_FORCE,
        "Web Attack - XSS",
        "Web Attack - Sql Injection",
    ]


def test_web_attack_label_variants(cases_dir):
    # case BR-05b: U+FFFD, en dash, hyphen and a lost dash all give one label
    path = cases_dir / "BR-05b-webattack-label-variants.csv"
    raw = path.read_bytes()
    assert b"Web Attack \xef\xbf\xbd Brute" in raw
    assert b"Web Attack \xe2\x80\x93 Brute" in raw

    table = read_flows([path])

    assert table.labels.tolist() == ["BENIGN"] + [WEB_BRUTE_FORCE] * 4
    assert dict(table.reports[0].labels) == {"BENIGN": 1, WEB_BRUTE_FORCE: 4}


def test_trailing_empty_rows(cases_dir):
    # case BR-06: rows of bare commas are dropped and counted, never labelled
    table = read_flows([cases_dir / "BR-06-trailing-empty-rows.csv"])
    report = table.reports[0]

    assert report.rows_read == 7
    assert dict(report.dropped) == {"empty row": 4}
    assert report.flows_kept == 3
    assert table.labels.tolist() == ["BENIGN", "Web Attack - XSS", "BENIGN"]
    assert "" not in report.labels
    assert table.origin["row"].tolist() == [1, 2, 3]


def test_ids2018_repeated_header(cases_dir):
    # case BR-07: header lines repeated inside the data are dropped and counted
    table = read_flows([cases_dir / "BR-07-ids2018-repeated-header.csv"])
    report = table.reports[0]

    assert report.rows_read == 6
    assert dict(report.dropped) == {"repeated header": 2}
    assert table.origin["row"].tolist() == [1, 2, 4, 6]
    assert table.labels.tolist() == ["BENIGN", "BENIGN", "Infiltration", "BENIGN"]
    assert table.features["flow_duration_us"].tolist() == [98310, 22817, 98310, 22817]


def test_ids2018_80_and_84_columns_give_the_same_features(cases_dir):
    # case BR-08a/08b: both CSE-CIC-IDS2018 layouts read into the same canonical features
    a = read_flows([cases_dir / "BR-08a-ids2018-80-columns.csv"])
    b = read_flows([cases_dir / "BR-08b-ids2018-84-columns.csv"])

    pd.testing.assert_frame_equal(a.features, b.features)
    assert list(a.features.columns) == list(FEATURES)
    assert a.labels.tolist() == b.labels.tolist() == ["BENIGN", "DDoS LOIC-HTTP"]
    assert a.dialects == b.dialects == [CIC2018]
    assert list(a.identifiers.columns) == ["dst_port", "protocol", "timestamp"]
    assert list(b.identifiers.columns) == GLF_IDENTIFIERS
    assert a.features["total_fwd_bytes"].tolist() == [388, 6]


@pytest.mark.parametrize(
    ("name", "dialect"),
    [
        ("BR-09a-java-cicflowmeter-master-header.csv", JAVA_MASTER),
        ("BR-09b-python-cicflowmeter-header.csv", PYTHON_CFM),
    ],
)
def test_producer_recognised_and_names_mapped(cases_dir, name, dialect):
    # case BR-09a/09b: the producer is recognised and its names map to the same features
    reference = read_flows([cases_dir / "BR-08a-ids2018-80-columns.csv"])

    table = read_flows([cases_dir / name])

    assert table.dialects == [dialect]
    assert table.reports[0].dialect == dialect
    assert table.reports[0].unknown_columns == ()
    pd.testing.assert_frame_equal(table.features, reference.features)
    assert table.identifiers["src_ip"].tolist() == ["192.0.2.15", "203.0.113.9"]


def test_java_need_manual_label_is_unlabelled(cases_dir):
    # case BR-09a: 'NeedManualLabel' means no ground truth, read as ''
    table = read_flows([cases_dir / "BR-09a-java-cicflowmeter-master-header.csv"])

    assert table.labels.tolist() == ["", ""]
    assert dict(table.reports[0].labels) == {"": 2}


def test_python_cicflowmeter_has_no_label_column(cases_dir):
    # case BR-09b: the Python tool writes no Label column
    table = read_flows([cases_dir / "BR-09b-python-cicflowmeter-header.csv"])

    assert table.labels is None
    assert table.identifiers["timestamp"].tolist() == ["2017-07-07 15:30:12", "2017-07-07 15:31:40"]


def test_duplicates_and_conflicting_labels_are_kept(cases_dir):
    # case BR-13: exact duplicates and one vector with two labels are read, not deduplicated
    table = read_flows([cases_dir / "BR-13-duplicates-conflicting-labels.csv"])
    frame = table.features.assign(label=table.labels)

    assert len(table) == 9
    # flows 1-4 are one BENIGN flow four times, flows 6-8 one DoS Hulk flow three times
    assert int(frame.duplicated().sum()) == 3 + 2
    assert int(table.features.duplicated().sum()) == 3 + 3
    labels_per_vector = frame.groupby(list(FEATURES))["label"].agg(lambda s: sorted(set(s)))
    conflicting = labels_per_vector[labels_per_vector.map(len) > 1]
    assert conflicting.tolist() == [["BENIGN", "DoS Hulk"]]
    group = frame.groupby(list(FEATURES)).ngroup()
    assert np.flatnonzero(group == group.iloc[4]).tolist() == [4, 5, 6, 7]


def test_identifiers_never_become_features(cases_dir):
    # case BR-17: Flow ID, addresses, ports and Timestamp are kept in identifiers only
    table = read_flows([cases_dir / "BR-17-traffic-labelling-identifiers.csv"])

    assert list(table.identifiers.columns) == GLF_IDENTIFIERS
    assert not set(IDENTIFIERS) & set(table.features.columns)
    assert list(table.features.columns) == list(FEATURES)
    assert table.identifiers.iloc[1].tolist() == [
        "203.0.113.50-192.0.2.80-36180-80-6",
        "203.0.113.50",
        "36180",
        "192.0.2.80",
        "80",
        "6",
        "5/7/2017 10:43",
    ]
    assert table.labels.tolist() == ["BENIGN", "DoS Hulk", "DoS Hulk"]


def test_identifiers_stay_aligned_across_layouts(cases_dir, data_dir):
    # a file without identifier columns next to one with them: one identifier row per flow
    table = read_flows(
        [
            data_dir / "cicids2017/grouped_labels_sample_6311_no_dstport.csv.gz",
            cases_dir / "BR-17-traffic-labelling-identifiers.csv",
        ]
    )

    assert len(table.identifiers) == len(table.features) == 6311 + 3
    assert table.identifiers["src_ip"].iloc[:6311].isna().all()
    assert table.identifiers["src_port"].iloc[6311:].tolist() == ["52144", "36180", "36182"]
    part = table.take(np.array([0, 6312]))
    assert part.identifiers["src_ip"].iloc[1] == "203.0.113.50"
    assert part.labels.tolist() == ["BENIGN", "DoS Hulk"]


# Header mapping


def test_header_names_normalise_to_one_key():
    mapping = map_header(
        [" Flow Duration", "flow  duration ", "Fwd Header Length.1", " Label", "x"]
    )

    assert mapping.columns == (
        (0, "flow_duration_us"),
        (1, "flow_duration_us"),
        (2, "fwd_header_length_bytes"),
        (3, "label"),
    )
    assert mapping.unknown == ("x",)
    assert mapping.features == ["flow_duration_us", "fwd_header_length_bytes"]
    assert mapping.has_label


@pytest.mark.parametrize(
    ("names", "dialect"),
    [
        (["Flow Duration", "Total Fwd Packets", "Init_Win_bytes_forward"], CIC2017),
        (["Flow Duration", "Tot Fwd Pkts", "Init Fwd Win Byts"], CIC2018),
        (["Flow Duration", "Total Fwd Packet", "FWD Init Win Bytes"], JAVA_MASTER),
        (["flow_duration", "tot_fwd_pkts", "init_fwd_win_byts"], PYTHON_CFM),
    ],
)
def test_dialect_recognised_from_spellings(names, dialect):
    mapping = map_header(names)

    assert mapping.dialect == dialect
    assert mapping.features == ["flow_duration_us", "total_fwd_packets", "init_fwd_window_bytes"]


# Fast and exact parsing


def _exact_only(monkeypatch):
    """Make every block take the cell-by-cell parse."""
    import flowids.data.readers as readers

    monkeypatch.setattr(readers, "_fast_table", lambda *args: None)


@pytest.mark.parametrize(
    "name",
    [
        *sorted(DATA_FILES),
        "../cases/BR-03-infinity-nan-rates.csv",
        "../cases/BR-05a-webattack-cp1252.csv",
        "../cases/BR-07-ids2018-repeated-header.csv",
        "../cases/BR-09b-python-cicflowmeter-header.csv",
        "../cases/BR-17-traffic-labelling-identifiers.csv",
    ],
)
def test_fast_and_exact_parsing_agree(data_dir, name, monkeypatch):
    # the column-wise parse gives exactly what the cell-by-cell reference parse gives
    fast = read_flows([data_dir / name])

    _exact_only(monkeypatch)
    exact = read_flows([data_dir / name])

    pd.testing.assert_frame_equal(fast.features, exact.features, check_exact=True)
    pd.testing.assert_frame_equal(fast.identifiers, exact.identifiers)
    pd.testing.assert_frame_equal(fast.origin, exact.origin)
    assert (fast.labels is None) == (exact.labels is None)
    if fast.labels is not None:
        assert fast.labels.tolist() == exact.labels.tolist()
    assert fast.reports[0].to_dict() == exact.reports[0].to_dict()


def test_clean_files_take_the_fast_path(data_dir, cases_dir, monkeypatch):
    import flowids.data.readers as readers

    taken = []
    original = readers._fast_table

    def spy(*args):
        table = original(*args)
        taken.append(table is not None)
        return table

    monkeypatch.setattr(readers, "_fast_table", spy)
    read_flows([data_dir / SAMPLE_12K])
    # case BR-07: header lines repeated byte for byte are taken out before the fast parse
    read_flows([cases_dir / "BR-07-ids2018-repeated-header.csv"])
    # case BR-06: rows of bare commas need the exact parse
    read_flows([cases_dir / "BR-06-trailing-empty-rows.csv"])

    assert taken == [True, True, False]


def test_blocks_keep_rows_and_counts(data_dir, monkeypatch):
    # blocks of about 2 kB: hundreds of blocks, each cut at a line end
    import flowids.data.readers as readers

    whole = read_flows([data_dir / "cicids2017/wednesday_random_sample_1k_mlcve.csv"])
    monkeypatch.setattr(readers, "_READ_BYTES", 2048)
    small = read_flows([data_dir / "cicids2017/wednesday_random_sample_1k_mlcve.csv"])

    pd.testing.assert_frame_equal(small.features, whole.features, check_exact=True)
    assert small.origin["row"].tolist() == list(range(1, 1001))
    assert small.reports[0].to_dict() == whole.reports[0].to_dict()


def test_a_line_cut_short_in_a_later_block_names_its_row(cases_dir, tmp_path, monkeypatch):
    import flowids.data.readers as readers

    lines = (cases_dir / "BR-20b-predict-one-benign-one-attack.csv").read_text().splitlines()
    body = [lines[1], lines[2]] * 50
    body[77] = body[77][:40]
    path = _write_lines(tmp_path / "late.csv", [lines[0], *body])
    monkeypatch.setattr(readers, "_READ_BYTES", 4096)

    with pytest.raises(DataError, match=r"late.csv, row 78 \(line 79\): 12 fields where"):
        read_flows([path])


def test_damaged_gzip_is_a_data_error(data_dir, tmp_path):
    packed = (data_dir / SAMPLE_12K).read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed[: len(packed) // 2])

    with pytest.raises(DataError, match="cut.csv.gz: the compressed data is damaged or cut short"):
        read_flows([cut])


def test_sha256_is_of_the_stored_bytes(data_dir):
    # computed while reading; a gzip file hashes as stored (compressed)
    path = data_dir / SAMPLE_12K

    table = read_flows([path])

    assert table.reports[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_features_are_float32_in_one_block(sample_12k):
    assert sample_12k.features.dtypes.unique().tolist() == [np.float32]
    assert sample_12k.features.shape == (12001, 76)


# Dialects: the same flow written by several producers


def _rewrite_header(source: Path, target: Path, rename) -> Path:
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    names = lines[0].split(",")
    lines[0] = ",".join(rename(name) for name in names)
    return _write_lines(target, lines)


def test_the_same_flows_in_2017_and_2018_spelling(cases_dir, tmp_path):
    # case BR-20b: the CIC-IDS2017 rows under the CSE-CIC-IDS2018 names read the same
    from flowids.data.schema import _FEATURE_TABLE, normalize_name

    to_2018 = {normalize_name(row[1]): row[2] or row[1] for row in _FEATURE_TABLE}
    to_2018.update({"destination port": "Dst Port", "label": "Label"})
    source = cases_dir / "BR-20b-predict-one-benign-one-attack.csv"
    renamed = _rewrite_header(
        source, tmp_path / "as-2018.csv", lambda name: to_2018.get(normalize_name(name), name)
    )
    assert "Tot Fwd Pkts" in renamed.read_text().splitlines()[0]

    a, b = read_flows([source]), read_flows([renamed])

    assert a.dialects == [CIC2017]
    assert b.dialects == [CIC2018]
    pd.testing.assert_frame_equal(a.features, b.features, check_exact=True)
    assert a.labels.tolist() == b.labels.tolist()


def test_java_and_python_headers_of_the_same_flows_agree(cases_dir):
    # case BR-09a/09b: the current Java tool and the Python package describe the same flows
    java = read_flows([cases_dir / "BR-09a-java-cicflowmeter-master-header.csv"])
    python = read_flows([cases_dir / "BR-09b-python-cicflowmeter-header.csv"])

    pd.testing.assert_frame_equal(java.features, python.features, check_exact=True)
    assert java.identifiers["dst_port"].tolist() == python.identifiers["dst_port"].tolist()
    assert python.reports[0].unit_conversions == {"times": "microseconds as written"}


def test_python_cicflowmeter_times_in_seconds_become_microseconds(cases_dir, tmp_path):
    # case BR-09b: cicflowmeter 0.2 and later write times in seconds under the same header
    source = cases_dir / "BR-09b-python-cicflowmeter-header.csv"
    frame = pd.read_csv(source, dtype=str)
    times = [c for c in frame.columns if c == "flow_duration" or "iat" in c]
    times += [c for c in frame.columns if c.startswith(("active_", "idle_"))]
    for column in times:
        frame[column] = (frame[column].astype(float) / 1e6).map(repr)
    seconds = tmp_path / "seconds.csv"
    frame.to_csv(seconds, index=False)

    expected = read_flows([source])
    table = read_flows([seconds])

    assert table.reports[0].unit_conversions == {
        "times": "seconds (cicflowmeter 0.2 or later), multiplied by 1e6 to microseconds"
    }
    assert table.features["flow_duration_us"].tolist() == pytest.approx([98310, 5002100], rel=1e-6)
    pd.testing.assert_frame_equal(table.features, expected.features, rtol=1e-6)


def test_cic_ddos2019_is_its_own_dialect(cases_dir, tmp_path):
    # CIC-DDoS2019: the CIC-IDS2017 names with a pandas index, 'SimillarHTTP' and 'Inbound'
    source = cases_dir / "BR-17-traffic-labelling-identifiers.csv"
    lines = source.read_text().splitlines()
    ddos = ["Unnamed: 0," + lines[0].replace(" Label", " SimillarHTTP, Inbound, Label")]
    for number, line in enumerate(lines[1:]):
        cells = line.split(",")
        ddos.append(",".join([str(number), *cells[:-1], "0", "1", cells[-1]]))
    path = _write_lines(tmp_path / "DrDoS_LDAP.csv", ddos)

    reference, table = read_flows([source]), read_flows([path])

    assert table.dialects == ["cic-ddos2019"]
    assert table.reports[0].unknown_columns == ()
    assert table.reports[0].ignored_columns == ("Unnamed: 0", " SimillarHTTP", " Inbound")
    pd.testing.assert_frame_equal(table.features, reference.features, check_exact=True)
    pd.testing.assert_frame_equal(table.identifiers, reference.identifiers)
    assert table.labels.tolist() == reference.labels.tolist()


def test_nfstream_columns_give_the_features_they_can(cases_dir, tmp_path):
    # NFStream writes milliseconds; counts, times and flag counts carry over, sizes do not
    from flowids.data.schema import _NFSTREAM_TABLE

    reference = read_flows([cases_dir / "BR-17-traffic-labelling-identifiers.csv"])
    columns = {"src_ip": reference.identifiers["src_ip"], "application_name": "HTTP"}
    for canonical, name, factor in _NFSTREAM_TABLE:
        columns[name] = reference.features[canonical].astype(np.float64) / factor
    path = tmp_path / "nfstream.csv"
    pd.DataFrame(columns).to_csv(path, index=False)

    table = read_flows([path])

    derived = [canonical for canonical, _, _ in _NFSTREAM_TABLE]
    assert table.dialects == ["nfstream"]
    assert list(table.features.columns) == [name for name in FEATURES if name in derived]
    assert table.reports[0].ignored_columns == ("application_name",)
    assert table.reports[0].unit_conversions["flow_duration_us"] == (
        "bidirectional_duration_ms x 1000"
    )
    pd.testing.assert_frame_equal(
        table.features, reference.features[table.features.columns], rtol=1e-6
    )


@pytest.mark.parametrize("dialect", ["cic-ddos2019", "nfstream", PYTHON_CFM, JAVA_MASTER])
def test_every_dialect_takes_part_in_the_producer_check(sample_12k, dialect):
    from flowids.features.preprocessing import Preprocessor

    fitted = Preprocessor().fit(sample_12k.features, dialects=sample_12k.dialects)

    with pytest.raises(DataError, match=f"flow records written by {dialect}, but the model"):
        fitted.check_dialects([dialect], "input.csv", allow_other=False)
    fitted.check_dialects([dialect], "input.csv", allow_other=True)


def test_feature_buffer_grows_past_its_first_guess(data_dir, monkeypatch):
    import flowids.data.readers as readers

    whole = read_flows([data_dir / "cicids2017/wednesday_random_sample_1k_mlcve.csv"])
    monkeypatch.setattr(readers, "_estimated_flows", lambda files: 7)
    monkeypatch.setattr(readers, "_READ_BYTES", 4096)
    grown = read_flows([data_dir / "cicids2017/wednesday_random_sample_1k_mlcve.csv"])

    pd.testing.assert_frame_equal(grown.features, whole.features, check_exact=True)
