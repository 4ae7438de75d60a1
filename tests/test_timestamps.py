# SPDX-License-Identifier: Apache-2.0
"""Tests for flowids.data.timestamps: every producer's Timestamp format, in time order."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.data.readers import read_flows
from flowids.data.timestamps import parse_timestamps
from flowids.errors import DataError, UsageError


def _times(table) -> pd.Series:
    """Parse a one-file table's timestamps with its dialect."""
    (dialect,) = table.dialects
    return parse_timestamps(table.identifiers["timestamp"], dialect, table.origin)


def test_br11_twelve_hour_day_first(shared_dir: Path) -> None:
    # case BR-11: timestamp 12h dayfirst
    table = read_flows([shared_dir / "cases" / "BR-11-timestamp-12h-dayfirst.csv"])

    times = _times(table)

    # 4/7/2017 is 4 July; 8:59 and 11:58 are morning, 3:56 and 4:20 afternoon (no AM/PM in
    # the file, the capture ran from about 8:00 to 17:10), and the seconds are kept.
    assert times.tolist() == [
        pd.Timestamp("2017-07-04 08:59:00"),
        pd.Timestamp("2017-07-04 11:58:00"),
        pd.Timestamp("2017-07-04 15:56:00"),
        pd.Timestamp("2017-07-04 15:56:12"),
        pd.Timestamp("2017-07-04 16:20:00"),
    ]
    assert times.is_monotonic_increasing
    assert times.dtype == "datetime64[ns]"


def test_cicids2017_glf_afternoon_file(shared_dir: Path) -> None:
    table = read_flows([shared_dir / "data" / "cicids2017" / "friday_portscan_only_1000_glf.csv"])

    times = _times(table)

    # The file's cells run from '7/7/2017 1:05' to '7/7/2017 2:51': Friday afternoon.
    assert times.min() == pd.Timestamp("2017-07-07 13:05")
    assert times.max() == pd.Timestamp("2017-07-07 14:51")
    # '2:14' (70 cells) is 14:14, never 02:14; no flow is read as morning.
    assert (times == pd.Timestamp("2017-07-07 14:14")).sum() == 70
    assert (times.dt.hour < 12).sum() == 0
    assert (times == pd.Timestamp("2017-07-07 14:15")).sum() == 64
    assert (times == pd.Timestamp("2017-07-07 14:51")).sum() == 628
    assert len(times) == 1000


def test_cse_cic_ids2018_24_hour(shared_dir: Path) -> None:
    path = shared_dir / "data" / "cse-cic-ids2018"
    table = read_flows([path / "thursday_2018-02-15_slowloris_benign_8654_modified.csv.gz"])

    times = _times(table)

    assert table.dialects == ["cse-cic-ids2018"]
    assert times.min() == pd.Timestamp("2018-02-15 11:00:12")
    assert times.max() == pd.Timestamp("2018-02-15 11:02:37")
    assert times.notna().all()


def test_cicflowmeter_v4_lab_am_pm(shared_dir: Path) -> None:
    table = read_flows([shared_dir / "data" / "cicflowmeter_lab" / "kihy_normal_flows.csv"])

    times = _times(table)

    # '30/03/2020 08:57:48 PM' .. '30/03/2020 09:03:48 PM'
    assert times.min() == pd.Timestamp("2020-03-30 20:57:48")
    assert times.max() == pd.Timestamp("2020-03-30 21:03:48")


def test_java_and_python_cicflowmeter_agree(shared_dir: Path) -> None:
    # case BR-09a: java cicflowmeter master header ('07/07/2017 03:30:12 PM')
    java = read_flows([shared_dir / "cases" / "BR-09a-java-cicflowmeter-master-header.csv"])
    # case BR-09b: python cicflowmeter header ('2017-07-07 15:30:12')
    python = read_flows([shared_dir / "cases" / "BR-09b-python-cicflowmeter-header.csv"])

    expected = [pd.Timestamp("2017-07-07 15:30:12"), pd.Timestamp("2017-07-07 15:31:40")]
    assert _times(java).tolist() == expected
    assert _times(python).tolist() == expected


@pytest.mark.parametrize(
    ("cell", "dialect", "expected"),
    [
        ("7/7/2017 8:00", "cicids2017", "2017-07-07 08:00:00"),
        ("7/7/2017 11:59", "cicids2017", "2017-07-07 11:59:00"),
        ("7/7/2017 12:30", "cicids2017", "2017-07-07 12:30:00"),
        ("7/7/2017 1:00", "cicids2017", "2017-07-07 13:00:00"),
        ("7/7/2017 7:59", "cicids2017", "2017-07-07 19:59:00"),
        ("04/07/2017 03:56:12", "cicids2017", "2017-07-04 15:56:12"),
        ("12/03/2018 12:30:00 AM", "cse-cic-ids2018", "2018-03-12 00:30:00"),
        ("12/03/2018 12:30:00 PM", "cse-cic-ids2018", "2018-03-12 12:30:00"),
        ("12/03/2018 01:05:00 pm", "cicflowmeter-java", "2018-03-12 13:05:00"),
        ("16/02/2018 01:45:33", "cse-cic-ids2018", "2018-02-16 01:45:33"),
        ("2017-07-07 15:30:12", "cicflowmeter-python", "2017-07-07 15:30:12"),
        ("2017-07-07T15:30:12.25", "flowids", "2017-07-07 15:30:12.250"),
        ("  5/7/2017 9:01 ", "cicids2017", "2017-07-05 09:01:00"),
    ],
)
def test_one_cell(cell: str, dialect: str, expected: str) -> None:
    times = parse_timestamps(pd.Series([cell]), dialect)

    assert times.iloc[0] == pd.Timestamp(expected)


def test_cicids2017_file_with_24_hour_clock_is_read_as_written() -> None:
    # An hour past 12 shows that this file uses a 24-hour clock, so 1:10 is 01:10.
    times = parse_timestamps(pd.Series(["5/7/2017 13:10", "5/7/2017 1:10"]), "cicids2017")

    assert times.tolist() == [pd.Timestamp("2017-07-05 13:10"), pd.Timestamp("2017-07-05 01:10")]


def test_clock_is_decided_per_file() -> None:
    text = pd.Series(["5/7/2017 13:10", "5/7/2017 1:10", "6/7/2017 1:10"])
    origin = pd.DataFrame({"file": ["a.csv", "a.csv", "b.csv"], "row": [1, 2, 1]})

    times = parse_timestamps(text, "cicids2017", origin)

    assert times.tolist() == [
        pd.Timestamp("2017-07-05 13:10"),
        pd.Timestamp("2017-07-05 01:10"),
        pd.Timestamp("2017-07-06 13:10"),
    ]


def test_index_and_name_are_kept() -> None:
    text = pd.Series(["15/02/2018 11:00:12", "15/02/2018 11:02:37"], index=[10, 3])

    times = parse_timestamps(text, "cse-cic-ids2018")

    assert times.index.tolist() == [10, 3]
    assert times.name == "timestamp"
    assert times[3] == pd.Timestamp("2018-02-15 11:02:37")


def test_empty_series() -> None:
    times = parse_timestamps(pd.Series([], dtype=object), "cicids2017")

    assert len(times) == 0
    assert times.dtype == "datetime64[ns]"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("31/2/2017 3:00", "'31/2/2017 3:00'"),
        ("7/13/2017 3:00", "'7/13/2017 3:00'"),
        ("1/1/2017 13:00 PM", "'1/1/2017 13:00 PM'"),
        ("1/1/2017 25:00", "'1/1/2017 25:00'"),
        ("1/1/2017 10:61", "'1/1/2017 10:61'"),
        ("07/07/2017", "'07/07/2017'"),
        ("yesterday", "'yesterday'"),
        ("", "an empty cell"),
        (None, "an empty cell"),
    ],
)
def test_unparseable_cell_names_file_row_and_value(cell: str | None, shown: str) -> None:
    text = pd.Series(["1/1/2017 9:00", cell, cell], dtype=object)
    origin = pd.DataFrame({"file": ["day.csv"] * 3, "row": [1, 5, 6]})

    with pytest.raises(DataError, match=r"day\.csv, row 5, column 'Timestamp'") as error:
        parse_timestamps(text, "cicids2017", origin)

    assert shown in str(error.value)
    assert "2 such cell(s)" in str(error.value)


def test_unparseable_cell_without_origin_gives_its_position() -> None:
    with pytest.raises(DataError, match="timestamp 2, column 'Timestamp': 'noon'"):
        parse_timestamps(pd.Series(["1/1/2017 9:00", "noon"]), "cse-cic-ids2018")


def test_unknown_dialect() -> None:
    with pytest.raises(UsageError, match="dialect 'excel' is not known; expected one of"):
        parse_timestamps(pd.Series(["1/1/2017 9:00"]), "excel")


def test_misaligned_origin() -> None:
    origin = pd.DataFrame({"file": ["a.csv"], "row": [1]})

    with pytest.raises(UsageError, match="origin has 1 rows but text has 2"):
        parse_timestamps(pd.Series(["1/1/2017 9:00", "1/1/2017 9:01"]), "cicids2017", origin)


def test_logs_range_and_warns_after_capture_day(caplog: pytest.LogCaptureFixture) -> None:
    text = pd.Series(["7/7/2017 9:00", "7/7/2017 6:30", "7/7/2017 7:10"])
    origin = pd.DataFrame({"file": ["f.csv"] * 3, "row": [1, 2, 3]})

    with caplog.at_level(logging.INFO, logger="flowids.data.timestamps"):
        times = parse_timestamps(text, "cicids2017", origin)

    assert times.max() == pd.Timestamp("2017-07-07 19:10")
    assert "f.csv: parsed 3 timestamps" in caplog.text
    assert "2017-07-07 09:00:00 to 2017-07-07 19:10:00" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 timestamps read as 18:00 or later" in warnings[0].getMessage()


def test_many_flows_share_few_cells() -> None:
    cells = np.array(["7/7/2017 3:56", "7/7/2017 9:01"] * 50_000, dtype=object)

    times = parse_timestamps(pd.Series(cells), "cicids2017")

    assert (times.iloc[::2] == pd.Timestamp("2017-07-07 15:56")).all()
    assert (times.iloc[1::2] == pd.Timestamp("2017-07-07 09:01")).all()


def test_iso_times_are_never_read_as_the_12_hour_clock():
    # flowids extract writes ISO times in UTC under the CIC-IDS2017 header: 03:35 stays 03:35.
    text = pd.Series(["2020-03-31 03:35:49.875762", "2020-03-31 07:59:00", "2020-03-31 08:01:00"])

    times = parse_timestamps(text, "cicids2017")

    assert [t.hour for t in times] == [3, 7, 8]
    assert times.is_monotonic_increasing
