# SPDX-License-Identifier: Apache-2.0
"""CICFlowMeter features of one flow, from the packets NFStream assigns to it.

An NFStream plugin logs, per packet, what NFStream does not keep (microsecond time, payload
and header bytes, TCP flags and window); when NFStream expires the flow, :func:`flow_row`
turns that log into the 76 CIC-IDS2017 features with CICFlowMeter's definitions, except
where the Java tool has a known bug (see docs/parity.md).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter

from nfstream import NFPlugin

from flowids.data.schema import _FEATURE_TABLE, FEATURES

# Identifiers of a flow row, then the features in canonical order.
ROW_IDENTIFIERS = ("flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "start_us")
ROW_COLUMNS = ROW_IDENTIFIERS + FEATURES
N_IDENTIFIERS = len(ROW_IDENTIFIERS)

# CIC-IDS2017 GeneratedLabelledFlows names of the identifiers and features, in row order.
CIC_IDENTIFIER_NAMES = (
    "Flow ID",
    "Source IP",
    "Source Port",
    "Destination IP",
    "Destination Port",
    "Protocol",
    "Timestamp",
)
CIC_FEATURE_NAMES = tuple(row[1] for row in _FEATURE_TABLE)
CIC_COLUMNS = CIC_IDENTIFIER_NAMES + CIC_FEATURE_NAMES

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = (1 << bit for bit in range(8))
_FLAG_ORDER = (FIN, SYN, RST, PSH, ACK, URG, CWR, ECE)  # CIC column order
_BACKWARD = 256  # direction bit above the TCP flag byte in a packet code

# CICFlowMeter's gaps: a bulk needs packets less than 1 s apart; activity ends after 5 s.
BULK_GAP_US = 1_000_000
BULK_MIN_PACKETS = 4
DEFAULT_ACTIVITY_TIMEOUT_US = 5_000_000


class PacketLog:
    """What one flow's packets carried, in arrival order.

    Attributes
    ----------
    times : array of int64, shape (n_packets,)
        Capture time of each packet, us since the epoch.
    sizes : array of int64, shape (n_packets,)
        TCP or UDP payload bytes (0 for other protocols, as CICFlowMeter counts them).
    codes : array of uint16, shape (n_packets,)
        TCP flag byte, plus 256 for a backward packet (server to client).
    """

    __slots__ = (
        "times",
        "sizes",
        "codes",
        "header_fwd",
        "header_bwd",
        "min_header_fwd",
        "window_fwd",
        "window_bwd",
        "fin_ended",
    )

    def __init__(self) -> None:
        self.times = array("q")
        self.sizes = array("q")
        self.codes = array("H")
        self.header_fwd = 0
        self.header_bwd = 0
        self.min_header_fwd = -1
        self.window_fwd = -1
        self.window_bwd = -1
        self.fin_ended = False


class CicFeaturePlugin(NFPlugin):
    """NFStream plugin that logs each packet and computes CIC features when a flow expires.

    The metering loop sets :attr:`now_us` to the current packet's capture time before
    handing the packet to NFStream, whose own clock counts whole milliseconds.

    Parameters
    ----------
    end_on_fin : bool
        End a TCP flow at the first FIN after its first packet, as CICFlowMeter does.
    activity_timeout_us : int
        A gap longer than this ends an active period (CICFlowMeter: 5 s).
    """

    def __init__(self, end_on_fin: bool = True, activity_timeout_us: int = 5_000_000) -> None:
        super().__init__()
        self.end_on_fin = end_on_fin
        self.activity_timeout_us = activity_timeout_us
        self.now_us = 0

    def on_init(self, packet, flow) -> None:
        log = PacketLog()
        flow.udps.log = log
        self._add(log, packet, 0)

    def on_update(self, packet, flow) -> None:
        flags = self._add(flow.udps.log, packet, packet.direction)
        if flags & FIN and self.end_on_fin:
            flow.udps.log.fin_ended = True
            flow.expiration_id = -1

    def on_expire(self, flow) -> None:
        log = flow.udps.log
        flow.udps.row = flow_row(
            flow_identifiers(flow, log.times[0]), log, self.activity_timeout_us
        )
        flow.udps.log = None

    def _add(self, log: PacketLog, packet, direction: int) -> int:
        protocol = packet.protocol
        flags = 0
        if protocol == 6 or protocol == 17:
            payload = packet.payload_size
            header = packet.transport_size - payload
        else:
            payload = header = 0
        if protocol == 6:
            ip = packet.ip_packet
            at = packet.ip_size - packet.transport_size
            if len(ip) >= at + 16:
                flags = ip[at + 13]
                window = (ip[at + 14] << 8) | ip[at + 15]
                if direction:
                    if log.window_bwd < 0:
                        log.window_bwd = window
                elif log.window_fwd < 0:
                    log.window_fwd = window
        log.times.append(self.now_us)
        log.sizes.append(payload)
        if direction:
            log.codes.append(flags | _BACKWARD)
            log.header_bwd += header
        else:
            log.codes.append(flags)
            log.header_fwd += header
            if log.min_header_fwd < 0 or header < log.min_header_fwd:
                log.min_header_fwd = header
        return flags


def flow_identifiers(flow, start_us: int) -> tuple:
    """Flow ID, addresses, ports, protocol and start time (us) of an NFStream flow."""
    flow_id = f"{flow.src_ip}-{flow.dst_ip}-{flow.src_port}-{flow.dst_port}-{flow.protocol}"
    return (
        flow_id,
        flow.src_ip,
        flow.src_port,
        flow.dst_ip,
        flow.dst_port,
        flow.protocol,
        start_us,
    )


def _summary(values) -> tuple[float, float, float, float, float]:
    """(total, mean, sample std, max, min) of a sequence; zeros when it is empty.

    The standard deviation divides by n - 1, as Apache Commons Math (used by CICFlowMeter)
    does, and is 0 for a single value.
    """
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    total = math.fsum(values)
    mean = total / n
    if n == 1:
        return total, mean, 0.0, float(values[0]), float(values[0])
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return total, mean, math.sqrt(variance), float(max(values)), float(min(values))


def _gaps(times) -> list[int]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def flow_row(identifiers: tuple, log: PacketLog, activity_timeout_us: int) -> tuple:
    """The identifiers and 76 CIC features of one flow, in :data:`ROW_COLUMNS` order.

    Parameters
    ----------
    identifiers : tuple
        :func:`flow_identifiers` of the flow.
    log : PacketLog
        Its packets, at least one.
    activity_timeout_us : int
        Gap (us) that ends an active period.

    Returns
    -------
    tuple
        Identifiers, then features; durations and inter-arrival times in us, rates per s.

    Notes
    -----
    Definitions follow the Java CICFlowMeter, including two of its habits that CIC-IDS2017
    shows too: the first packet counts twice in the packet-length statistics (so
    'Average Packet Size' is their mean times (n + 1) / n), and 'act_data_pkt_fwd' skips the
    first packet. A single-packet flow has duration 0, so 'Flow Bytes/s' and
    'Flow Packets/s' are Infinity (or NaN for 0 bytes), as in CIC-IDS2017.
    """
    if len(log.times) == 1:
        return identifiers + _single_packet_features(log)
    return identifiers + _features(log, activity_timeout_us)


def _features(log: PacketLog, activity_timeout_us: int) -> tuple:
    """The 76 features of a flow of any length (see :func:`flow_row`)."""
    times, sizes, codes = log.times, log.sizes, log.codes
    n = len(times)
    duration = times[-1] - times[0]
    backward = [code >= _BACKWARD for code in codes]
    fwd_sizes = [s for s, b in zip(sizes, backward, strict=True) if not b]
    bwd_sizes = [s for s, b in zip(sizes, backward, strict=True) if b]
    fwd_times = [t for t, b in zip(times, backward, strict=True) if not b]
    bwd_times = [t for t, b in zip(times, backward, strict=True) if b]
    n_fwd, n_bwd = len(fwd_sizes), n - len(fwd_sizes)

    fwd_total, fwd_mean, fwd_std, fwd_max, fwd_min = _summary(fwd_sizes)
    bwd_total, bwd_mean, bwd_std, bwd_max, bwd_min = _summary(bwd_sizes)
    bytes_total = fwd_total + bwd_total
    seconds = duration / 1e6
    if duration > 0:
        flow_bytes_rate = bytes_total / seconds
        flow_packets_rate = n / seconds
        fwd_rate, bwd_rate = n_fwd / seconds, n_bwd / seconds
    else:
        flow_bytes_rate = math.inf if bytes_total else math.nan
        flow_packets_rate = math.inf
        fwd_rate = bwd_rate = 0.0

    _, iat_mean, iat_std, iat_max, iat_min = _summary(_gaps(times))
    fwd_iat = _summary(_gaps(fwd_times))
    bwd_iat = _summary(_gaps(bwd_times))

    # The first packet counts twice in the length statistics (CICFlowMeter and CIC-IDS2017).
    lengths = [*sizes, sizes[0]]
    len_total, len_mean, len_std, len_max, len_min = _summary(lengths)

    active, idle = _active_idle(times, activity_timeout_us)
    bulk = _bulk(times, sizes, backward) if bytes_total else (0,) * 6
    act_data_fwd = sum(1 for s in fwd_sizes[1:] if s >= 1) if not backward[0] else 0

    return (
        duration,
        n_fwd,
        n_bwd,
        fwd_total,
        bwd_total,
        fwd_max,
        fwd_min,
        fwd_mean,
        fwd_std,
        bwd_max,
        bwd_min,
        bwd_mean,
        bwd_std,
        flow_bytes_rate,
        flow_packets_rate,
        iat_mean,
        iat_std,
        iat_max,
        iat_min,
        *fwd_iat,
        *bwd_iat,
        # CICFlowMeter counts PSH and URG on a flow's first packet only (always forward),
        # and CIC-IDS2017 shows the same: 0 or 1 forward, always 0 backward.
        1 if codes[0] & PSH else 0,
        0,
        1 if codes[0] & URG else 0,
        0,
        log.header_fwd,
        log.header_bwd,
        fwd_rate,
        bwd_rate,
        len_min,
        len_max,
        len_mean,
        len_std,
        len_std * len_std,
        *_flag_counts(codes),
        float(n_bwd // n_fwd) if n_fwd else 0.0,
        len_total / n,
        fwd_total / n_fwd if n_fwd else 0.0,
        bwd_total / n_bwd if n_bwd else 0.0,
        *bulk,
        # Subflows: CIC-IDS2017 writes the flow totals (one subflow per flow).
        n_fwd,
        fwd_total,
        n_bwd,
        bwd_total,
        log.window_fwd,
        log.window_bwd,
        act_data_fwd,
        max(log.min_header_fwd, 0),
        *active,
        *idle,
    )


def _single_packet_features(log: PacketLog) -> tuple:
    """Features of a one-packet flow (a forward packet): the values :func:`_features` gives
    for it, without its general-case work (SYN floods are mostly such flows)."""
    size = log.sizes[0]
    code = log.codes[0]
    flag_counts = tuple(1 if code & flag else 0 for flag in _FLAG_ORDER)
    return (
        (0, 1, 0, size, 0, size, size, size, 0)
        + _ZEROS_4
        + (math.inf if size else math.nan, math.inf)
        + _ZEROS_14
        + (1 if code & PSH else 0, 0, 1 if code & URG else 0, 0, log.header_fwd, 0, 0, 0)
        + (size, size, size, 0, 0)
        + flag_counts
        + (0, 2 * size, size, 0)
        + _ZEROS_6
        + (1, size, 0, 0, log.window_fwd, log.window_bwd, 0, max(log.min_header_fwd, 0))
        + _ZEROS_8
    )


# Integers where the value is a whole number: they write shorter and faster than floats.
_ZEROS_4 = (0,) * 4
_ZEROS_6 = (0,) * 6
_ZEROS_8 = (0,) * 8
_ZEROS_14 = (0,) * 14


def _flag_counts(codes) -> list[int]:
    """Packets carrying each TCP flag, both directions, in CIC column order."""
    counts = [0] * 8
    for code, many in Counter(codes).items():
        if code & 0xFF:
            for i, flag in enumerate(_FLAG_ORDER):
                if code & flag:
                    counts[i] += many
    return counts


def _active_idle(times, timeout_us: int) -> tuple[tuple, tuple]:
    """(mean, std, max, min) of active and of idle periods, in us.

    An idle period is a gap between packets longer than ``timeout_us``; the active period
    before it counts only if it lasted more than 0 us. As in CICFlowMeter, the active period
    that is still open when the flow ends is not counted.
    """
    start = end = times[0]
    active: list[int] = []
    idle: list[int] = []
    for t in times[1:]:
        if t - end > timeout_us:
            if end - start > 0:
                active.append(end - start)
            idle.append(t - end)
            start = t
        end = t
    _, a_mean, a_std, a_max, a_min = _summary(active)
    _, i_mean, i_std, i_max, i_min = _summary(idle)
    return (a_mean, a_std, a_max, a_min), (i_mean, i_std, i_max, i_min)


def _bulk(times, sizes, backward) -> tuple:
    """CICFlowMeter bulk features per direction: avg bytes, avg packets, avg rate (bytes/s).

    A bulk is a run of at least 4 payload-carrying packets in one direction, each less than
    1 s after the previous one, with no bulk packet of the other direction in between.
    """
    # Per direction: start, last, run packets, run bytes, bulks, packets, bytes, duration.
    state = [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
    for t, size, is_bwd in zip(times, sizes, backward, strict=True):
        me, other = state[is_bwd], state[not is_bwd]
        if other[1] > me[0]:
            me[0] = 0
        if size <= 0:
            continue
        if me[0] == 0 or t - me[1] > BULK_GAP_US:
            me[0], me[1], me[2], me[3] = t, t, 1, size
            continue
        me[2] += 1
        me[3] += size
        if me[2] == BULK_MIN_PACKETS:
            me[4] += 1
            me[5] += me[2]
            me[6] += me[3]
            me[7] += t - me[0]
        elif me[2] > BULK_MIN_PACKETS:
            me[5] += 1
            me[6] += size
            me[7] += t - me[1]
        me[1] = t
    result = []
    for bulks, packets, size_total, duration in (s[4:] for s in state):
        result.append(size_total // bulks if bulks else 0)
        result.append(packets // bulks if bulks else 0)
        result.append(int(size_total / (duration / 1e6)) if duration else 0)
    return tuple(result)
