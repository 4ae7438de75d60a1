# SPDX-License-Identifier: Apache-2.0
"""The canonical flow-record schema: feature names with units, identifiers, and header dialects.

Every producer spells the same CICFlowMeter features differently ('Total Fwd Packets',
'Tot Fwd Pkts', 'tot_fwd_pkts'). This module maps each spelling to one canonical snake_case
name whose suffix gives the unit (``_us`` microseconds, ``_bytes``, ``_per_s``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Dialects, i.e. header layouts of one producer or dataset release.
CIC2017 = "cicids2017"  # CICFlowMeter-V3 as published in CIC-IDS2017 (MachineLearningCVE / GLF)
CIC2018 = "cse-cic-ids2018"  # CICFlowMeter-V4 abbreviated names (CSE-CIC-IDS2018, lab output)
JAVA_MASTER = "cicflowmeter-java"  # the current Java CICFlowMeter header
PYTHON_CFM = "cicflowmeter-python"  # the Python `cicflowmeter` package, snake_case
FLOWIDS = "flowids"  # flowids' own canonical names, as in the test flows of a run record

DIALECTS = (CIC2017, CIC2018, JAVA_MASTER, PYTHON_CFM, FLOWIDS)

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
        for dialect, spelling in zip(DIALECTS, spellings, strict=True):
            # An empty cell means the dialect spells it as CIC-IDS2017 does.
            key = normalize_name(spelling or spellings[0])
            lookup[key] = canonical
            by_dialect[dialect].add(key)
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
    """

    dialect: str
    columns: tuple[tuple[int, str], ...]
    unknown: tuple[str, ...]

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
    dialect = max(DIALECTS, key=lambda d: scores[d])
    return HeaderMapping(dialect=dialect, columns=tuple(columns), unknown=tuple(unknown))
