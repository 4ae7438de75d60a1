# SPDX-License-Identifier: Apache-2.0
"""Canonical attack labels across CIC datasets, their families, and the binary target.

Each dataset spells its labels its own way ('DoS Hulk' in CIC-IDS2017, 'DoS attacks-Hulk' in
CSE-CIC-IDS2018) and the web-attack dash survives re-saving in several broken forms. All of them
map to one canonical label here; benign is decided by the table, never by comparing a string with
'BENIGN'.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from flowids.errors import DataError

BENIGN = "BENIGN"

# canonical label -> (family, other spellings). Spellings are matched on a key made of their
# letters and digits only, so dash variants, case and spacing do not matter.
_LABEL_TABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    BENIGN: ("Benign", ("Benign", "Normal")),
    "DoS Hulk": ("DoS", ("DoS attacks-Hulk",)),
    "DoS GoldenEye": ("DoS", ("DoS attacks-GoldenEye",)),
    "DoS slowloris": ("DoS", ("DoS attacks-Slowloris",)),
    "DoS Slowhttptest": ("DoS", ("DoS attacks-SlowHTTPTest",)),
    "DoS": ("DoS", ()),
    "Heartbleed": ("Heartbleed", ()),
    "DDoS": ("DDoS", ()),
    "DDoS LOIC-HTTP": ("DDoS", ("DDoS attacks-LOIC-HTTP",)),
    "DDoS LOIC-UDP": ("DDoS", ("DDOS attack-LOIC-UDP", "DDoS attacks-LOIC-UDP")),
    "DDoS HOIC": ("DDoS", ("DDOS attack-HOIC", "DDoS attacks-HOIC")),
    "DrDoS_DNS": ("DDoS", ()),
    "DrDoS_LDAP": ("DDoS", ()),
    "DrDoS_MSSQL": ("DDoS", ()),
    "DrDoS_NetBIOS": ("DDoS", ()),
    "DrDoS_NTP": ("DDoS", ()),
    "DrDoS_SNMP": ("DDoS", ()),
    "DrDoS_SSDP": ("DDoS", ()),
    "DrDoS_UDP": ("DDoS", ()),
    "Syn": ("DDoS", ()),
    "TFTP": ("DDoS", ()),
    "UDP-lag": ("DDoS", ("UDPLag",)),
    "WebDDoS": ("DDoS", ()),
    # CIC-DDoS2019 exploitation-based attacks (not reflected), recorded on the testing day.
    "LDAP": ("DDoS", ()),
    "MSSQL": ("DDoS", ()),
    "NetBIOS": ("DDoS", ()),
    "UDP": ("DDoS", ()),
    "Portmap": ("DDoS", ()),
    "PortScan": ("PortScan", ()),
    "FTP-Patator": ("BruteForce", ("FTP-BruteForce",)),
    "SSH-Patator": ("BruteForce", ("SSH-Bruteforce",)),
    "BruteForce": ("BruteForce", ()),
    "Web Attack - Brute Force": ("WebAttack", ("Brute Force -Web",)),
    "Web Attack - XSS": ("WebAttack", ("Brute Force -XSS",)),
    "Web Attack - Sql Injection": ("WebAttack", ("SQL Injection",)),
    "WebAttack": ("WebAttack", ()),
    "Bot": ("Bot", ()),
    "Infiltration": ("Infiltration", ("Infilteration",)),
}

# Markers that mean "no ground truth" rather than a class (the Java CICFlowMeter writes
# "NeedManualLabel", lab captures "No Label").
_UNLABELLED = {"nolabel", "needmanuallabel", "unlabeled", "unlabelled", ""}

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(family for family, _ in _LABEL_TABLE.values()))


def _label_key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _build_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for canonical, (_, spellings) in _LABEL_TABLE.items():
        for spelling in (canonical, *spellings):
            lookup[_label_key(spelling)] = canonical
    return lookup


_LOOKUP = _build_lookup()


def canonical_label(raw: str) -> str | None:
    """Return the canonical spelling of a label, or None when it is unknown or absent.

    Parameters
    ----------
    raw : str
        A label as read from a file, possibly with a broken dash ('Web Attack \\x96 XSS',
        'Web Attack \\ufffd XSS'), other case or extra spaces.

    Returns
    -------
    str or None
        The canonical label, '' for "no label" markers ('No Label'), or None if unknown.
    """
    key = _label_key(raw)
    if key in _UNLABELLED:
        return ""
    return _LOOKUP.get(key)


def label_family(label: str) -> str:
    """Return the attack family of a label in any known spelling ('Benign' for BENIGN).

    Raises
    ------
    DataError
        If the label is unknown or a "no label" marker.
    """
    canonical = label if label in _LABEL_TABLE else canonical_label(label)
    if not canonical:
        raise DataError(
            f"label {label!r} has no attack family: it is "
            f"{'a no-label marker' if canonical == '' else 'not a known label'}; expected one "
            f"of {', '.join(_LABEL_TABLE)}"
        )
    return _LABEL_TABLE[canonical][0]


def is_attack(labels: np.ndarray) -> np.ndarray:
    """Return the binary target, 1 for attack and 0 for benign, of labels.

    Benign is decided by the label table (the 'Benign' family), never by comparing a string
    with 'BENIGN', so 'Benign' (CSE-CIC-IDS2018) is benign too.

    Parameters
    ----------
    labels : array-like of str, shape (n_flows,)
        Labels, canonical (as :func:`canonical_label` returns them) or in any spelling the
        table knows.

    Returns
    -------
    ndarray of int8, shape (n_flows,)

    Raises
    ------
    DataError
        If a label is unknown, missing (None) or a "no label" marker (''): such a flow has
        no ground truth, and calling it either benign or attack would be made up. Drop
        unlabelled flows first.
    """
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object).ravel())
    attack = np.zeros(len(uniques), dtype=np.int8)
    refused: list[str] = []
    for index, raw in enumerate(uniques):
        canonical = canonical_label(str(raw))
        if not canonical:
            refused.append(f"{raw!r} ({int((codes == index).sum())})")
            continue
        attack[index] = _LABEL_TABLE[canonical][0] != _LABEL_TABLE[BENIGN][0]
    missing = int((codes < 0).sum())
    if missing:
        refused.append(f"None ({missing})")
    if refused:
        raise DataError(
            f"cannot tell benign from attack for flows labelled {', '.join(refused)}: "
            "unknown, missing or 'no label' markers. Expected canonical labels such as "
            f"{BENIGN!r} or 'DoS Hulk'; drop unlabelled flows before making the binary target"
        )
    return attack[codes]


def known_labels() -> list[str]:
    """Every canonical label, in table order."""
    return list(_LABEL_TABLE)
