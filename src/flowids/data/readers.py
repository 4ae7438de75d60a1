# SPDX-License-Identifier: Apache-2.0
"""Read flow-record CSV files of any known dialect into canonical float32 features.

The reader accepts one file, several, a directory or a glob, plain or gzip. It normalises
header names, collapses duplicated columns, drops empty rows and repeated header lines, refuses
lines whose fields do not match the header, maps labels to their canonical spelling, and counts
everything it dropped or left for repair.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flowids.data.labels import canonical_label
from flowids.data.schema import LABEL, HeaderMapping, map_header, normalize_name
from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_FLOWS = 200_000

# Cell texts that stand for a missing number; every other non-number is an error.
_MISSING_TOKENS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "null", "None"})
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")


@dataclass
class FileReport:
    """What reading one file found: sizes, dialect, and every drop and non-finite count.

    Attributes
    ----------
    rows_read : int
        Data lines in the file, header excluded.
    flows_kept : int
        Flow records passed on; ``rows_read - sum(dropped.values())``.
    dropped : Counter
        Lines dropped, by reason ('empty row', 'repeated header').
    non_finite : Counter
        Per canonical feature, cells that were missing, 'NaN' or +/-'Infinity'. They are kept
        as NaN or inf and repaired by the fitted preprocessing.
    labels : Counter
        Flow records per canonical label ('' for a "No Label" marker).
    """

    path: str
    sha256: str = ""
    dialect: str = ""
    rows_read: int = 0
    flows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    non_finite: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    unknown_columns: tuple[str, ...] = ()
    collapsed_duplicates: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-safe form for run records."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "dialect": self.dialect,
            "rows_read": self.rows_read,
            "flows_kept": self.flows_kept,
            "dropped": dict(self.dropped),
            "non_finite": dict(self.non_finite),
            "labels": dict(self.labels),
            "unknown_columns": list(self.unknown_columns),
            "collapsed_duplicates": list(self.collapsed_duplicates),
        }


@dataclass
class FlowTable:
    """Flow records in canonical form.

    Attributes
    ----------
    features : DataFrame of shape (n_flows, n_features), float32
        Canonical features present in every input file, in canonical order. Non-finite
        values are still there; the preprocessing repairs them.
    labels : ndarray of object, shape (n_flows,), or None
        Canonical labels, '' where a file marks a flow as unlabelled; None if no input file
        has a label column.
    identifiers : DataFrame of shape (n_flows, n_identifiers)
        Flow ID, addresses, ports, protocol and timestamp as text, where the files have them.
    origin : DataFrame of shape (n_flows, 2)
        ``file`` (path) and ``row`` (1-based data row in that file) of each flow record.
    reports : list of FileReport
    """

    features: pd.DataFrame
    labels: np.ndarray | None
    identifiers: pd.DataFrame
    origin: pd.DataFrame
    reports: list[FileReport]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def dialects(self) -> list[str]:
        return sorted({report.dialect for report in self.reports})

    def take(self, index: np.ndarray) -> FlowTable:
        """Return the flow records at integer positions ``index`` (reports are shared)."""
        return FlowTable(
            features=self.features.iloc[index].reset_index(drop=True),
            labels=None if self.labels is None else self.labels[index],
            identifiers=self.identifiers.iloc[index].reset_index(drop=True),
            origin=self.origin.iloc[index].reset_index(drop=True),
            reports=self.reports,
        )


def expand_paths(specs: Iterable[str | Path]) -> list[Path]:
    """Turn files, directories and glob patterns into a sorted list of existing files.

    Raises
    ------
    DataError
        If a path does not exist, a glob matches nothing, or a directory holds no CSV file.
    """
    paths: list[Path] = []
    for spec in specs:
        text = str(spec)
        path = Path(text)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_CSV_SUFFIXES)
            )
            if not found:
                raise DataError(f"{path}: directory holds no .csv or .csv.gz file")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                raise DataError(f"{text}: the pattern matches no file")
            paths.extend(found)
        else:
            raise DataError(f"{text}: no such file or directory")
    return _unique_files(paths)


def _unique_files(paths: list[Path]) -> list[Path]:
    """Drop repeated files (named twice, or by a file and a directory), keeping first places.

    Reading a file twice would put every one of its flows in the table twice, where a split
    could send one copy to training and the other to the test part.
    """
    unique: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in unique:
            logger.warning("%s: named more than once; reading it once", path)
            continue
        unique[key] = path
    return list(unique.values())


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes as stored (compressed files hash compressed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_binary(path: Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, decompressing it if it starts with the gzip magic."""
    if _is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115


def _open_text(path: Path) -> io.TextIOBase:
    # Labels can hold cp1252 bytes (0x96 en dash); they decode to U+FFFD and the label table
    # maps every dash variant to one label.
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="replace", newline="")


def read_header(path: Path) -> list[str]:
    """Return the header cells of a flow CSV, or raise DataError if it has none."""
    with _open_text(path) as handle:
        try:
            header = next(csv.reader(handle))
        except StopIteration:
            raise DataError(f"{path}: file is empty (expected a CSV header line)") from None
        except csv.Error as exc:
            raise DataError(f"{path}, line 1: header is not valid CSV ({exc})") from None
    return [cell.lstrip("\ufeff") for cell in header]


def inspect_header(path: Path) -> HeaderMapping:
    """Map a file's header onto the canonical schema, refusing files with no flow features."""
    header = read_header(path)
    mapping = map_header(header)
    if not mapping.features:
        shown = ", ".join(repr(name) for name in header[:8])
        raise DataError(
            f"{path}: none of its {len(header)} columns is a known flow feature "
            f"(found {shown}{', ...' if len(header) > 8 else ''}); expected a CICFlowMeter "
            "flow CSV such as the CIC-IDS2017 MachineLearningCVE files"
        )
    return mapping


def iter_flow_chunks(
    path: str | Path, chunk_flows: int = DEFAULT_CHUNK_FLOWS
) -> Iterator[FlowTable]:
    """Read one flow CSV in chunks of at most ``chunk_flows`` flow records.

    Each chunk shares the same :class:`FileReport`, which is complete once the iterator is
    exhausted. Memory stays bounded by the chunk size, whatever the file size. A file with a
    header and no data row gives one empty chunk, so that its report is still passed on.

    Raises
    ------
    DataError
        On a file that is not a flow CSV, a data line with more or fewer fields than the
        header, a cell that is not a number, duplicated columns that disagree, or labels that
        the canonical table does not know.
    UsageError
        If ``chunk_flows`` is not a positive number.

    Notes
    -----
    Rows are numbered from 1 at the first data line (the header is row 0), blank lines
    included, so ``row`` in messages and in :attr:`FlowTable.origin` is the file line minus 1.
    """
    path = Path(path)
    if int(chunk_flows) < 1:
        raise UsageError(f"chunk_flows is {chunk_flows}; expected a positive number of flows")
    mapping = inspect_header(path)
    header = read_header(path)
    report = FileReport(
        path=str(path),
        sha256=file_sha256(path),
        dialect=mapping.dialect,
        unknown_columns=tuple(name for name in mapping.unknown if name.strip()),
    )
    if report.unknown_columns:
        logger.warning(
            "%s: ignoring %d unknown column(s): %s",
            path,
            len(report.unknown_columns),
            ", ".join(repr(name) for name in report.unknown_columns),
        )
    _check_field_counts(path, len(header))

    positions = sorted(position for position, _ in mapping.columns)
    reader = pd.read_csv(
        path,
        header=None,
        skiprows=1,
        names=list(range(len(header))),
        usecols=positions,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        # Blank lines are kept so that row numbers stay true; they are dropped as empty rows.
        skip_blank_lines=False,
        encoding="utf-8",
        encoding_errors="replace",
        compression="gzip" if _is_gzip(path) else None,
        chunksize=int(chunk_flows),
        engine="c",
    )
    first_row = 1
    with reader:
        try:
            for raw in reader:
                table = _chunk_to_table(raw, first_row, header, mapping, report)
                first_row += len(raw)
                yield table
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: not a well-formed CSV ({exc})") from None
    if first_row == 1:
        empty = pd.DataFrame({position: pd.Series([], dtype=object) for position in positions})
        yield _chunk_to_table(empty, first_row, header, mapping, report)
    _log_report(report)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _check_field_counts(path: Path, n_fields: int) -> None:
    """Refuse a data line whose number of fields differs from the header's.

    A line cut short (a file truncated by size) or with an extra separator would otherwise be
    read with its values under the wrong columns, or with the missing ones as empty cells.
    Lines of separators only are left for the empty-row count; extra fields that are all empty
    (a trailing separator) are accepted.
    """
    # Limitation: lines holding a double quote are not checked, since a quoted field may hold
    # the separator; CICFlowMeter writers never quote, so their files are checked in full.
    with _open_binary(path) as handle:
        handle.readline()
        for row, line in enumerate(handle, start=1):
            if line.count(b",") == n_fields - 1 or b'"' in line:
                continue
            cells = line.rstrip(b"\r\n").split(b",")
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > n_fields and not any(cell.strip() for cell in cells[n_fields:]):
                continue
            if len(cells) < n_fields:
                problem = "is cut short (as where a file was cut at a size limit)"
            else:
                problem = "has extra fields (an unquoted separator inside a value?)"
            raise DataError(
                f"{path}, row {row} (line {row + 1}): {len(cells)} fields where the header has "
                f"{n_fields}; the line {problem}, so its values cannot be matched to columns. "
                "Repair or remove that line"
            )


def _chunk_to_table(
    raw: pd.DataFrame,
    first_row: int,
    header: list[str],
    mapping: HeaderMapping,
    report: FileReport,
) -> FlowTable:
    """Turn one chunk of text cells into canonical flow records, updating the report."""
    raw = raw.fillna("")
    rows = np.arange(first_row, first_row + len(raw))
    report.rows_read += len(raw)

    keep = _drop_noise_rows(raw, header, mapping, report)
    raw, rows = raw[keep], rows[keep]

    features = _parse_features(raw, rows, header, mapping, report)
    labels = _parse_labels(raw, rows, mapping, report) if mapping.has_label else None
    # The index is given so that a file without identifier columns still has one (empty)
    # identifier row per flow record, and stays aligned with the features when joined.
    identifiers = pd.DataFrame(
        {
            name: raw[position].str.strip().to_numpy()
            for position, name in mapping.columns
            if name in mapping.identifiers
        },
        index=pd.RangeIndex(len(raw)),
    )
    origin = pd.DataFrame({"file": report.path, "row": rows})
    report.flows_kept += len(raw)
    return FlowTable(features, labels, identifiers, origin, [report])


def _drop_noise_rows(
    raw: pd.DataFrame, header: list[str], mapping: HeaderMapping, report: FileReport
) -> np.ndarray:
    """Mask of rows to keep: not blank (bare commas) and not a repeated header line."""
    stripped = {position: raw[position].str.strip() for position in raw.columns}
    empty = np.logical_and.reduce([cells.to_numpy() == "" for cells in stripped.values()])

    repeated = np.ones(len(raw), dtype=bool)
    for position in list(raw.columns)[:3]:
        repeated &= stripped[position].map(normalize_name).to_numpy() == normalize_name(
            header[position]
        )

    if empty.any():
        report.dropped["empty row"] += int(empty.sum())
    if repeated.any():
        report.dropped["repeated header"] += int(repeated.sum())
    return ~(empty | repeated)


def _parse_features(
    raw: pd.DataFrame,
    rows: np.ndarray,
    header: list[str],
    mapping: HeaderMapping,
    report: FileReport,
) -> pd.DataFrame:
    """Convert feature cells to float32, collapsing duplicated columns that agree."""
    columns: dict[str, np.ndarray] = {}
    for position, name in mapping.columns:
        if name not in mapping.features:
            continue
        values = _to_numbers(raw[position], rows, header[position], report.path)
        if name not in columns:
            columns[name] = values
            continue
        _check_duplicate(columns[name], values, rows, header, position, name, report)

    features = pd.DataFrame({name: columns[name] for name in mapping.features})
    for name in features.columns:
        bad = int((~np.isfinite(features[name].to_numpy())).sum())
        if bad:
            report.non_finite[name] += bad
    return features


def _to_numbers(cells: pd.Series, rows: np.ndarray, column: str, path: str) -> np.ndarray:
    """Parse one column of text cells as float32; 'Infinity' is inf, missing cells NaN.

    A number beyond the float32 range (about 3.4e38) becomes +/-inf, so it is counted with the
    non-finite cells and repaired by the same rule.
    """
    text = cells.str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna().to_numpy() & ~text.isin(_MISSING_TOKENS).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, row {rows[first]}, column {column.strip()!r}: {text.iloc[first]!r} is "
            f"not a number (expected a number, 'Infinity', 'NaN' or an empty cell); "
            f"{int(bad.sum())} such cell(s) in this column of the chunk"
        )
    with np.errstate(over="ignore"):
        return numbers.to_numpy(dtype=np.float64).astype(np.float32)


def _check_duplicate(
    kept: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    header: list[str],
    position: int,
    name: str,
    report: FileReport,
) -> None:
    """Accept a duplicated column only if it equals the first copy everywhere."""
    same = (kept == values) | (np.isnan(kept) & np.isnan(values))
    if not same.all():
        first = int(np.flatnonzero(~same)[0])
        raise DataError(
            f"{report.path}, row {rows[first]}, column {header[position].strip()!r}: "
            f"duplicated column of {name} holds {float(values[first]):g} where the first copy "
            f"holds {float(kept[first]):g}; {int((~same).sum())} row(s) differ in this chunk. "
            "Expected identical copies; remove the copy that is wrong"
        )
    if header[position] not in report.collapsed_duplicates:
        report.collapsed_duplicates += (header[position],)
        logger.warning(
            "%s: column %r duplicates %s and agrees with it; keeping one copy",
            report.path,
            header[position].strip(),
            name,
        )


def _parse_labels(
    raw: pd.DataFrame, rows: np.ndarray, mapping: HeaderMapping, report: FileReport
) -> np.ndarray:
    """Map label cells to canonical labels; unknown labels are an error, never benign."""
    position = next(position for position, name in mapping.columns if name == LABEL)
    cells = raw[position]
    canonical = {value: canonical_label(value) for value in cells.unique()}
    unknown = [value for value, label in canonical.items() if label is None]
    if unknown:
        counts = cells[cells.isin(unknown)].value_counts()
        first = int(np.flatnonzero(cells.isin(unknown).to_numpy())[0])
        listed = ", ".join(f"{value!r} ({count})" for value, count in counts.items())
        raise DataError(
            f"{report.path}, row {rows[first]}, column 'Label': unknown label(s) {listed}. "
            "Expected a CIC-IDS2017, CSE-CIC-IDS2018 or CIC-DDoS2019 label; flowids never "
            "treats an unknown label as benign"
        )
    labels = cells.map(canonical).to_numpy(dtype=object)
    report.labels.update(Counter(labels.tolist()))
    return labels


def _log_report(report: FileReport) -> None:
    repaired = sum(report.non_finite.values())
    dropped = sum(report.dropped.values())
    logger.info(
        "%s: read %s flow records (%s); %s non-finite cells left for repair; dropped %s%s",
        report.path,
        f"{report.rows_read:,}",
        report.dialect,
        f"{repaired:,}",
        f"{dropped:,}",
        f" ({', '.join(f'{n} {why}' for why, n in report.dropped.items())})" if dropped else "",
    )


def concat_tables(tables: list[FlowTable], reports: list[FileReport]) -> FlowTable:
    """Join flow tables, keeping only the features every table has."""
    common = [
        name
        for name in tables[0].features.columns
        if all(name in table.features.columns for table in tables)
    ]
    has_labels = [table.labels is not None for table in tables]
    if any(has_labels) and not all(has_labels):
        missing = sorted({r.path for t in tables if t.labels is None for r in t.reports})
        raise DataError(
            f"{', '.join(missing)}: no Label column, while other input files have one. "
            "Give labelled and unlabelled files in separate commands"
        )
    return FlowTable(
        features=pd.concat([t.features[common] for t in tables], ignore_index=True),
        labels=np.concatenate([t.labels for t in tables]) if all(has_labels) else None,
        identifiers=pd.concat([t.identifiers for t in tables], ignore_index=True),
        origin=pd.concat([t.origin for t in tables], ignore_index=True),
        reports=reports,
    )


def read_flows(paths: Iterable[str | Path], chunk_flows: int = DEFAULT_CHUNK_FLOWS) -> FlowTable:
    """Read every flow CSV named by ``paths`` (files, directories, globs) into one table.

    Parameters
    ----------
    paths : iterable of str or Path
    chunk_flows : int
        Flow records parsed at a time; bounds the memory of the text stage.

    Returns
    -------
    FlowTable
        Features present in every file; a feature missing from one file is left out and
        logged.

    Raises
    ------
    DataError
        See :func:`iter_flow_chunks`; also when no input holds a flow record.
    """
    files = expand_paths(paths)
    if not files:
        raise DataError("no input file given (expected one or more flow CSV files)")

    tables: list[FlowTable] = []
    reports: list[FileReport] = []
    for path in files:
        chunks = list(iter_flow_chunks(path, chunk_flows))
        reports.append(chunks[0].reports[0] if chunks else FileReport(path=str(path)))
        tables.extend(chunks)
    tables = [table for table in tables if len(table)]
    if not tables:
        raise DataError(f"{', '.join(map(str, files))}: no flow records after dropping empty rows")

    table = concat_tables(tables, reports)
    all_features = set().union(*(t.features.columns for t in tables))
    left_out = sorted(all_features - set(table.features.columns))
    if left_out:
        logger.warning(
            "left out %d feature(s) that not every input file has: %s",
            len(left_out),
            ", ".join(left_out),
        )
    return table
