# SPDX-License-Identifier: Apache-2.0
"""Tests of the canonical label table and the binary target."""

from __future__ import annotations

import numpy as np
import pytest

from flowids.data.labels import (
    BENIGN,
    FAMILIES,
    canonical_label,
    is_attack,
    known_labels,
    label_family,
)
from flowids.data.readers import read_flows
from flowids.errors import DataError


def test_every_canonical_label_maps_to_itself():
    for label in known_labels():
        assert canonical_label(label) == label


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case BR-05a: the cp1252 en dash (0x96) as it decodes with replacement
        ("Web Attack \ufffd Brute Force", "Web Attack - Brute Force"),
        # the same byte mis-decoded as latin-1 (UTF-8 bytes C2 96), as in the Thursday files
        ("Web Attack \x96 XSS", "Web Attack - XSS"),
        ("Web Attack \u2013 Sql Injection", "Web Attack - Sql Injection"),
        ("Web Attack - Brute Force", "Web Attack - Brute Force"),
        ("Web Attack  Brute Force", "Web Attack - Brute Force"),
        (" BENIGN ", BENIGN),
        ("Benign", BENIGN),
        ("DoS attacks-Hulk", "DoS Hulk"),
        ("DoS attacks-Slowloris", "DoS slowloris"),
        ("DoS slowloris", "DoS slowloris"),
        ("DDOS attack-HOIC", "DDoS HOIC"),
        ("DDoS attacks-LOIC-HTTP", "DDoS LOIC-HTTP"),
        ("Infilteration", "Infiltration"),
        ("Brute Force -Web", "Web Attack - Brute Force"),
        ("Brute Force -XSS", "Web Attack - XSS"),
        ("SQL Injection", "Web Attack - Sql Injection"),
        ("SSH-Bruteforce", "SSH-Patator"),
        ("FTP-BruteForce", "FTP-Patator"),
    ],
)
def test_canonical_label_spellings(raw, expected):
    assert canonical_label(raw) == expected


@pytest.mark.parametrize("raw", ["No Label", "NeedManualLabel", "", "  "])
def test_no_label_markers_are_unlabelled_not_benign(raw):
    assert canonical_label(raw) == ""


@pytest.mark.parametrize("raw", ["Foo", "nan", "Attack", "DoS Hulk 2"])
def test_unknown_label_is_none(raw):
    assert canonical_label(raw) is None


def test_label_family():
    assert label_family(BENIGN) == "Benign"
    assert label_family("Benign") == "Benign"
    assert label_family("DoS attacks-Hulk") == "DoS"
    assert label_family("Web Attack \ufffd XSS") == "WebAttack"
    assert set(FAMILIES) >= {"Benign", "DoS", "DDoS", "PortScan", "WebAttack", "Bot"}
    with pytest.raises(DataError, match="'Foo' has no attack family: it is not a known label"):
        label_family("Foo")


def test_is_attack_by_table_not_by_string():
    labels = np.array(["BENIGN", "Benign", "Normal", "DoS Hulk", "PortScan", "Bot"], dtype=object)

    assert is_attack(labels).tolist() == [0, 0, 0, 1, 1, 1]
    assert is_attack(labels).dtype == np.int8
    assert is_attack(np.array([], dtype=object)).tolist() == []


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        (["BENIGN", "", ""], r"'' \(2\)"),
        (["BENIGN", "Foo"], r"'Foo' \(1\)"),
        (["DDoS", None], r"None \(1\)"),
    ],
)
def test_is_attack_refuses_flows_without_ground_truth(labels, shown):
    # case BR-06: unlabelled flows are never made into attacks (nor into benign flows)
    with pytest.raises(
        DataError, match=f"cannot tell benign from attack for flows labelled {shown}"
    ):
        is_attack(np.array(labels, dtype=object))


def test_rare_classes_keep_every_attack(cases_dir):
    # case BR-14: classes with 1-4 flows are read, and the binary target keeps each attack
    table = read_flows([cases_dir / "BR-14-rare-classes.csv"])

    assert (
        table.labels.tolist()
        == ["BENIGN"] * 5 + ["DDoS"] * 4 + ["Heartbleed"] + ["Infiltration"] * 2
    )
    assert dict(table.reports[0].labels) == {
        "BENIGN": 5,
        "DDoS": 4,
        "Heartbleed": 1,
        "Infiltration": 2,
    }
    assert is_attack(table.labels).tolist() == [0] * 5 + [1] * 7


def test_ids2018_label_spellings(cases_dir):
    # case BR-15: CSE-CIC-IDS2018 spellings map onto the canonical table
    table = read_flows([cases_dir / "BR-15-ids2018-label-spellings.csv"])

    assert table.labels.tolist() == [
        "BENIGN",
        "DoS Hulk",
        "DoS slowloris",
        "DDoS HOIC",
        "DDoS LOIC-HTTP",
        "Infiltration",
        "Web Attack - Brute Force",
        "SSH-Patator",
        "FTP-Patator",
    ]
    assert is_attack(table.labels).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1]
    # 'Benign' is benign through the table, not through a compare with 'BENIGN'
    assert is_attack(np.array(["Benign"], dtype=object)).tolist() == [0]


def test_ids2018_unknown_label_is_an_error(cases_dir, tmp_path):
    # case BR-15: an unknown label names file, row and label, and is never taken as benign
    lines = (cases_dir / "BR-15-ids2018-label-spellings.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",Foo"
    path = tmp_path / "foo-label.csv"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(DataError) as info:
        read_flows([path])

    message = str(info.value)
    assert message.startswith(f"{path}, row 3, column 'Label': unknown label(s) 'Foo' (1).")
    assert "never treats an unknown label as benign" in message
