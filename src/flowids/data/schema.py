# SPDX-License-Identifier: Apache-2.0
"""The canonical flow-record schema: feature names with units, identifiers, and header dialects.

Every producer spells the same CICFlowMeter features differently ('Total Fwd Packets',
'Tot Fwd Pkts', 'tot_fwd_pkts'). This module maps each spelling to one canonical snake_case
name whose suffix gives the unit (``_us`` microseconds, ``_bytes``, ``_per_s``), and says by
what factor a producer's values must be multiplied to be in that unit.

Units by dialect: every CICFlowMeter release (CIC-IDS2017, CSE-CIC-IDS2018, CIC-DDoS2019, the
Java tool) writes times in microseconds. The Python ``cicflowmeter`` package wrote them in
microseconds up to its 0.1 releases (``1e6 * duration``) and in seconds from 0.2 on, under the
same header; the reader tells the two apart from the data (see ``python_time_scale``). NFStream
writes milliseconds (``bidirectional_duration_ms``), converted here to microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# Dialects, i.e. header layouts of one producer or dataset release.
CIC2017 = "cicids2017"  # CICFlowMeter-V3 as published in CIC-IDS2017 (MachineLearningCVE / GLF)
CIC2018 = "cse-cic-ids2018"  # CICFlowMeter-V4 abbreviated names (CSE-CIC-IDS2018, lab output)
JAVA_MASTER = "cicflowmeter-java"  # the current Java CICFlowMeter header
PYTHON_CFM = "cicflowmeter-python"  # the Python `cicflowmeter` package, snake_case
FLOWIDS = "flowids"  # flowids' own canonical names, as in the test flows of a run record
CIC_DDOS2019 = "cic-ddos2019"  # CICFlowMeter-V3 names as CIC-IDS2017, plus three columns
NFSTREAM = "nfstream"  # NFStream's own flow columns (milliseconds)

# Dialects whose spellings are the columns of _FEATURE_TABLE, in its order.
_TABLE_DIALECTS = (CIC2017, CIC2018, JAVA_MASTER, PYTHON_CFM, FLOWIDS)
DIALECTS = (*_TABLE_DIALECTS, CIC_DDOS2019, NFSTREAM)

# CIC-DDoS2019 writes the CIC-IDS2017 names plus a pandas index ('Unnamed: 0') and two columns
# of its own; they mark the dialect and are ignored without a warning.
_DDOS2019_EXTRA = ("Unnamed: 0", "SimillarHTTP", "Inbound")

# canonical name, then its spelling in CIC2017, CIC2018, JAVA_MASTER, PYTHON_CFM ("" if absent).
_FEATURE_TABLE: tuple[tuple[str, str, str, str, str], ...] = (
    ("flow_duration_us", "Flow Duration", "Flow Duration", "Flow Duration", "flow_duration"),
    ("total_fwd_packets", "Total Fwd Packets", "Tot Fwd Pkts", "Total Fwd Packet", "tot_fwd_pkts"),
    (
        "total_bwd_packets",
        "Total Backward Packets",
        "Tot Bwd Pkts",
        "Total Bwd packets",
        "tot_bwd_pkts",
    ),
    (
        "total_fwd_bytes",
        "Total Length of Fwd Packets",
        "TotLen Fwd Pkts",
        "Total Length of Fwd Packet",
        "totlen_fwd_pkts",
    ),
    (
        "total_bwd_bytes",
        "Total Length of Bwd Packets",
        "TotLen Bwd Pkts",
        "Total Length of Bwd Packet",
        "totlen_bwd_pkts",
    ),
    (
        "fwd_packet_length_max_bytes",
        "Fwd Packet Length Max",
        "Fwd Pkt Len Max",
        "",
        "fwd_pkt_len_max",
    ),
    (
        "fwd_packet_length_min_bytes",
        "Fwd Packet Length Min",
        "Fwd Pkt Len Min",
        "",
        "fwd_pkt_len_min",
    ),
    (
        "fwd_packet_length_mean_bytes",
        "Fwd Packet Length Mean",
        "Fwd Pkt Len Mean",
        "",
        "fwd_pkt_len_mean",
    ),
    (
        "fwd_packet_length_std_bytes",
        "Fwd Packet Length Std",
        "Fwd Pkt Len Std",
        "",
        "fwd_pkt_len_std",
    ),
    (
        "bwd_packet_length_max_bytes",
        "Bwd Packet Length Max",
        "Bwd Pkt Len Max",
        "",
        "bwd_pkt_len_max",
    ),
    (
        "bwd_packet_length_min_bytes",
        "Bwd Packet Length Min",
        "Bwd Pkt Len Min",
        "",
        "bwd_pkt_len_min",
    ),
    (
        "bwd_packet_length_mean_bytes",
        "Bwd Packet Length Mean",
        "Bwd Pkt Len Mean",
        "",
        "bwd_pkt_len_mean",
    ),
    (
        "bwd_packet_length_std_bytes",
        "Bwd Packet Length Std",
        "Bwd Pkt Len Std",
        "",
        "bwd_pkt_len_std",
    ),
    ("flow_bytes_per_s", "Flow Bytes/s", "Flow Byts/s", "", "flow_byts_s"),
    ("flow_packets_per_s", "Flow Packets/s", "Flow Pkts/s", "", "flow_pkts_s"),
    ("flow_iat_mean_us", "Flow IAT Mean", "", "", "flow_iat_mean"),
    ("flow_iat_std_us", "Flow IAT Std", "", "", "flow_iat_std"),
    ("flow_iat_max_us", "Flow IAT Max", "", "", "flow_iat_max"),
    ("flow_iat_min_us", "Flow IAT Min", "", "", "flow_iat_min"),
    ("fwd_iat_total_us", "Fwd IAT Total", "Fwd IAT Tot", "", "fwd_iat_tot"),
    ("fwd_iat_mean_us", "Fwd IAT Mean", "", "", "fwd_iat_mean"),
    ("fwd_iat_std_us", "Fwd IAT Std", "", "", "fwd_iat_std"),
    ("fwd_iat_max_us", "Fwd IAT Max", "", "", "fwd_iat_max"),
    ("fwd_iat_min_us", "Fwd IAT Min", "", "", "fwd_iat_min"),
    ("bwd_iat_total_us", "Bwd IAT Total", "Bwd IAT Tot", "", "bwd_iat_tot"),
    ("bwd_iat_mean_us", "Bwd IAT Mean", "", "", "bwd_iat_mean"),
    ("bwd_iat_std_us", "Bwd IAT Std", "", "", "bwd_iat_std"),
    ("bwd_iat_max_us", "Bwd IAT Max", "", "", "bwd_iat_max"),
    ("bwd_iat_min_us", "Bwd IAT Min", "", "", "bwd_iat_min"),
    ("fwd_psh_flags", "Fwd PSH Flags", "", "", "fwd_psh_flags"),
    ("bwd_psh_flags", "Bwd PSH Flags", "", "", "bwd_psh_flags"),
    ("fwd_urg_flags", "Fwd URG Flags", "", "", "fwd_urg_flags"),
    ("bwd_urg_flags", "Bwd URG Flags", "", "", "bwd_urg_flags"),
    ("fwd_header_length_bytes", "Fwd Header Length", "Fwd Header Len", "", "fwd_header_len"),
    ("bwd_header_length_bytes", "Bwd Header Length", "Bwd Header Len", "", "bwd_header_len"),
    ("fwd_packets_per_s", "Fwd Packets/s", "Fwd Pkts/s", "", "fwd_pkts_s"),
    ("bwd_packets_per_s", "Bwd Packets/s", "Bwd Pkts/s", "", "bwd_pkts_s"),
    (
        "packet_length_min_bytes",
        "Min Packet Length",
        "Pkt Len Min",
        "Packet Length Min",
        "pkt_len_min",
    ),
    (
        "packet_length_max_bytes",
        "Max Packet Length",
        "Pkt Len Max",
        "Packet Length Max",
        "pkt_len_max",
    ),
    ("packet_length_mean_bytes", "Packet Length Mean", "Pkt Len Mean", "", "pkt_len_mean"),
    ("packet_length_std_bytes", "Packet Length Std", "Pkt Len Std", "", "pkt_len_std"),
    ("packet_length_variance_bytes2", "Packet Length Variance", "Pkt Len Var", "", "pkt_len_var"),
    ("fin_flag_count", "FIN Flag Count", "FIN Flag Cnt", "", "fin_flag_cnt"),
    ("syn_flag_count", "SYN Flag Count", "SYN Flag Cnt", "", "syn_flag_cnt"),
    ("rst_flag_count", "RST Flag Count", "RST Flag Cnt", "", "rst_flag_cnt"),
    ("psh_flag_count", "PSH Flag Count", "PSH Flag Cnt", "", "psh_flag_cnt"),
    ("ack_flag_count", "ACK Flag Count", "ACK Flag Cnt", "", "ack_flag_cnt"),
    ("urg_flag_count", "URG Flag Count", "URG Flag Cnt", "", "urg_flag_cnt"),
    # CIC-IDS2017 misspells CWR as 'CWE'; the Java tool later fixed the name.
    ("cwr_flag_count", "CWE Flag Count", "CWE Flag Count", "CWR Flag Count", "cwr_flag_count"),
    ("ece_flag_count", "ECE Flag Count", "ECE Flag Cnt", "", "ece_flag_cnt"),
    ("down_up_ratio", "Down/Up Ratio", "", "", "down_up_ratio"),
    ("average_packet_size_bytes", "Average Packet Size", "Pkt Size Avg", "", "pkt_size_avg"),
    (
        "fwd_segment_size_avg_bytes",
        "Avg Fwd Segment Size",
        "Fwd Seg Size Avg",
        "Fwd Segment Size Avg",
        "fwd_seg_size_avg",
    ),
    (
        "bwd_segment_size_avg_bytes",
        "Avg Bwd Segment Size",
        "Bwd Seg Size Avg",
        "Bwd Segment Size Avg",
        "bwd_seg_size_avg",
    ),
    (
        "fwd_bulk_bytes_avg",
        "Fwd Avg Bytes/Bulk",
        "Fwd Byts/b Avg",
        "Fwd Bytes/Bulk Avg",
        "fwd_byts_b_avg",
    ),
    (
        "fwd_bulk_packets_avg",
        "Fwd Avg Packets/Bulk",
        "Fwd Pkts/b Avg",
        "Fwd Packet/Bulk Avg",
        "fwd_pkts_b_avg",
    ),
    (
        "fwd_bulk_rate_avg_bytes_per_s",
        "Fwd Avg Bulk Rate",
        "Fwd Blk Rate Avg",
        "Fwd Bulk Rate Avg",
        "fwd_blk_rate_avg",
    ),
    (
        "bwd_bulk_bytes_avg",
        "Bwd Avg Bytes/Bulk",
        "Bwd Byts/b Avg",
        "Bwd Bytes/Bulk Avg",
        "bwd_byts_b_avg",
    ),
    (
        "bwd_bulk_packets_avg",
        "Bwd Avg Packets/Bulk",
        "Bwd Pkts/b Avg",
        "Bwd Packet/Bulk Avg",
        "bwd_pkts_b_avg",
    ),
    (
        "bwd_bulk_rate_avg_bytes_per_s",
        "Bwd Avg Bulk Rate",
        "Bwd Blk Rate Avg",
        "Bwd Bulk Rate Avg",
        "bwd_blk_rate_avg",
    ),
    ("subflow_fwd_packets", "Subflow Fwd Packets", "Subflow Fwd Pkts", "", "subflow_fwd_pkts"),
    ("subflow_fwd_bytes", "Subflow Fwd Bytes", "Subflow Fwd Byts", "", "subflow_fwd_byts"),
    ("subflow_bwd_packets", "Subflow Bwd Packets", "Subflow Bwd Pkts", "", "subflow_bwd_pkts"),
    ("subflow_bwd_bytes", "Subflow Bwd Bytes", "Subflow Bwd Byts", "", "subflow_bwd_byts"),
    (
        "init_fwd_window_bytes",
        "Init_Win_bytes_forward",
        "Init Fwd Win Byts",
        "FWD Init Win Bytes",
        "init_fwd_win_byts",
    ),
    (
        "init_bwd_window_bytes",
        "Init_Win_bytes_backward",
        "Init Bwd Win Byts",
        "Bwd Init Win Bytes",
        "init_bwd_win_byts",
    ),
    ("fwd_act_data_packets", "act_data_pkt_fwd", "Fwd Act Data Pkts", "", "fwd_act_data_pkts"),
    (
        "fwd_segment_size_min_bytes",
        "min_seg_size_forward",
        "Fwd Seg Size Min",
        "",
        "fwd_seg_size_min",
    ),
    ("active_mean_us", "Active Mean", "", "", "active_mean"),
    ("active_std_us", "Active Std", "", "", "active_std"),
    ("active_max_us", "Active Max", "", "", "active_max"),
    ("active_min_us", "Active Min", "", "", "active_min"),
    ("idle_mean_us", "Idle Mean", "", "", "idle_mean"),
    ("idle_std_us", "Idle Std", "", "", "idle_std"),
    ("idle_max_us", "Idle Max", "", "", "idle_max"),
    ("idle_min_us", "Idle Min", "", "", "idle_min"),
)

# NFStream columns a canonical feature can be derived from, with the factor to its unit.
# Only counts and times carry over: NFStream measures packet sizes at the IP level (headers
# included) where CICFlowMeter measures payloads, so its byte and size columns do not map.
_NFSTREAM_TABLE: tuple[tuple[str, str, float], ...] = (
    ("flow_duration_us", "bidirectional_duration_ms", 1000.0),
    ("total_fwd_packets", "src2dst_packets", 1.0),
    ("total_bwd_packets", "dst2src_packets", 1.0),
    ("flow_iat_mean_us", "bidirectional_mean_piat_ms", 1000.0),
    ("flow_iat_std_us", "bidirectional_stddev_piat_ms", 1000.0),
    ("flow_iat_max_us", "bidirectional_max_piat_ms", 1000.0),
    ("flow_iat_min_us", "bidirectional_min_piat_ms", 1000.0),
    ("fwd_iat_mean_us", "src2dst_mean_piat_ms", 1000.0),
    ("fwd_iat_std_us", "src2dst_stddev_piat_ms", 1000.0),
    ("fwd_iat_max_us", "src2dst_max_piat_ms", 1000.0),
    ("fwd_iat_min_us", "src2dst_min_piat_ms", 1000.0),
    ("bwd_iat_mean_us", "dst2src_mean_piat_ms", 1000.0),
    ("bwd_iat_std_us", "dst2src_stddev_piat_ms", 1000.0),
    ("bwd_iat_max_us", "dst2src_max_piat_ms", 1000.0),
    ("bwd_iat_min_us", "dst2src_min_piat_ms", 1000.0),
    ("fwd_psh_flags", "src2dst_psh_packets", 1.0),
    ("bwd_psh_flags", "dst2src_psh_packets", 1.0),
    ("fwd_urg_flags", "src2dst_urg_packets", 1.0),
    ("bwd_urg_flags", "dst2src_urg_packets", 1.0),
    ("fin_flag_count", "bidirectional_fin_packets", 1.0),
    ("syn_flag_count", "bidirectional_syn_packets", 1.0),
    ("rst_flag_count", "bidirectional_rst_packets", 1.0),
    ("psh_flag_count", "bidirectional_psh_packets", 1.0),
    ("ack_flag_count", "bidirectional_ack_packets", 1.0),
    ("urg_flag_count", "bidirectional_urg_packets", 1.0),
    ("cwr_flag_count", "bidirectional_cwr_packets", 1.0),
    ("ece_flag_count", "bidirectional_ece_packets", 1.0),
)
# Limitation: NFStream durations and inter-arrival times are whole milliseconds, so values
# under 1 ms read as 0 us.

# Older Python cicflowmeter releases spell CWR as CIC-IDS2017 does, in snake case.
_EXTRA_SPELLINGS = (("cwr_flag_count", "cwe_flag_count"),)

# Identifier columns: kept for output and splitting, never used as features.
_IDENTIFIER_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flow_id", ("Flow ID", "flow_id")),
    ("src_ip", ("Source IP", "Src IP", "src_ip")),
    ("src_port", ("Source Port", "Src Port", "src_port")),
    ("dst_ip", ("Destination IP", "Dst IP", "dst_ip")),
    ("dst_port", ("Destination Port", "Dst Port", "dst_port")),
    ("protocol", ("Protocol", "protocol")),
    ("timestamp", ("Timestamp", "timestamp")),
    # Where a flow record came from, as written into a run's test flows.
    ("source_file", ()),
    ("source_row", ()),
)

LABEL = "label"
_LABEL_NAMES = ("Label", "label")

FEATURES: tuple[str, ...] = tuple(row[0] for row in _FEATURE_TABLE)
IDENTIFIERS: tuple[str, ...] = tuple(row[0] for row in _IDENTIFIER_TABLE)


def normalize_name(name: str) -> str:
    """Return the lookup key of a header name: trimmed, lower case, single spaces.

    ``' Fwd Header Length'`` and ``'fwd header  length'`` give the same key; the key of a
    pandas-mangled duplicate (``'Fwd Header Length.1'``) keeps its ``.1`` suffix so that the
    reader can tell a duplicate from the original.
    """
    return re.sub(r"\s+", " ", str(name).strip()).lower()


def _build_lookup() -> tuple[dict[str, str], dict[str, set[str]]]:
    lookup: dict[str, str] = {}
    by_dialect: dict[str, set[str]] = {dialect: set() for dialect in DIALECTS}
    for canonical, *spellings in _FEATURE_TABLE:
        spellings.append(canonical)
        for dialect, spelling in zip(_TABLE_DIALECTS, spellings, strict=True):
            # An empty cell means the dialect spells it as CIC-IDS2017 does.
            key = normalize_name(spelling or spellings[0])
            lookup[key] = canonical
            by_dialect[dialect].add(key)
    by_dialect[CIC_DDOS2019] = set(by_dialect[CIC2017])
    for canonical, spelling, _ in _NFSTREAM_TABLE:
        lookup[spelling] = canonical
        by_dialect[NFSTREAM].add(spelling)
    for canonical, spelling in _EXTRA_SPELLINGS:
        lookup[spelling] = canonical
    for canonical, spellings in _IDENTIFIER_TABLE:
        for spelling in (*spellings, canonical):
            lookup[normalize_name(spelling)] = canonical
    for spelling in _LABEL_NAMES:
        lookup[normalize_name(spelling)] = LABEL
    return lookup, by_dialect


_LOOKUP, _DIALECT_KEYS = _build_lookup()


@dataclass(frozen=True)
class HeaderMapping:
    """How the columns of one file map onto the canonical schema.

    Attributes
    ----------
    dialect : str
        The dialect whose spellings match the header best.
    columns : list of (int, str)
        ``(position, canonical name)`` for every recognised column, in file order. A
        canonical name can appear twice (a duplicated header such as 'Fwd Header Length').
    unknown : list of str
        Header names that belong to no known column; they are ignored.
    ignored : list of str
        Header names that the dialect is known to add beside the schema (CIC-DDoS2019's
        'Unnamed: 0', 'SimillarHTTP', 'Inbound'); ignored without a warning.
    scales : dict of int to float
        Factor that brings the values of the column at a position to the canonical unit,
        for columns whose factor is not 1 (NFStream milliseconds).
    """

    dialect: str
    columns: tuple[tuple[int, str], ...]
    unknown: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    scales: dict[int, float] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Canonical features present, in canonical order, each once."""
        present = {name for _, name in self.columns}
        return [name for name in FEATURES if name in present]

    @property
    def identifiers(self) -> list[str]:
        """Identifier columns present, in canonical order."""
        present = {name for _, name in self.columns}
        return [name for name in IDENTIFIERS if name in present]

    @property
    def has_label(self) -> bool:
        return any(name == LABEL for _, name in self.columns)


def map_header(names: list[str]) -> HeaderMapping:
    """Map a file's header names onto canonical columns and recognise its dialect.

    Parameters
    ----------
    names : list of str
        The header cells as they stand in the file (leading spaces and all).

    Returns
    -------
    HeaderMapping

    Notes
    -----
    A name such as 'Fwd Header Length.1' (how pandas re-saves a duplicated column) maps to the
    same canonical feature as 'Fwd Header Length'; the reader then checks that both copies agree.
    """
    columns: list[tuple[int, str]] = []
    unknown: list[str] = []
    keys: list[str] = []
    for position, name in enumerate(names):
        key = normalize_name(name)
        canonical = _LOOKUP.get(key)
        if canonical is None:
            base = re.sub(r"\.\d+$", "", key)
            canonical = _LOOKUP.get(base) if base != key else None
            key = base
        if canonical is None:
            unknown.append(str(name))
            continue
        columns.append((position, canonical))
        keys.append(key)

    scores = {dialect: len(_DIALECT_KEYS[dialect].intersection(keys)) for dialect in DIALECTS}
    scores[CIC_DDOS2019] = 0
    dialect = max(DIALECTS, key=lambda d: scores[d])

    extra = {normalize_name(name) for name in _DDOS2019_EXTRA}
    ignored = tuple(name for name in unknown if normalize_name(name) in extra)
    # 'SimillarHTTP' or 'Inbound' beside CIC-IDS2017 names: a CIC-DDoS2019 file.
    if dialect == CIC2017 and extra.difference({"unnamed: 0"}) & set(map(normalize_name, ignored)):
        dialect = CIC_DDOS2019
    if dialect != CIC_DDOS2019:
        ignored = ()
    if dialect == NFSTREAM:
        # NFStream's many other columns (MACs, VLAN, application names) have no counterpart.
        ignored = tuple(unknown)
    unknown = [name for name in unknown if name not in ignored]

    scales: dict[int, float] = {}
    if dialect == NFSTREAM:
        factors = {spelling: factor for _, spelling, factor in _NFSTREAM_TABLE}
        for position, name in enumerate(names):
            factor = factors.get(normalize_name(name), 1.0)
            if factor != 1.0:
                scales[position] = factor
    return HeaderMapping(
        dialect=dialect,
        columns=tuple(columns),
        unknown=tuple(unknown),
        ignored=ignored,
        scales=scales,
    )


# Ratio of flow_byts_s * flow_duration / (totlen_fwd_pkts + totlen_bwd_pkts): about 1 when
# durations are in seconds, about 1e6 when in microseconds; the geometric middle decides.
_SECONDS_RATIO_LIMIT = 1e3


def python_time_scale(
    duration: np.ndarray, bytes_per_s: np.ndarray, total_bytes: np.ndarray
) -> float | None:
    """Factor that brings a Python cicflowmeter file's times to microseconds: 1 or 1e6.

    The Python ``cicflowmeter`` package writes flow_duration, the inter-arrival times and
    active/idle times in microseconds in its 0.1 releases and in seconds from 0.2 on, under
    one header. Its rate is always bytes per second, so ``bytes_per_s * duration / bytes``
    is about 1 for seconds and about 1e6 for microseconds.

    Parameters
    ----------
    duration, bytes_per_s, total_bytes : ndarray of shape (n_flows,)
        flow_duration, flow_byts_s, and totlen_fwd_pkts + totlen_bwd_pkts as written.

    Returns
    -------
    float or None
        1e6 for seconds, 1.0 for microseconds, None when no flow has a duration, bytes and
        a finite rate to decide from.
    """
    usable = (duration > 0) & (total_bytes > 0) & np.isfinite(bytes_per_s) & (bytes_per_s > 0)
    if not usable.any():
        return None
    ratio = np.median(
        bytes_per_s[usable].astype(np.float64)
        * duration[usable].astype(np.float64)
        / total_bytes[usable].astype(np.float64)
    )
    return 1e6 if ratio < _SECONDS_RATIO_LIMIT else 1.0
