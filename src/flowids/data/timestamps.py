# SPDX-License-Identifier: Apache-2.0
"""Parse the Timestamp column of flow records into times, so flows can be split by time.

Each producer writes its own format, and CIC-IDS2017 writes a 12-hour clock without AM or
PM; this module turns all of them into one ``datetime64[ns]`` series in time order.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from flowids.data.schema import CIC2017, DIALECTS
from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

# 'd/m/yyyy h:mm', 'dd/mm/yyyy hh:mm:ss' and either with ' AM' or ' PM' (day first).
_DAY_FIRST = re.compile(
    r"^(?P<day>\d{1,2})/(?P<month>\d{1,2})/(?P<year>\d{4})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?:\s*(?P<meridiem>[AaPp][Mm]))?$"
)
# 'yyyy-mm-dd hh:mm[:ss[.fff]]' or with 'T' between date and time, without a time zone.
# Limitation: an ISO time with a zone offset ('+02:00', 'Z') is refused as unparseable, and all
# times are local, so files captured in different zones do not line up in a time split (#4).
_ISO = re.compile(
    r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[T ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?$"
)
_PARTS = ("year", "month", "day", "hour", "minute", "second")

# The CIC-IDS2017 capture ran from about 8:00 to 17:10 local time, so on its 12-hour clock
# without AM/PM an hour from 1 to 7 can only be afternoon, 8 to 11 morning and 12 noon.
# Limitation: a file in that dialect from another capture, on a 12-hour clock outside those
# hours (a night capture), is misread by 12 hours; such times are logged as a warning (#3).
_CIC2017_LAST_MORNING_HOUR = 7
_CIC2017_CAPTURE_END_HOUR = 18

EXPECTED_FORMATS = (
    "day-first 'd/m/yyyy h:mm', 'dd/mm/yyyy hh:mm:ss' with or without AM/PM, "
    "or ISO 'yyyy-mm-dd hh:mm:ss'"
)


def parse_timestamps(
    text: pd.Series, dialect: str, origin: pd.DataFrame | None = None
) -> pd.Series:
    """Parse Timestamp cells of flow records into local times.

    Parameters
    ----------
    text : Series of str, shape (n_flows,)
        Timestamp cells as read (``FlowTable.identifiers['timestamp']``).
    dialect : str
        Dialect of the file the cells come from (``FileReport.dialect``); it decides how an
        hour without AM/PM is read.
    origin : DataFrame of shape (n_flows, 2), optional
        ``file`` and 1-based ``row`` of each cell, aligned by position with ``text``; used in
        error messages, and to decide the clock of each file on its own.

    Returns
    -------
    Series of datetime64[ns], shape (n_flows,)
        Local times, naive (no time zone), with the index of ``text``.

    Raises
    ------
    DataError
        If a cell is empty or in no known format, or names a day that does not exist; the
        message gives the file, row and value of the first such cell and how many there are.
    UsageError
        If ``dialect`` is not a known dialect, or ``origin`` is not aligned with ``text``.

    Notes
    -----
    Formats read: CIC-IDS2017 GeneratedLabelledFlows 'd/m/yyyy h:mm', sometimes with seconds
    ('4/7/2017 03:56:12'); CSE-CIC-IDS2018 'dd/mm/yyyy hh:mm:ss' (24 h); CICFlowMeter-V4 and
    the current Java CICFlowMeter 'dd/mm/yyyy hh:mm:ss AM' or 'PM'; ISO 'yyyy-mm-dd hh:mm:ss'
    (Python cicflowmeter). Dates are day first: '4/7/2017' is 4 July 2017.

    CIC-IDS2017 writes a 12-hour clock without AM/PM ('7/7/2017 3:56' is 15:56). In files of
    that dialect, an hour from 1 to 7 is read as afternoon, 8 to 11 as morning and 12 as
    noon, because the capture ran from about 8:00 to 17:10 each working day; flows of the
    same minute keep their file order wherever the caller sorts stably. A file of that dialect
    with an hour of 0 or 13 to 23 is taken to use a 24-hour clock and is read as written.
    Other dialects without AM/PM are read as a 24-hour clock.
    """
    if dialect not in DIALECTS:
        raise UsageError(f"dialect {dialect!r} is not known; expected one of {', '.join(DIALECTS)}")
    if origin is not None and len(origin) != len(text):
        raise UsageError(
            f"origin has {len(origin)} rows but text has {len(text)} timestamps; expected the "
            "origin of each timestamp, aligned by position"
        )

    cells = text.astype(object).where(text.notna(), "").astype(str).str.strip()
    cells = cells.reset_index(drop=True)
    parsed = np.empty(len(cells), dtype="datetime64[ns]")
    for where in _positions_by_file(origin, len(cells)):
        parsed[where] = _parse_one_file(cells.iloc[where], dialect, origin, where)
    return pd.Series(parsed, index=text.index, name="timestamp", dtype="datetime64[ns]")


def _positions_by_file(origin: pd.DataFrame | None, n_flows: int) -> list[np.ndarray]:
    """Positions of each file's cells, files in order of first appearance."""
    if origin is None:
        return [np.arange(n_flows)]
    codes, files = pd.factorize(origin["file"].astype(str).to_numpy(dtype=object))
    return [np.flatnonzero(codes == code) for code in range(len(files))]


def _parse_one_file(
    cells: pd.Series, dialect: str, origin: pd.DataFrame | None, where: np.ndarray
) -> np.ndarray:
    """Parse the cells of one file; ``where`` are their positions in the caller's series."""
    codes, uniques = pd.factorize(cells.to_numpy(dtype=object))
    values = pd.Series(uniques, dtype=object).astype(str)
    parts = _extract_parts(values)
    twelve_hour = dialect == CIC2017 and _uses_12_hour_clock(parts)

    hours = parts["hour"].to_numpy(dtype=np.float64).copy()
    meridiem = parts["meridiem"].fillna("").str.upper().to_numpy(dtype=object)
    marked = meridiem != ""
    bad_hour = marked & ((hours < 1) | (hours > 12))
    hours[marked] = hours[marked] % 12 + np.where(meridiem[marked] == "PM", 12, 0)
    if twelve_hour:
        # ISO times (flowids extract writes them, in UTC) always use a 24-hour clock.
        iso = parts["iso"].to_numpy(dtype=bool)
        afternoon = ~marked & ~iso & (hours >= 1) & (hours <= _CIC2017_LAST_MORNING_HOUR)
        hours[afternoon] += 12
    parts["hour"] = np.where(bad_hour, np.nan, hours)

    times = _assemble(parts)
    bad = np.isnat(times)
    if bad.any():
        _raise_unparseable(values, bad, codes, origin, where)

    result = times[codes]
    _log_file(result, dialect, twelve_hour, origin, where)
    return result


def _extract_parts(values: pd.Series) -> pd.DataFrame:
    """Split each distinct cell into numbers: year ... second, fraction digits, AM/PM."""
    day_first = values.str.extract(_DAY_FIRST)
    iso = values.str.extract(_ISO)
    use_iso = day_first["year"].isna() & iso["year"].notna()
    parts = pd.DataFrame(index=values.index)
    for name in (*_PARTS, "fraction"):
        parts[name] = day_first[name].where(~use_iso, iso[name])
    parts["meridiem"] = day_first["meridiem"].where(~use_iso, None)
    for name in _PARTS:
        parts[name] = pd.to_numeric(parts[name], errors="coerce")
    # Seconds are optional in the formats; a cell that matched no format keeps them missing.
    matched = parts["year"].notna()
    parts.loc[matched, "second"] = parts.loc[matched, "second"].fillna(0)
    parts["iso"] = use_iso.to_numpy()
    return parts


def _uses_12_hour_clock(parts: pd.DataFrame) -> bool:
    """A CIC-IDS2017 file uses its 12-hour clock unless some unmarked hour is 0 or past 12."""
    unmarked = parts["meridiem"].isna().to_numpy() & ~parts["iso"].to_numpy(dtype=bool)
    hours = parts["hour"].to_numpy(dtype=np.float64)[unmarked]
    hours = hours[~np.isnan(hours)]
    if not hours.size:
        return False  # only ISO or AM/PM times: nothing is on the unmarked 12-hour clock
    return not ((hours == 0) | (hours > 12)).any()


def _assemble(parts: pd.DataFrame) -> np.ndarray:
    """Build times from numeric parts; impossible dates, hours or missing parts give NaT."""
    numbers = parts[list(_PARTS)]
    in_range = (
        (numbers["hour"] <= 23) & (numbers["minute"] <= 59) & (numbers["second"] <= 59)
    ).to_numpy()
    usable = numbers.notna().all(axis=1).to_numpy() & in_range
    times = np.full(len(parts), np.datetime64("NaT"), dtype="datetime64[ns]")
    if usable.any():
        built = pd.to_datetime(numbers[usable].astype(np.int64), errors="coerce")
        fraction = parts.loc[usable, "fraction"].fillna("0").astype(str).str.ljust(9, "0")
        nanoseconds = fraction.astype(np.int64).to_numpy().astype("timedelta64[ns]")
        times[usable] = built.to_numpy(dtype="datetime64[ns]") + nanoseconds
    return times


def _raise_unparseable(
    values: pd.Series,
    bad: np.ndarray,
    codes: np.ndarray,
    origin: pd.DataFrame | None,
    where: np.ndarray,
) -> None:
    bad_flows = np.flatnonzero(bad[codes])
    first = int(bad_flows[0])
    value = values.iloc[codes[first]]
    if origin is None:
        place = f"timestamp {first + 1}"
    else:
        row = origin.iloc[int(where[first])]
        place = f"{row['file']}, row {int(row['row'])}"
    found = "an empty cell" if value == "" else repr(value)
    raise DataError(
        f"{place}, column 'Timestamp': {found} is not a time (expected {EXPECTED_FORMATS}, "
        f"naming a real day and hour); {len(bad_flows)} such cell(s). Repair those cells, "
        "or choose a split that needs no timestamps"
    )


def _log_file(
    times: np.ndarray,
    dialect: str,
    twelve_hour: bool,
    origin: pd.DataFrame | None,
    where: np.ndarray,
) -> None:
    if len(times) == 0:
        return
    name = "timestamps" if origin is None else str(origin["file"].iloc[int(where[0])])
    clock = "12-hour clock without AM/PM, hours 1-7 read as afternoon" if twelve_hour else ""
    logger.info(
        "%s: parsed %s timestamps (%s%s) from %s to %s",
        name,
        f"{len(times):,}",
        dialect,
        f"; {clock}" if clock else "",
        pd.Timestamp(times.min()),
        pd.Timestamp(times.max()),
    )
    if twelve_hour:
        hours = pd.DatetimeIndex(times).hour
        late = int((hours >= _CIC2017_CAPTURE_END_HOUR).sum())
        if late:
            logger.warning(
                "%s: %s timestamps read as %d:00 or later, after the CIC-IDS2017 capture "
                "day ended (about 17:10); the 12-hour clock may be misread for them",
                name,
                f"{late:,}",
                _CIC2017_CAPTURE_END_HOUR,
            )
