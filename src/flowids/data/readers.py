# SPDX-License-Identifier: Apache-2.0
"""Read flow-record CSV files of any known dialect into canonical float32 features.

The reader accepts one file, several, a directory or a glob, plain or gzip. It normalises
header names, collapses duplicated columns, drops empty rows and repeated header lines, refuses
lines whose fields do not match the header, maps labels to their canonical spelling, applies
the validity policy, and counts everything it dropped, repaired or left for repair. Chunks are
parsed column-wise by pyarrow; a chunk with anything unusual is parsed again cell by cell.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import io
import logging
import mmap
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flowids.data.labels import canonical_label
from flowids.data.schema import (
    FEATURES,
    LABEL,
    PYTHON_CFM,
    HeaderMapping,
    map_header,
    normalize_name,
    python_time_scale,
)
from flowids.data.validity import NON_FINITE, RULES, ValidityPolicy, check_validity
from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_FLOWS = 200_000

# Cell texts that stand for a missing number; every other non-number is an error.
_MISSING_TOKENS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "null", "None"})
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
# Bytes of text parsed at a time, and bytes per pyarrow parse task.
_READ_BYTES = 1 << 23
_ARROW_BLOCK_BYTES = 1 << 20


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
        Per canonical feature, cells that were missing, 'NaN' or +/-'Infinity' (the same
        counts as ``invalid['non-finite']``). By default they are kept as NaN or inf and
        repaired by the fitted preprocessing.
    labels : Counter
        Flow records passed on, per canonical label ('' for a "No Label" marker).
    invalid : dict of str to Counter
        Per validity rule ('negative', 'sentinel', 'non-finite'), values breaking it per
        canonical feature, counted before the policy acted on them.
    invalid_flows : Counter
        Per validity rule, flows with at least one such value.
    validity_policy : dict or None
        The action taken per rule; None where the file was only read and counted.
    ignored_columns : tuple of str
        Columns the dialect is known to carry beside the schema, ignored without a warning.
    unit_conversions : dict of str to str
        Features whose values were converted to the canonical unit, and how.
    """

    path: str
    sha256: str = ""
    dialect: str = ""
    rows_read: int = 0
    flows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    unknown_columns: tuple[str, ...] = ()
    collapsed_duplicates: tuple[str, ...] = ()
    invalid: dict[str, Counter] = field(default_factory=lambda: {rule: Counter() for rule in RULES})
    invalid_flows: Counter = field(default_factory=Counter)
    validity_policy: dict | None = None
    ignored_columns: tuple[str, ...] = ()
    unit_conversions: dict[str, str] = field(default_factory=dict)

    @property
    def non_finite(self) -> Counter:
        return self.invalid[NON_FINITE]

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
            "ignored_columns": list(self.ignored_columns),
            "unit_conversions": dict(self.unit_conversions),
            "validity": {
                "policy": self.validity_policy,
                **{
                    rule: {
                        "flows": int(self.invalid_flows.get(rule, 0)),
                        "values": dict(self.invalid[rule]),
                    }
                    for rule in RULES
                },
            },
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


def _open_binary(path: Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, decompressing it if it starts with the gzip magic."""
    if _is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115


def _open_text(path: Path) -> io.TextIOBase:
    # Labels can hold cp1252 bytes (0x96 en dash); they decode to U+FFFD and the label table
    # maps every dash variant to one label.
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="replace", newline="")


# Leading bytes of packet captures: pcap (both byte orders, micro- and nanosecond) and pcapng.
_CAPTURE_MAGIC = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)


def _refuse_binary(path: Path) -> None:
    """Refuse packet captures and other binary files with a message that says what they are."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as handle:
            head = handle.read(4096)
    if head[:4] in _CAPTURE_MAGIC:
        raise DataError(
            f"{path}: is a packet capture, not a flow CSV; turn it into flows with "
            "`flowids extract`, or score it directly with `flowids detect`"
        )
    if b"\x00" in head:
        raise DataError(f"{path}: holds binary data, not a flow CSV (expected text with a header)")


def read_header(path: Path) -> list[str]:
    """Return the header cells of a flow CSV, or raise DataError if it has none."""
    _refuse_binary(path)
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
    path: str | Path,
    chunk_flows: int = DEFAULT_CHUNK_FLOWS,
    validity: ValidityPolicy | None = None,
) -> Iterator[FlowTable]:
    """Read one flow CSV in chunks of at most ``chunk_flows`` flow records.

    Each chunk shares the same :class:`FileReport`, which is complete (sha256 included) once
    the iterator is exhausted. Memory stays bounded by the chunk size, whatever the file size.
    A file with a header and no data row gives one empty chunk, so that its report is still
    passed on.

    Parameters
    ----------
    path : str or Path
        A flow CSV, plain or gzip (recognised by its bytes, not its name).
    chunk_flows : int
        Flow records per chunk; the last chunk holds the rest.
    validity : ValidityPolicy, optional
        What to do with negative values, -1 sentinels and non-finite values. Without one,
        they are counted in the report and left as read.

    Raises
    ------
    DataError
        On a file that is not a flow CSV, a data line with more or fewer fields than the
        header, a cell that is not a number, duplicated columns that disagree, labels that
        the canonical table does not know, or a value that the validity policy refuses.
    UsageError
        If ``chunk_flows`` is not a positive number.

    Notes
    -----
    Rows are numbered from 1 at the first data line (the header is row 0), blank lines
    included, so ``row`` in messages and in :attr:`FlowTable.origin` is the file line minus 1.

    The file is parsed in blocks of about 8 MB of text, each first column-wise by pyarrow with
    explicit float types. A block that this fast parse cannot take as it is (a blank line, a
    cell that is not a plain number, a line with the wrong number of fields, a label outside
    the table) is parsed again cell by cell, which finds and names every problem; both give
    the same values. Header lines repeated byte for byte are taken out before the fast parse.
    """
    if int(chunk_flows) < 1:
        raise UsageError(f"chunk_flows is {chunk_flows}; expected a positive number of flows")
    chunk_flows = int(chunk_flows)

    pending: list[FlowTable] = []
    n_pending = 0
    produced = False
    for piece in _iter_pieces(Path(path), validity):
        pending.append(piece)
        n_pending += len(piece)
        while n_pending >= chunk_flows:
            joined = pending[0] if len(pending) == 1 else _join(pending)
            yield _rows(joined, 0, chunk_flows)
            produced = True
            pending = [_rows(joined, chunk_flows, len(joined))]
            n_pending = len(pending[0])
    if n_pending or not produced:
        yield pending[0] if len(pending) == 1 else _join(pending)


def _join(tables: list[FlowTable]) -> FlowTable:
    """Chunks of one file as one table."""
    return concat_tables(tables, tables[0].reports)


def _rows(table: FlowTable, start: int, stop: int) -> FlowTable:
    """Flow records ``start:stop`` of a table, as a table of their own."""
    return FlowTable(
        features=table.features.iloc[start:stop].reset_index(drop=True),
        labels=None if table.labels is None else table.labels[start:stop],
        identifiers=table.identifiers.iloc[start:stop].reset_index(drop=True),
        origin=table.origin.iloc[start:stop].reset_index(drop=True),
        reports=table.reports,
    )


def _iter_pieces(path: Path, validity: ValidityPolicy | None) -> Iterator[FlowTable]:
    """Parse a file block by block (about 8 MB of text each); at least one, maybe empty, piece.

    The report of the file is complete, sha256 included, when the last piece is yielded.
    """
    layout = _FileLayout.of(path)
    report = layout.report
    if report.unknown_columns:
        logger.warning(
            "%s: ignoring %d unknown column(s): %s",
            path,
            len(report.unknown_columns),
            ", ".join(repr(name) for name in report.unknown_columns),
        )
    if validity is not None:
        report.validity_policy = validity.to_dict()

    digest = hashlib.sha256()
    pieces: list[FlowTable] = []
    first_row = 1
    with _open_hashed(path, digest) as (raw, stream), ThreadPoolExecutor(1) as ahead:
        stream.readline()
        blocks = _byte_blocks(stream, path)
        # The next block is read and parsed by pyarrow (which frees the GIL) in a second
        # thread while this one finishes the current block.
        upcoming = ahead.submit(_read_and_parse, blocks, layout)
        while (parsed := upcoming.result()) is not None:
            upcoming = ahead.submit(_read_and_parse, blocks, layout)
            table = _fast_table(parsed, first_row, layout)
            if table is None:
                table = _parse_exact(parsed.block, first_row, layout)
            first_row = report.rows_read + 1
            pieces.append(_finish_chunk(table, layout, validity))
            # One piece is held back, so that the last one leaves with a complete report.
            if len(pieces) > 1:
                yield pieces.pop(0)
        # What is left after the data (gzip trailer padding) still belongs to the digest.
        while raw.read(_READ_BYTES):
            pass
    report.sha256 = digest.hexdigest()
    if not pieces:
        empty = pd.DataFrame({position: pd.Series([], dtype=object) for position in layout.used})
        pieces.append(_finish_chunk(_chunk_to_table(empty, 1, layout), layout, validity))
    _log_report(report)
    yield from pieces


@dataclass
class _FileLayout:
    """One file's header, its mapping onto the schema, and the fast parser's options.

    Attributes
    ----------
    used : list of int
        Positions of the recognised columns.
    feature_columns, identifier_columns : list of (int, str)
        ``(position, canonical name)`` of the feature (duplicates included) and identifier
        columns, in file order.
    features : list of str
        Canonical features present, in canonical order, each once.
    label_position : int or None
    """

    path: Path
    header: list[str]
    mapping: HeaderMapping
    report: FileReport
    header_line: bytes = b""

    def __post_init__(self) -> None:
        self.features = self.mapping.features
        known = set(self.features)
        self.feature_columns = [(p, n) for p, n in self.mapping.columns if n in known]
        # Row of each feature column in the parsed values: the first copy of a feature at
        # its canonical place, so that the first len(features) rows are the features in
        # order without a copy; further copies (a duplicated header) after them.
        self.slots: list[int] = []
        extra = len(self.features)
        for _, name in self.feature_columns:
            if self.features.index(name) in self.slots:
                self.slots.append(extra)
                extra += 1
            else:
                self.slots.append(self.features.index(name))
        identifiers = set(self.mapping.identifiers)
        self.identifier_columns = [(p, n) for p, n in self.mapping.columns if n in identifiers]
        self.used = sorted(position for position, _ in self.mapping.columns)
        self.label_position = next((p for p, n in self.mapping.columns if n == LABEL), None)
        self.column_names: dict[str, str] = {}
        for position, name in self.feature_columns:
            self.column_names.setdefault(name, self.header[position].strip())
        self.scales: dict[int, float] = dict(self.mapping.scales)
        for position, factor in self.scales.items():
            self.report.unit_conversions[self.mapping_name(position)] = (
                f"{self.header[position].strip()} x {factor:g}"
            )
        # Python cicflowmeter files: seconds or microseconds, decided on the first flows.
        self.time_unit_pending = self.mapping.dialect == PYTHON_CFM
        self._options: tuple = ()

    def mapping_name(self, position: int) -> str:
        return next(name for p, name in self.mapping.columns if p == position)

    @classmethod
    def of(cls, path: Path) -> _FileLayout:
        mapping = inspect_header(path)
        header = read_header(path)
        with _open_binary(path) as handle:
            header_line = handle.readline().rstrip(b"\r\n")
        report = FileReport(
            path=str(path),
            dialect=mapping.dialect,
            unknown_columns=tuple(name for name in mapping.unknown if name.strip()),
            ignored_columns=mapping.ignored,
        )
        return cls(path, header, mapping, report, header_line)

    @property
    def arrow_options(self) -> tuple:
        """pyarrow read, parse and convert options.

        Features are read as float64 (then cast to float32, as the exact parse does),
        identifiers as UTF-8 text, the label as bytes (it may hold a cp1252 dash).
        """
        if not self._options:
            names = [f"c{position}" for position in range(len(self.header))]
            types = {names[position]: pa.float64() for position, _ in self.feature_columns}
            types.update({names[p]: pa.string() for p, _ in self.identifier_columns})
            if self.label_position is not None:
                types[names[self.label_position]] = pa.binary()
            self._options = (
                pacsv.ReadOptions(column_names=names, block_size=_ARROW_BLOCK_BYTES),
                pacsv.ParseOptions(ignore_empty_lines=False),
                pacsv.ConvertOptions(
                    column_types=types,
                    include_columns=[names[position] for position in self.used],
                    null_values=sorted(_MISSING_TOKENS),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        return self._options


class _HashingReader(io.RawIOBase):
    """A raw file that feeds every byte it reads into a digest."""

    def __init__(self, raw: io.RawIOBase, digest) -> None:
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer)[:n])
        return n


@contextmanager
def _open_hashed(path: Path, digest) -> Iterator[tuple[io.RawIOBase, io.BufferedIOBase]]:
    """Open a file for reading its (decompressed) bytes while hashing the stored bytes.

    Yields the raw file (read what is left of it to complete the digest) and the stream of
    data bytes, gunzipped when the file starts with the gzip magic.
    """
    compressed = _is_gzip(path)
    with open(path, "rb", buffering=0) as raw:
        buffered = io.BufferedReader(_HashingReader(raw, digest), buffer_size=_READ_BYTES)
        if compressed:
            with gzip.GzipFile(fileobj=buffered, mode="rb") as stream:
                yield buffered, stream
        else:
            yield buffered, buffered


def _byte_blocks(stream: io.BufferedIOBase, path: Path) -> Iterator[bytes]:
    """Cut a byte stream into blocks of whole lines, about ``_READ_BYTES`` each.

    Every block but the last ends at a line end; the last may lack one.

    Raises
    ------
    DataError
        If a gzip file is damaged or cut short.
    """
    # Limitation: a quoted value holding a line break would be cut in two; CICFlowMeter writers
    # never quote, and such a line fails the field count check with its row named.
    rest = b""
    while True:
        try:
            data = stream.read(_READ_BYTES)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{path}: the compressed data is damaged or cut short ({exc}); expected a "
                "complete gzip file. Download or copy it again"
            ) from None
        if not data:
            if rest:
                yield rest
            return
        data = rest + data if rest else data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        yield data[:cut]
        rest = data[cut:]


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _drop_repeated_headers(block: bytes, header_line: bytes) -> tuple[bytes, np.ndarray | None]:
    """Remove lines that repeat the header byte for byte; return the rest and kept line indices.

    CSE-CIC-IDS2018 day files repeat their header inside the data; taking those lines out
    before the fast parse keeps such chunks on the fast path.
    """
    if not header_line or header_line not in block:
        return block, None
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    keep = np.array([line.rstrip(b"\r") != header_line for line in lines], dtype=bool)
    if keep.all():
        return block, None
    kept = b"\n".join(line for line, k in zip(lines, keep, strict=True) if k)
    return (kept + b"\n" if kept else kept), keep


@dataclass
class _Parsed:
    """A block of text, and what the fast parse made of it (``arrow`` None if it failed)."""

    block: bytes
    lines: int
    kept_lines: np.ndarray | None
    arrow: pa.Table | None


def _read_and_parse(blocks: Iterator[bytes], layout: _FileLayout) -> _Parsed | None:
    """Take the next block of text and parse it with pyarrow; None at the end of the file."""
    block = next(blocks, None)
    if block is None:
        return None
    text, kept_lines = _drop_repeated_headers(block, layout.header_line)
    read_options, parse_options, convert_options = layout.arrow_options
    try:
        arrow = pacsv.read_csv(
            io.BytesIO(text),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        logger.debug("%s: parsing a block cell by cell (%s)", layout.path, exc)
        arrow = None
    # Without quotes (CICFlowMeter never quotes) each line is one row, blank lines included
    # (pyarrow refuses those); a quoted value may hold a line break, so count the lines.
    if b'"' in text:
        lines = text.count(b"\n") + (0 if text.endswith(b"\n") or not text else 1)
    else:
        lines = arrow.num_rows if arrow is not None else 0
    return _Parsed(block, lines, kept_lines, arrow)


def _fast_table(parsed: _Parsed, first_row: int, layout: _FileLayout) -> FlowTable | None:
    """Flow records of a block that pyarrow parsed; None where only the exact parse can decide.

    None when the parse failed, when its row count differs from the lines (a quoted line
    break), when a row is empty, when a NaN comes from a text other than the missing-value
    tokens, or when a label or identifier needs the exact parse's message.
    """
    arrow = parsed.arrow
    if arrow is None or arrow.num_rows != parsed.lines or parsed.lines == 0:
        return None
    columns = _fast_columns(arrow, layout)
    if columns is None:
        return None
    values, labels, identifiers = columns

    rows = np.arange(first_row, first_row + parsed.lines)
    if parsed.kept_lines is not None:
        rows = (first_row + np.flatnonzero(parsed.kept_lines)).astype(np.int64)
        repeated = int((~parsed.kept_lines).sum())
        layout.report.dropped["repeated header"] += repeated
        layout.report.rows_read += repeated
    layout.report.rows_read += parsed.lines
    features = _collapse_duplicates(values, rows, layout)
    origin = pd.DataFrame({"file": layout.report.path, "row": rows})
    return FlowTable(features, labels, identifiers, origin, [layout.report])


def _fast_columns(arrow: pa.Table, layout: _FileLayout):
    """Feature values, labels and identifiers of a parsed block, or None to parse it exactly.

    The values are one float32 array of shape (n_feature_columns, n_flows), one row per
    feature column of the file at its slot (see :class:`_FileLayout`).
    """
    values = np.empty((len(layout.feature_columns), arrow.num_rows), dtype=np.float32)
    nulls = np.empty(len(layout.feature_columns), dtype=np.int64)
    with np.errstate(over="ignore"):
        for slot, (position, _) in zip(layout.slots, layout.feature_columns, strict=True):
            column = arrow.column(f"c{position}")
            values[slot] = column.to_numpy()
            nulls[slot] = column.null_count
    # NaN from a text other than the missing-value tokens ('-nan') is left to the exact
    # parse, which accepts or names it; so are rows with every feature missing.
    if not np.array_equal(np.isnan(values).sum(axis=1), nulls):
        return None
    if nulls.all():
        maybe_empty = np.flatnonzero(np.isnan(values[0]))
        if np.isnan(values[:, maybe_empty]).all(axis=0).any():
            return None

    labels = None
    if layout.label_position is not None:
        column = arrow.column(f"c{layout.label_position}")
        encoded = column.combine_chunks().dictionary_encode()
        texts = [cell.decode("utf-8", errors="replace") for cell in encoded.dictionary.to_pylist()]
        canonical = [canonical_label(text) for text in texts]
        if any(label is None for label in canonical):
            return None
        labels = np.array(canonical, dtype=object)[encoded.indices.to_numpy()]

    identifiers = pd.DataFrame(
        {
            name: pc.utf8_trim_whitespace(arrow.column(f"c{position}")).to_pandas()
            for position, name in layout.identifier_columns
        },
        index=pd.RangeIndex(arrow.num_rows),
    )
    return values, labels, identifiers


def _collapse_duplicates(values: np.ndarray, rows: np.ndarray, layout: _FileLayout) -> pd.DataFrame:
    """One column per canonical feature; a duplicated column must equal its first copy.

    Parameters
    ----------
    values : ndarray of float32, shape (n_feature_columns, n_flows)
        Every feature column of the file at its slot: the features in canonical order first,
        further copies of duplicated columns after them.
    """
    if layout.time_unit_pending:
        _decide_python_time_unit(values, layout)
    for slot, (position, _) in zip(layout.slots, layout.feature_columns, strict=True):
        if position in layout.scales:
            values[slot] *= layout.scales[position]

    n_features = len(layout.features)
    for slot, (position, name) in zip(layout.slots, layout.feature_columns, strict=True):
        if slot >= n_features:
            kept = values[layout.features.index(name)]
            _check_duplicate(kept, values[slot], rows, layout.header, position, name, layout.report)
    return pd.DataFrame(values[:n_features].T, columns=layout.features, copy=False)


def _decide_python_time_unit(values: np.ndarray, layout: _FileLayout) -> None:
    """Tell seconds from microseconds in a Python cicflowmeter file, from its first flows."""
    rows = {name: j for j, name in enumerate(layout.features)}
    needed = ("flow_duration_us", "flow_bytes_per_s", "total_fwd_bytes", "total_bwd_bytes")
    if not all(name in rows for name in needed):
        layout.time_unit_pending = False
        return
    total = values[rows["total_fwd_bytes"]] + values[rows["total_bwd_bytes"]]
    scale = python_time_scale(
        values[rows["flow_duration_us"]], values[rows["flow_bytes_per_s"]], total
    )
    # Limitation: a file whose first block has no flow with a duration, bytes and a finite
    # rate is read as microseconds until a later block decides.
    if scale is None:
        return
    layout.time_unit_pending = False
    if scale == 1.0:
        layout.report.unit_conversions["times"] = "microseconds as written"
        return
    for position, name in layout.feature_columns:
        if name.endswith("_us"):
            layout.scales[position] = scale
    layout.report.unit_conversions["times"] = (
        "seconds (cicflowmeter 0.2 or later), multiplied by 1e6 to microseconds"
    )
    logger.info("%s: times are in seconds; converted to microseconds", layout.path)


def _parse_exact(block: bytes, first_row: int, layout: _FileLayout) -> FlowTable:
    """Parse a block cell by cell as text: the reference behaviour, with exact messages."""
    _check_field_counts(layout.path, block, first_row, len(layout.header))
    text = block.decode("utf-8", errors="replace")
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DataError(
            f"{layout.path}, from row {first_row}: not a well-formed CSV ({exc})"
        ) from None
    raw = pd.DataFrame(
        {
            position: [record[position] if position < len(record) else "" for record in records]
            for position in layout.used
        },
        dtype=object,
    )
    return _chunk_to_table(raw, first_row, layout)


def _check_field_counts(path: Path, block: bytes, first_row: int, n_fields: int) -> None:
    """Refuse a data line whose number of fields differs from the header's.

    A line cut short (a file truncated by size) or with an extra separator would otherwise be
    read with its values under the wrong columns, or with the missing ones as empty cells.
    Lines of separators only are left for the empty-row count; extra fields that are all empty
    (a trailing separator) are accepted.
    """
    # Limitation: lines holding a double quote are not checked, since a quoted field may hold
    # the separator; CICFlowMeter writers never quote, so their files are checked in full.
    for row, line in enumerate(block.split(b"\n"), start=first_row):
        if line.count(b",") == n_fields - 1 or b'"' in line:
            continue
        cells = line.rstrip(b"\r").split(b",")
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


def _chunk_to_table(raw: pd.DataFrame, first_row: int, layout: _FileLayout) -> FlowTable:
    """Turn one chunk of text cells into canonical flow records, updating the report."""
    report, mapping = layout.report, layout.mapping
    raw = raw.fillna("")
    rows = np.arange(first_row, first_row + len(raw))
    report.rows_read += len(raw)

    keep = _drop_noise_rows(raw, layout.header, report)
    raw, rows = raw[keep], rows[keep]

    features = _parse_features(raw, rows, layout)
    labels = _parse_labels(raw, rows, mapping, report) if mapping.has_label else None
    # The index is given so that a file without identifier columns still has one (empty)
    # identifier row per flow record, and stays aligned with the features when joined.
    identifiers = pd.DataFrame(
        {
            name: raw[position].astype(object).str.strip().to_numpy()
            for position, name in layout.identifier_columns
        },
        index=pd.RangeIndex(len(raw)),
    )
    origin = pd.DataFrame({"file": report.path, "row": rows})
    return FlowTable(features, labels, identifiers, origin, [report])


def _finish_chunk(
    table: FlowTable, layout: _FileLayout, validity: ValidityPolicy | None
) -> FlowTable:
    """Apply the validity rules, then count the flows and labels passed on."""
    report = layout.report
    rows = table.origin["row"].to_numpy()
    keep = check_validity(table.features, rows, report, layout.column_names, validity)
    if keep is not None:
        table = table.take(np.flatnonzero(keep))
    report.flows_kept += len(table)
    if table.labels is not None:
        report.labels.update(table.labels.tolist())
    return table


def _drop_noise_rows(raw: pd.DataFrame, header: list[str], report: FileReport) -> np.ndarray:
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


def _parse_features(raw: pd.DataFrame, rows: np.ndarray, layout: _FileLayout) -> pd.DataFrame:
    """Convert feature cells to float32, collapsing duplicated columns that agree."""
    values = np.empty((len(layout.feature_columns), len(raw)), dtype=np.float32)
    for slot, (position, _) in zip(layout.slots, layout.feature_columns, strict=True):
        values[slot] = _to_numbers(raw[position], rows, layout.header[position], layout.path)
    return _collapse_duplicates(values, rows, layout)


def _to_numbers(cells: pd.Series, rows: np.ndarray, column: str, path: Path) -> np.ndarray:
    """Parse one column of text cells as float32; 'Infinity' is inf, missing cells NaN.

    A number beyond the float32 range (about 3.4e38) becomes +/-inf, so it is counted with the
    non-finite cells and repaired by the same rule.
    """
    text = cells.astype(object).str.strip()
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
    cells = raw[position].astype(object)
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
    return cells.map(canonical).to_numpy(dtype=object)


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


def concat_tables(
    tables: list[FlowTable], reports: list[FileReport], features: pd.DataFrame | None = None
) -> FlowTable:
    """Join flow tables, keeping only the features every table has.

    ``features``, when given, are the joined features already (see :class:`_FeatureBuffer`).
    """
    has_labels = [table.labels is not None for table in tables]
    if any(has_labels) and not all(has_labels):
        missing = sorted({r.path for t in tables if t.labels is None for r in t.reports})
        raise DataError(
            f"{', '.join(missing)}: no Label column, while other input files have one. "
            "Give labelled and unlabelled files in separate commands"
        )
    if features is None:
        common = [
            name
            for name in tables[0].features.columns
            if all(name in table.features.columns for table in tables)
        ]
        features = _concat_features([t.features for t in tables], common)
    return FlowTable(
        features=features,
        labels=np.concatenate([t.labels for t in tables]) if all(has_labels) else None,
        identifiers=pd.concat([t.identifiers for t in tables], ignore_index=True),
        origin=pd.concat([t.origin for t in tables], ignore_index=True),
        reports=reports,
    )


def _concat_features(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Stack feature frames into one float32 frame with a single copy of the values."""
    stacked = np.concatenate(
        [frame[columns].to_numpy(dtype=np.float32).T for frame in frames], axis=1
    )
    return pd.DataFrame(stacked.T, columns=columns, copy=False)


class _FeatureBuffer:
    """Features of many pieces gathered in place into one column-major float32 array.

    Joining millions of flows with ``pandas.concat`` costs about as much time as parsing them
    and holds every value twice; here each piece is copied once, into an array that grows by
    half when full. Pages never written are never resident, so a generous first size costs
    address space only.
    """

    def __init__(self, capacity: int) -> None:
        self.values = _untouched(len(FEATURES), max(int(capacity), 1))
        self.n = 0
        self.present: set[str] | None = None

    def add(self, features: pd.DataFrame) -> None:
        """Append a piece's features (canonical names, any subset of the schema)."""
        names = list(features.columns)
        self.present = set(names) if self.present is None else self.present & set(names)
        end = self.n + len(features)
        if end > self.values.shape[1]:
            grown = _untouched(len(FEATURES), max(end, self.values.shape[1] * 3 // 2))
            grown[:, : self.n] = self.values[:, : self.n]
            self.values = grown
        rows = [_FEATURE_INDEX[name] for name in names]
        block = features.to_numpy(dtype=np.float32).T
        if rows == list(range(rows[0], rows[0] + len(rows))):
            self.values[rows[0] : rows[0] + len(rows), self.n : end] = block
        else:
            self.values[rows, self.n : end] = block
        self.n = end

    def frame(self) -> pd.DataFrame:
        """The features every piece had, in canonical order, without copying when possible."""
        names = [name for name in FEATURES if name in (self.present or ())]
        rows = [_FEATURE_INDEX[name] for name in names]
        if rows == list(range(len(FEATURES))):
            values = self.values[:, : self.n]
        else:
            values = self.values[rows, : self.n]
        return pd.DataFrame(values.T, columns=names, copy=False)


_FEATURE_INDEX = {name: j for j, name in enumerate(FEATURES)}
_MAX_FIRST_CAPACITY = 1 << 23


def _untouched(n_rows: int, n_columns: int) -> np.ndarray:
    """A float32 array of anonymous memory whose pages become resident only when written.

    NumPy asks for transparent huge pages on large arrays; filled row by row in short runs,
    as here, each first write then clears a 2 MB page, which made the buffer ten times slower.
    """
    memory = mmap.mmap(-1, n_rows * n_columns * 4)
    return np.frombuffer(memory, dtype=np.float32).reshape(n_rows, n_columns)


def _estimated_flows(files: list[Path]) -> int:
    """A generous guess of the flow records in ``files`` from their sizes on disk.

    A CICFlowMeter line is at least about 150 bytes (79 fields); gzip rarely packs such text
    more than 8 times.
    """
    total = 0
    for path in files:
        size = path.stat().st_size
        total += size * 8 if _is_gzip(path) else size
    # Past about 8.4 million flows (2.5 GB of address space) the buffer grows as it fills,
    # so that a guess for a huge input never asks for more address space than memory holds.
    return min(total // 150 + 1, _MAX_FIRST_CAPACITY)


def read_flows(
    paths: Iterable[str | Path],
    chunk_flows: int = DEFAULT_CHUNK_FLOWS,
    validity: ValidityPolicy | None = None,
) -> FlowTable:
    """Read every flow CSV named by ``paths`` (files, directories, globs) into one table.

    Parameters
    ----------
    paths : iterable of str or Path
    chunk_flows : int
        Accepted for symmetry with :func:`iter_flow_chunks`; the table does not depend on it.
        Files are parsed in blocks of about 8 MB of text, which bounds the parsing memory.
    validity : ValidityPolicy, optional
        Applied to every block; without one, breaches are only counted.

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

    if int(chunk_flows) < 1:
        raise UsageError(f"chunk_flows is {chunk_flows}; expected a positive number of flows")

    tables: list[FlowTable] = []
    reports: list[FileReport] = []
    buffer = _FeatureBuffer(_estimated_flows(files))
    all_features: set[str] = set()
    for path in files:
        for number, piece in enumerate(_iter_pieces(path, validity)):
            if number == 0:
                reports.append(piece.reports[0])
            if not len(piece):
                continue
            all_features.update(piece.features.columns)
            buffer.add(piece.features)
            # The values now live in the buffer; the piece keeps labels and identifiers.
            piece.features = piece.features.iloc[:0].copy()
            tables.append(piece)
    if not tables:
        raise DataError(f"{', '.join(map(str, files))}: no flow records after dropping empty rows")

    table = concat_tables(tables, reports, features=buffer.frame())
    left_out = sorted(all_features - set(table.features.columns))
    if left_out:
        logger.warning(
            "left out %d feature(s) that not every input file has: %s",
            len(left_out),
            ", ".join(left_out),
        )
    return table
