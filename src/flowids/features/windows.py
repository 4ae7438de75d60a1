# SPDX-License-Identifier: Apache-2.0
"""Windows of related flows: each flow with the flows of the same key that started before it.

A window holds a flow's ``timesteps - 1`` predecessors that share its key (source IP to
destination IP and port, by default) in start-time order, then the flow itself last; shorter
windows are left-padded with :data:`MASK_VALUE` rows, which the network masks. Each window is
labelled and scored as its last flow, so every flow keeps its own verdict. The same windows
come from a whole table at once (:func:`window_index`, training) and from flows pushed in time
order chunk by chunk (:class:`WindowState`, prediction and detection).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flowids.errors import DataError, UsageError
from flowids.models.presets import WINDOW_KEYS

logger = logging.getLogger(__name__)

# Identifier columns that make up each key, in the order they are joined.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "src-dst-port": ("src_ip", "dst_ip", "dst_port"),
    "dst": ("dst_ip", "dst_port"),
    "src": ("src_ip",),
}
KEY_WORDS = {
    "src-dst-port": "source IP to destination IP and port",
    "dst": "destination IP and port",
    "src": "source IP",
}
DEFAULT_KEY = "src-dst-port"
DEFAULT_GAP_S = 120.0
DEFAULT_MAX_KEYS = 50_000

# Feature value of every padding row. Preprocessed features are standardised (mean 0, std 1 on
# the training part), so no real flow has all its features at -1000; build_windows refuses one
# that does, since the network would skip it as padding.
MASK_VALUE = -1000.0

_COLUMN_NAMES = {
    "src_ip": "Source IP",
    "dst_ip": "Destination IP",
    "dst_port": "Destination Port",
    "timestamp": "Timestamp",
}
_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class WindowSettings:
    """How flows are grouped into windows.

    Attributes
    ----------
    timesteps : int
        Flows per window, the scored flow included; >= 1.
    key : str
        What related flows share: ``"src-dst-port"`` (source IP to destination IP and
        port), ``"dst"`` (destination IP and port) or ``"src"`` (source IP).
    gap_s : float or None
        A flow that starts more than this many seconds after the previous flow of its key
        starts a new sequence: its window holds none of the earlier flows. None: no gap
        breaks a sequence.
    max_keys : int
        Keys whose recent flows a :class:`WindowState` keeps at most; the longest idle keys
        are dropped beyond it.
    mask_value : float
        Feature value of the padding rows.
    """

    timesteps: int
    key: str = DEFAULT_KEY
    gap_s: float | None = DEFAULT_GAP_S
    max_keys: int = DEFAULT_MAX_KEYS
    mask_value: float = MASK_VALUE

    def __post_init__(self) -> None:
        if isinstance(self.timesteps, bool) or not isinstance(self.timesteps, int | np.integer):
            raise UsageError(f"timesteps = {self.timesteps!r}; expected an integer >= 1")
        if self.timesteps < 1:
            raise UsageError(f"timesteps = {self.timesteps}; expected an integer >= 1")
        if self.key not in KEY_COLUMNS:
            raise UsageError(
                f"window key {self.key!r} is not known; expected one of {', '.join(KEY_COLUMNS)}"
            )
        if self.gap_s is not None and not (math.isfinite(self.gap_s) and self.gap_s > 0):
            raise UsageError(f"gap_s = {self.gap_s!r}; expected a number of seconds > 0, or None")
        if self.max_keys < 1:
            raise UsageError(f"max_keys = {self.max_keys!r}; expected an integer >= 1")

    @classmethod
    def from_config(cls, config) -> WindowSettings | None:
        """The window settings of a training config; None when it feeds flows one by one.

        Raises
        ------
        UsageError
            If ``config.timesteps`` > 1 with a model other than the BiLSTM.
        """
        if config.timesteps == 1:
            return None
        if config.model != "bilstm":
            raise UsageError(
                f"timesteps = {config.timesteps} feeds windows of related flows, which only "
                f"the bilstm model reads; model is {config.model!r}. Set timesteps = 1 for "
                "it, or use model = bilstm"
            )
        return cls(config.timesteps, config.window_key, config.window_gap_s)

    def to_dict(self) -> dict:
        """JSON-safe form, as stored in a run's decision.json."""
        return {
            "timesteps": int(self.timesteps),
            "key": self.key,
            "key_columns": list(KEY_COLUMNS[self.key]),
            "gap_s": self.gap_s,
            "max_keys": int(self.max_keys),
            "mask_value": float(self.mask_value),
            "order": "start time, then row in file; windows never cross files",
        }

    @classmethod
    def from_dict(cls, data: dict) -> WindowSettings:
        return cls(
            int(data["timesteps"]),
            str(data["key"]),
            None if data.get("gap_s") is None else float(data["gap_s"]),
            int(data.get("max_keys", DEFAULT_MAX_KEYS)),
            float(data.get("mask_value", MASK_VALUE)),
        )

    def describe(self) -> str:
        gap = "no gap" if self.gap_s is None else f"a gap over {self.gap_s:g} s"
        return (
            f"windows of {self.timesteps} flows with the same {KEY_WORDS[self.key]}, "
            f"broken by {gap}"
        )


if set(KEY_COLUMNS) != set(WINDOW_KEYS):  # pragma: no cover - a coding error, not input
    raise RuntimeError("flowids.features.windows and presets.WINDOW_KEYS disagree")


@dataclass
class FlowWindows:
    """Windows as positions into preprocessed flows; :meth:`gather` builds the arrays.

    Attributes
    ----------
    x : ndarray of float32, shape (n_rows, n_features)
        Preprocessed flows the windows point into (for a :class:`WindowState`, the held
        flows of earlier chunks first).
    index : ndarray of int64, shape (n_windows, timesteps)
        Positions in ``x``; -1 marks padding. Window i belongs to the i-th scored flow.
    mask_value : float
    """

    x: np.ndarray
    index: np.ndarray
    mask_value: float = MASK_VALUE

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        if self.x.ndim != 2:
            raise UsageError(f"x has shape {self.x.shape}; expected (n_flows, n_features)")
        padding_like = np.all(self.x == np.float32(self.mask_value), axis=1)
        if padding_like.any():
            raise DataError(
                f"{int(padding_like.sum())} preprocessed flow(s), first at position "
                f"{int(np.flatnonzero(padding_like)[0])}, have every feature equal to the "
                f"padding value {self.mask_value:g}; the network would skip them as padding"
            )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def timesteps(self) -> int:
        return int(self.index.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def gather(self, windows: np.ndarray | slice | None = None) -> np.ndarray:
        """The windows at positions ``windows`` (all by default).

        Returns
        -------
        ndarray of float32, shape (n_windows, timesteps, n_features)
            Padding rows hold ``mask_value`` in every feature.
        """
        index = self.index if windows is None else self.index[windows]
        values = self.x[np.maximum(index, 0)]
        values[index < 0] = np.float32(self.mask_value)
        return values

    def context_lengths(self) -> np.ndarray:
        """Real flows in each window, the scored flow included; shape (n_windows,)."""
        return (self.index >= 0).sum(axis=1)


def build_windows(x: np.ndarray, index: np.ndarray, mask_value: float = MASK_VALUE) -> np.ndarray:
    """Arrange preprocessed flows as windows.

    Parameters
    ----------
    x : ndarray of float32, shape (n_flows, n_features)
    index : ndarray of int, shape (n_windows, timesteps)
        From :func:`window_index`; -1 is padding.

    Returns
    -------
    ndarray of float32, shape (n_windows, timesteps, n_features)
    """
    return FlowWindows(x, np.asarray(index, dtype=np.int64), mask_value).gather()


def _key_codes(keys: np.ndarray) -> np.ndarray:
    """Number each key; a missing key (None) gets a number of its own, so it groups nothing."""
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object), use_na_sentinel=True)
    codes = codes.astype(np.int64)
    missing = codes < 0
    codes[missing] = len(uniques) + np.arange(int(missing.sum()))
    return codes


def _as_ns(times: np.ndarray) -> np.ndarray:
    """Times as int64 nanoseconds: datetime64 of any unit, or int64 already in ns."""
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[ns]").astype(np.int64)
    return times.astype(np.int64)


def _sequences(
    codes: np.ndarray, times_ns: np.ndarray, order: np.ndarray, gap_s: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Flows grouped by key in ``order``, and a segment number that a key or a gap changes."""
    by_key = order[np.argsort(codes[order], kind="stable")]
    key, time = codes[by_key], times_ns[by_key]
    starts = np.ones(len(by_key), dtype=bool)
    starts[1:] = key[1:] != key[:-1]
    if gap_s is not None:
        starts[1:] |= (time[1:] - time[:-1]) > int(round(gap_s * 1e9))
    return by_key, np.cumsum(starts)


def time_order(times: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Positions of flows by start time, ties by ``rows`` (their row in the file), stably."""
    times_ns = _as_ns(times)
    rows = np.arange(len(times_ns)) if rows is None else np.asarray(rows)
    return np.lexsort((np.arange(len(times_ns)), rows, times_ns))


def window_index(
    keys: np.ndarray,
    times: np.ndarray,
    settings: WindowSettings,
    rows: np.ndarray | None = None,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """The window of every flow, as positions of the flows it holds.

    Parameters
    ----------
    keys : ndarray of object, shape (n_flows,)
        Each flow's key (see :func:`flow_keys`); None for a flow without one, which then
        shares its window with no other flow.
    times : ndarray of datetime64, shape (n_flows,)
        Start times.
    settings : WindowSettings
    rows : ndarray of int, shape (n_flows,), optional
        Breaks ties in time: each flow's row in its file. Default: the position.
    order : ndarray of int, shape (n_flows,), optional
        The order of the flows, used instead of sorting by time and row.

    Returns
    -------
    ndarray of int64, shape (n_flows, timesteps)
        Row i: the positions of flow i's predecessors with its key (oldest first), then i
        itself in the last column; -1 pads windows on the left.

    Notes
    -----
    A flow more than ``settings.gap_s`` seconds after the previous flow of its key starts a
    new sequence. Only the flows given are used, so windows built from one part of a split
    never hold flows of another part.
    """
    keys = np.asarray(keys, dtype=object)
    times_ns = _as_ns(times)
    if len(times_ns) != len(keys):
        raise UsageError(f"{len(keys)} keys but {len(times_ns)} times; expected one per flow")
    if order is None:
        order = time_order(times_ns, rows)

    by_key, segment = _sequences(_key_codes(keys), times_ns, np.asarray(order), settings.gap_s)
    steps = settings.timesteps
    index = np.full((len(keys), steps), -1, dtype=np.int64)
    for lag in range(min(steps, len(keys))):
        here = np.arange(lag, len(by_key))
        same = segment[here - lag] == segment[here]
        index[by_key[here[same]], steps - 1 - lag] = by_key[here[same] - lag]
    return index


def flow_keys(identifiers: pd.DataFrame, key: str, files: np.ndarray | None = None) -> np.ndarray:
    """Each flow's key: the identifier columns of ``key`` joined, within its file.

    Parameters
    ----------
    identifiers : DataFrame of shape (n_flows, n_identifiers)
        Text identifiers as read (``FlowTable.identifiers``).
    key : str
        One of ``KEY_COLUMNS``.
    files : ndarray of str, shape (n_flows,), optional
        The file of each flow; flows of different files never share a key.

    Returns
    -------
    ndarray of object, shape (n_flows,)
        Key strings; None where a key column is empty.
    """
    columns = KEY_COLUMNS[key]
    parts = [
        identifiers[column].astype(str).str.strip().to_numpy(dtype=object) for column in columns
    ]
    if files is not None:
        parts.insert(0, np.asarray(files, dtype=object).astype(str))
    joined = parts[0].copy()
    for part in parts[1:]:
        joined = joined + _SEPARATOR + part
    missing = np.zeros(len(joined), dtype=bool)
    for part in parts[-len(columns) :]:
        missing |= (part == "") | (part == "nan") | (part == "None")
    joined[missing] = None
    return joined


def _table_files_and_rows(table) -> tuple[np.ndarray, np.ndarray]:
    """Each flow's original file and row: ``source_file``/``source_row`` where a run's test
    flows file carries them, else where the flow was read."""
    files = table.origin["file"].astype(str).to_numpy(dtype=object)
    rows = table.origin["row"].to_numpy(dtype=np.int64)
    ids = table.identifiers
    if "source_file" in ids.columns and "source_row" in ids.columns:
        source_rows = pd.to_numeric(ids["source_row"], errors="coerce").to_numpy()
        known = (ids["source_file"].astype(str).str.strip() != "").to_numpy() & ~np.isnan(
            source_rows
        )
        files = np.where(known, ids["source_file"].astype(str).to_numpy(dtype=object), files)
        rows = np.where(known, np.nan_to_num(source_rows).astype(np.int64), rows)
    return files, rows


def check_window_columns(table, settings: WindowSettings) -> None:
    """Refuse a table whose files lack the identifiers that windows are built from.

    Raises
    ------
    DataError
        Naming each file without the key's columns or the Timestamp, and what to do.
    """
    needed = [*KEY_COLUMNS[settings.key], "timestamp"]
    files = table.origin["file"].astype(str).to_numpy(dtype=object)
    lacking: dict[str, list[str]] = {}
    for column in needed:
        if column not in table.identifiers.columns:
            for file in dict.fromkeys(files):
                lacking.setdefault(file, []).append(_COLUMN_NAMES[column])
    if lacking:
        listed = "; ".join(f"{file} has no {', '.join(cols)}" for file, cols in lacking.items())
        raise DataError(
            f"{listed}. The run scores {settings.describe()}, ordered by start time, so every "
            "flow needs its Source IP, Destination IP, Destination Port and Timestamp "
            "(GeneratedLabelledFlows CSVs and `flowids extract` output have them; "
            "MachineLearningCVE files do not). Use such files, or a run with timesteps = 1 "
            "(preset seed-20200924)"
        )


def window_inputs(table, settings: WindowSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, start times and rows of a table's flows, as :func:`window_index` takes them.

    Returns
    -------
    keys : ndarray of object, shape (n_flows,)
    times : ndarray of datetime64[ns], shape (n_flows,)
    rows : ndarray of int64, shape (n_flows,)

    Raises
    ------
    DataError
        If a file lacks a needed column (see :func:`check_window_columns`) or a timestamp
        cannot be parsed.
    """
    from flowids.splits import flow_times

    check_window_columns(table, settings)
    files, rows = _table_files_and_rows(table)
    keys = flow_keys(table.identifiers, settings.key, files)
    try:
        times = flow_times(table)
    except (DataError, UsageError) as exc:
        raise DataError(f"{exc} (windows of related flows are ordered by this time)") from None

    missing = int(sum(k is None for k in keys))
    if missing:
        logger.warning(
            "%s flow(s) have an empty %s; each is scored without related flows",
            f"{missing:,}",
            " or ".join(_COLUMN_NAMES[c] for c in KEY_COLUMNS[settings.key]),
        )
    return keys, times, rows


def table_windows(table, x: np.ndarray, settings: WindowSettings) -> FlowWindows:
    """Windows of every flow of a table, built from the table's own flows only.

    Parameters
    ----------
    table : FlowTable
        Flows with identifiers and timestamps; one part of a split at most, so that windows
        stay inside that part.
    x : ndarray of float32, shape (n_flows, n_features)
        The table's flows, preprocessed, in the table's order.

    Returns
    -------
    FlowWindows
        Window i belongs to flow i of the table.
    """
    keys, times, rows = window_inputs(table, settings)
    index = window_index(keys, times, settings, rows)
    windows = FlowWindows(x, index, settings.mask_value)
    _log_context(windows, settings)
    return windows


def table_time_order(table, settings: WindowSettings) -> np.ndarray:
    """Positions of a table's flows in the order windows see them (time, then row)."""
    _, times, rows = window_inputs(table, settings)
    return time_order(times, rows)


def _log_context(windows: FlowWindows, settings: WindowSettings) -> None:
    if not len(windows):
        return
    lengths = windows.context_lengths()
    logger.info(
        "built %s %s: mean %.2f real flows per window; %s full, %s with the flow alone",
        f"{len(windows):,}",
        settings.describe(),
        float(lengths.mean()),
        f"{int((lengths == settings.timesteps).sum()):,}",
        f"{int((lengths == 1).sum()):,}",
    )


class WindowState:
    """Recent flows per key, so flows scored chunk by chunk get the windows of a whole table.

    Push flows in start-time order (within a chunk they are sorted by time and row); each
    flow's window then equals the one :func:`window_index` builds over all flows pushed so
    far. The state keeps at most ``timesteps - 1`` preprocessed flows per key.

    Parameters
    ----------
    settings : WindowSettings

    Notes
    -----
    Memory stays bounded: a key idle for longer than ``settings.gap_s`` after the latest
    flow seen is dropped (its next flow would start a new sequence anyway), and beyond
    ``settings.max_keys`` keys the longest idle ones are dropped; ``evicted`` counts those.
    """

    # Limitation: flows are put in time order within each pushed chunk only; a flow that
    # starts before flows of its key in an earlier chunk is placed after them (#6).

    def __init__(self, settings: WindowSettings) -> None:
        self.settings = settings
        self._keys = np.empty(0, dtype=object)
        self._times = np.empty(0, dtype=np.int64)
        self._x: np.ndarray | None = None
        self._latest: int | None = None
        self.evicted = 0

    @property
    def n_keys(self) -> int:
        return len(pd.unique(self._keys))

    @property
    def n_held(self) -> int:
        """Preprocessed flows held, over all keys."""
        return len(self._keys)

    def push(
        self,
        keys: np.ndarray,
        times: np.ndarray,
        x: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> FlowWindows:
        """Windows of a chunk of flows, given every flow pushed before; then remember them.

        Parameters
        ----------
        keys : ndarray of object, shape (n_flows,)
        times : ndarray of datetime64, shape (n_flows,)
            Start times.
        x : ndarray of float32, shape (n_flows, n_features)
            The chunk's flows, preprocessed.
        rows : ndarray of int, shape (n_flows,), optional
            Breaks ties in time within the chunk; default: the position.

        Returns
        -------
        FlowWindows
            Window i belongs to flow i of the chunk.
        """
        keys = np.asarray(keys, dtype=object)
        times_ns = _as_ns(times)
        x = np.asarray(x, dtype=np.float32)
        if self._x is None:
            self._x = np.empty((0, x.shape[1]), dtype=np.float32)

        held = pd.Index(self._keys).isin(pd.unique(keys[pd.notna(keys)]))
        n_held = int(held.sum())
        all_keys = np.concatenate([self._keys[held], keys])
        all_times = np.concatenate([self._times[held], times_ns])
        all_x = np.concatenate([self._x[held], x])
        order = np.concatenate([np.arange(n_held), n_held + time_order(times_ns, rows)])

        index = window_index(all_keys, all_times, self.settings, order=order)[n_held:]
        windows = FlowWindows(all_x, index, self.settings.mask_value)

        self._remember(held, all_keys, all_times, all_x, order)
        return windows

    def _remember(self, held, all_keys, all_times, all_x, order) -> None:
        """Keep the last ``timesteps - 1`` flows of each key's current sequence."""
        codes = _key_codes(all_keys)
        by_key, segment = _sequences(codes, all_times, order, self.settings.gap_s)
        last_of_key = np.ones(len(by_key), dtype=bool)
        last_of_key[:-1] = codes[by_key][1:] != codes[by_key][:-1]
        # distance from the end of each key's run, and whether in the key's last segment
        run_end = np.minimum.accumulate(
            np.where(last_of_key, np.arange(len(by_key)), len(by_key))[::-1]
        )[::-1]
        from_end = run_end - np.arange(len(by_key))
        keep = (from_end < self.settings.timesteps - 1) & (segment == segment[run_end])
        keep &= pd.notna(all_keys[by_key])
        kept = by_key[keep]

        self._keys = np.concatenate([self._keys[~held], all_keys[kept]])
        self._times = np.concatenate([self._times[~held], all_times[kept]])
        self._x = np.concatenate([self._x[~held], all_x[kept]])
        if len(all_times):
            newest = int(all_times.max())
            self._latest = newest if self._latest is None else max(self._latest, newest)
        self._expire()

    def _expire(self) -> None:
        """Drop keys idle past the gap, then the longest idle beyond ``max_keys``."""
        if not len(self._keys):
            return
        last = pd.Series(self._times).groupby(pd.factorize(self._keys)[0]).transform("max")
        last = last.to_numpy()
        drop = np.zeros(len(self._keys), dtype=bool)
        if self.settings.gap_s is not None and self._latest is not None:
            drop = last < self._latest - int(round(self.settings.gap_s * 1e9))

        codes = pd.factorize(self._keys)[0]
        alive = np.unique(codes[~drop])
        if len(alive) > self.settings.max_keys:
            last_by_code = pd.Series(last).groupby(codes).max()
            ranked = last_by_code.loc[alive].sort_values(kind="stable")
            evict = ranked.index[: len(alive) - self.settings.max_keys].to_numpy()
            self.evicted += len(evict)
            drop |= np.isin(codes, evict)
            logger.debug("window state: evicted %d idle keys over the cap", len(evict))

        if drop.any():
            self._keys, self._times, self._x = (
                self._keys[~drop],
                self._times[~drop],
                self._x[~drop],
            )


def stream_table_windows(state: WindowState, table, x: np.ndarray) -> FlowWindows:
    """Windows of a chunk of a flow file through ``state``; see :class:`WindowState`."""
    keys, times, rows = window_inputs(table, state.settings)
    return state.push(keys, times, x, rows)
