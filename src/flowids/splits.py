# SPDX-License-Identifier: Apache-2.0
"""Split flow records into training and test parts by a named rule, and count what leaks.

Four splits: ``random`` (stratified by label), ``dedup`` (duplicates and conflicting labels
removed first), ``time`` (earlier flows train, later ones test) and ``files`` (whole files
on each side). Every split counts the test flows whose feature vector also occurs in training.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from flowids.data.labels import is_attack
from flowids.data.readers import FlowTable
from flowids.data.timestamps import parse_timestamps
from flowids.errors import DataError, UsageError

logger = logging.getLogger(__name__)

RANDOM = "random"
DEDUP = "dedup"
TIME = "time"
FILES = "files"
SPLITS: tuple[str, ...] = (RANDOM, DEDUP, TIME, FILES)

EXACT_DUPLICATE = "exact duplicate"
CONFLICTING_LABEL = "conflicting label"


@dataclass(frozen=True)
class Split:
    """Positions of the training and test flows of one split, and what it removed.

    Attributes
    ----------
    name : str
        The split rule: 'random', 'dedup', 'time' or 'files'.
    seed : int
        Seed of the shuffles.
    train : ndarray of int, shape (n_train,)
        Positions in the flow table of the training flows, in the order the model sees them;
        the last ``validation_fraction`` of them is the validation part (for 'time', the
        latest flows).
    test : ndarray of int, shape (n_test,)
        Positions of the test flows.
    test_twins_in_train : int
        Test flows whose feature vector equals that of some training flow exactly.
    stratified_by : str
        What the split kept in proportion: 'label', 'binary' or 'none'.
    removed : dict of str to int
        Flows removed before splitting, by reason ('exact duplicate', 'conflicting label').
    kept : ndarray of int, shape (n_kept,), or None
        Positions of the flows kept before splitting; None when every flow was kept.
    details : dict
        JSON-safe facts of the split: the files on each side ('files'), the time range of
        each side ('time'), the duplicate counts of the whole table.
    """

    name: str
    seed: int
    train: np.ndarray
    test: np.ndarray
    test_twins_in_train: int
    stratified_by: str
    removed: dict[str, int] = field(default_factory=dict)
    kept: np.ndarray | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-safe summary for run records: counts and details, not the positions."""
        return {
            "name": self.name,
            "seed": int(self.seed),
            "stratified_by": self.stratified_by,
            "train_flows": len(self.train),
            "test_flows": len(self.test),
            "test_twins_in_train": int(self.test_twins_in_train),
            "removed": {reason: int(n) for reason, n in self.removed.items()},
            "kept_flows": None if self.kept is None else len(self.kept),
            "details": self.details,
        }


def _vector_ids(features: pd.DataFrame) -> np.ndarray:
    """Number each distinct feature vector; flows with exactly equal vectors share a number.

    NaN equals NaN and -0.0 equals 0.0, as in a comparison of values.

    Returns
    -------
    ndarray of int64, shape (n_flows,)
    """
    ids = np.zeros(len(features), dtype=np.int64)
    for column in features.columns:
        codes, uniques = pd.factorize(features[column].to_numpy(), use_na_sentinel=False)
        # ids < n_flows and codes < n_flows, so the product stays far inside int64.
        ids, _ = pd.factorize(ids * len(uniques) + codes)
    return ids.astype(np.int64)


def count_twins(features: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> int:
    """Count test flows whose feature vector occurs exactly in the training part.

    Parameters
    ----------
    features : DataFrame of shape (n_flows, n_features)
    train, test : ndarray of int
        Positions of the two parts in ``features``.

    Returns
    -------
    int
        Test flows with a twin in training; NaN counts as equal to NaN.
    """
    return _count_twins(_vector_ids(features), train, test)


def _count_twins(ids: np.ndarray, train: np.ndarray, test: np.ndarray) -> int:
    return int(np.isin(ids[np.asarray(test)], ids[np.asarray(train)]).sum())


def find_duplicates(features: pd.DataFrame, labels: np.ndarray) -> dict[str, int]:
    """Count exact duplicate flow records and feature vectors with conflicting labels.

    Parameters
    ----------
    features : DataFrame of shape (n_flows, n_features)
    labels : ndarray of str, shape (n_flows,)

    Returns
    -------
    dict
        ``exact_duplicates``: flows whose features and label repeat an earlier flow's;
        ``conflicting_vectors``: feature vectors that occur with more than one label;
        ``conflicting_flows``: flows that carry one of those vectors.

    Examples
    --------
    Four copies of one benign flow and a vector seen once as BENIGN and three times as
    DoS Hulk give 3 + 2 = 5 exact duplicates, 1 conflicting vector and 4 conflicting flows.
    """
    if len(labels) != len(features):
        raise UsageError(
            f"find_duplicates: {len(labels)} labels for {len(features)} flows; expected one "
            "label per flow"
        )
    return _duplicate_counts(_vector_ids(features), np.asarray(labels, dtype=object))


def _duplicate_counts(ids: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    conflicting = _conflicting_flows(ids, labels)
    pairs = _pair_ids(ids, labels)
    return {
        "exact_duplicates": int(len(pairs) - len(np.unique(pairs))),
        "conflicting_vectors": int(len(np.unique(ids[conflicting]))),
        "conflicting_flows": int(conflicting.sum()),
    }


def _pair_ids(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Number each distinct (feature vector, label) pair."""
    label_codes, label_values = pd.factorize(labels, use_na_sentinel=False)
    pairs, _ = pd.factorize(ids * max(len(label_values), 1) + label_codes)
    return pairs


def _conflicting_flows(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mask of flows whose feature vector occurs with more than one label."""
    pairs = _pair_ids(ids, labels)
    _, first_of_pair = np.unique(pairs, return_index=True)
    labels_per_vector = np.bincount(ids[first_of_pair], minlength=int(ids.max(initial=-1)) + 1)
    return labels_per_vector[ids] > 1


def make_split(
    table: FlowTable,
    name: str,
    *,
    test_fraction: float,
    seed: int,
    test_files: list[str] | None = None,
) -> Split:
    """Split a flow table into training and test parts by a named rule.

    Parameters
    ----------
    table : FlowTable
        Labelled flow records (no '' labels) for 'random' and 'dedup'.
    name : {'random', 'dedup', 'time', 'files'}
        'random': stratified by label, shuffled with ``seed``. 'dedup': exact duplicates
        (all but the first) and every flow of a feature vector with conflicting labels are
        removed, then a random split of the rest; no test flow then has a twin in training.
        'time': flows ordered by parsed timestamp, the earliest ``1 - test_fraction`` train
        and the latest test. 'files': the ``test_files`` test, every other file trains.
    test_fraction : float
        Share of flows in the test part, in (0, 1); not used by 'files'.
    seed : int
        Seed of the shuffles; the same seed gives the same positions.
    test_files : list of str, optional
        'files' only: paths as in ``table.origin['file']``.

    Returns
    -------
    Split

    Raises
    ------
    UsageError
        On an unknown name, a test fraction outside (0, 1), ``test_files`` that are missing,
        cover every file or name a file the table lacks (or given to another split), a 'time'
        split over files without a Timestamp column, or a table too small to split.
    DataError
        If 'random' or 'dedup' meets unlabelled flows, or a timestamp cannot be parsed.

    Notes
    -----
    'random' stratifies by canonical label; a label with a single flow joins the largest
    label of its binary class, so a rare attack never crashes the split. Where there are
    more labels than flows in a part, it stratifies by benign/attack only, else not at all.
    The training part of 'time' is in time order, so its validation part is the latest.
    """
    _check_arguments(table, name, test_fraction, test_files)
    ids = _vector_ids(table.features)
    details: dict = {}
    if table.labels is not None:
        details["duplicates"] = _duplicate_counts(ids, np.asarray(table.labels, dtype=object))

    removed: dict[str, int] = {}
    kept = None
    if name == RANDOM:
        train, test, stratified_by = _random_positions(
            table.labels, np.arange(len(table)), test_fraction, seed
        )
    elif name == DEDUP:
        kept, removed = _deduplicate(ids, table.labels)
        train, test, stratified_by = _random_positions(
            table.labels[kept], kept, test_fraction, seed
        )
        kept = None if len(kept) == len(table) else kept
    elif name == TIME:
        train, test, time_details = _time_positions(table, test_fraction)
        stratified_by = "none"
        details.update(time_details)
    else:
        train, test, file_details = _file_positions(table, test_files, seed)
        stratified_by = "none"
        details.update(file_details)

    twins = _count_twins(ids, train, test)
    split = Split(name, seed, train, test, twins, stratified_by, removed, kept, details)
    _log_split(split)
    return split


def _check_arguments(
    table: FlowTable, name: str, test_fraction: float, test_files: list[str] | None
) -> None:
    if name not in SPLITS:
        raise UsageError(f"split {name!r} is not known; expected one of {', '.join(SPLITS)}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise UsageError(
            f"test_fraction is {test_fraction!r}; expected the share of flows to test, "
            "strictly between 0 and 1 (e.g. 0.2)"
        )
    if test_files is not None and name != FILES:
        raise UsageError(
            f"test files were given to the {name!r} split; only the 'files' split uses them "
            "(choose --split files, or drop the test files)"
        )
    if len(table) < 2:
        raise UsageError(
            f"the flow table holds {len(table)} flow(s); a split needs at least 2, one for "
            "training and one for testing"
        )


def _strata(labels: np.ndarray, y: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Stratify by label; a label with one flow joins the largest label of its binary class."""
    counts = Counter(labels.tolist())
    largest = {}
    for label, _ in counts.most_common():
        largest.setdefault(bool(y[labels == label][0]), label)
    strata = labels.copy()
    for label, n in counts.items():
        if n < 2:
            strata[labels == label] = largest[bool(y[labels == label][0])]
    if min(Counter(strata.tolist()).values()) >= 2:
        return strata, "label"
    return None, "none"


def _random_positions(
    labels: np.ndarray | None, positions: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Stratified shuffled split of ``positions`` (whose labels are ``labels``).

    For the same labels, fraction and seed this gives the same positions as flowids always
    has; the binary and unstratified fallbacks only apply where label strata cannot be split.
    """
    if labels is None:
        raise DataError(
            "the flows have no Label column; the random and dedup splits stratify by label "
            "(use labelled flow records)"
        )
    labels = np.asarray(labels, dtype=object)
    y = is_attack(labels)
    # Limitation: a single-flow label shares the stratum of a larger label, so when that
    # stratum gets one test flow, either label can miss a part (BR-14: DDoS with Heartbleed).
    strata, stratified_by = _strata(labels, y)
    candidates = [(strata, stratified_by)]
    if strata is not None:
        # Only where the label strata cannot be split: fewer flows in a part than strata.
        candidates += [(y, "binary"), (None, "none")]

    for strata, stratified_by in candidates:
        try:
            train, test = train_test_split(
                positions,
                test_size=test_fraction,
                random_state=seed,
                stratify=strata,
                shuffle=True,
            )
        except ValueError as exc:
            logger.info("cannot stratify by %s (%s); trying the next rule", stratified_by, exc)
            continue
        if stratified_by != "label":
            logger.warning(
                "split stratified by %s only: some labels have too few flows", stratified_by
            )
        return np.asarray(train), np.asarray(test), stratified_by
    raise UsageError(
        f"{len(positions)} flows cannot be split with test_fraction {test_fraction}; "
        "give more flows or another test fraction"
    )


def _deduplicate(ids: np.ndarray, labels: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """Keep the first copy of each flow record; drop every flow of a conflicting vector.

    Returns
    -------
    kept : ndarray of int
        Positions kept, ascending.
    removed : dict
        'conflicting label': every flow whose vector carries more than one label (their
        copies included); 'exact duplicate': the other repeated copies.
    """
    if labels is None:
        raise DataError(
            "the flows have no Label column; the dedup split needs labels to tell duplicates "
            "from conflicting labels (use labelled flow records)"
        )
    labels = np.asarray(labels, dtype=object)
    conflicting = _conflicting_flows(ids, labels)
    repeated = np.zeros(len(ids), dtype=bool)
    _, first = np.unique(_pair_ids(ids, labels), return_index=True)
    repeated[np.setdiff1d(np.arange(len(ids)), first)] = True
    duplicate = repeated & ~conflicting

    removed = {
        EXACT_DUPLICATE: int(duplicate.sum()),
        CONFLICTING_LABEL: int(conflicting.sum()),
    }
    kept = np.flatnonzero(~(duplicate | conflicting))
    if len(kept) < 2:
        raise DataError(
            f"only {len(kept)} flow(s) left after removing {removed[EXACT_DUPLICATE]} exact "
            f"duplicates and {removed[CONFLICTING_LABEL]} flows with conflicting labels; "
            "the dedup split needs at least 2"
        )
    logger.info(
        "dedup: removed %s exact duplicate flow records and %s flows whose feature vector "
        "has conflicting labels; %s flows kept",
        f"{removed[EXACT_DUPLICATE]:,}",
        f"{removed[CONFLICTING_LABEL]:,}",
        f"{len(kept):,}",
    )
    return kept, removed


def flow_times(table: FlowTable) -> np.ndarray:
    """Parse the timestamp of every flow, file by file, with each file's dialect.

    Returns
    -------
    ndarray of datetime64[ns], shape (n_flows,)

    Raises
    ------
    UsageError
        Naming the files that have no Timestamp column.
    DataError
        If a timestamp cannot be parsed (see :func:`parse_timestamps`).
    """
    files = table.origin["file"].astype(str).to_numpy(dtype=object)
    if "timestamp" in table.identifiers.columns:
        text = table.identifiers["timestamp"].reset_index(drop=True)
    else:
        text = pd.Series([None] * len(table), dtype=object)
    missing = [file for file in dict.fromkeys(files) if text[files == file].isna().all()]
    if missing:
        raise UsageError(
            f"the time split needs a Timestamp column in every file; {', '.join(missing)} "
            "has none (e.g. CIC-IDS2017 MachineLearningCVE files). Use GeneratedLabelledFlows "
            "or CICFlowMeter-V4 files, or another split"
        )

    dialects = {report.path: report.dialect for report in table.reports}
    times = np.empty(len(table), dtype="datetime64[ns]")
    origin = table.origin.reset_index(drop=True)
    for file in dict.fromkeys(files):
        where = np.flatnonzero(files == file)
        dialect = dialects.get(file) or _only_dialect(table, file)
        parsed = parse_timestamps(text.iloc[where], dialect, origin.iloc[where])
        times[where] = parsed.to_numpy(dtype="datetime64[ns]")
    return times


def _only_dialect(table: FlowTable, file: str) -> str:
    if len(table.dialects) == 1:
        return table.dialects[0]
    raise DataError(
        f"{file}: no file report names this file, so its dialect (and how to read its "
        f"timestamps) is unknown; the table's files are {', '.join(table.dialects)}"
    )


def _time_positions(table: FlowTable, test_fraction: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Earliest flows train, latest test; ties in time keep file order, then row order."""
    times = flow_times(table)
    file_rank, _ = pd.factorize(table.origin["file"].astype(str).to_numpy(dtype=object))
    rows = table.origin["row"].to_numpy()
    order = np.lexsort((rows, file_rank, times.astype(np.int64)))

    n_test = math.ceil(test_fraction * len(order))
    if n_test >= len(order):
        raise UsageError(
            f"test_fraction {test_fraction} leaves no training flow out of {len(order)}; "
            "choose a smaller test fraction"
        )
    train, test = order[: len(order) - n_test], order[len(order) - n_test :]
    details = {
        "train_time": _time_range(times[train]),
        "test_time": _time_range(times[test]),
        "test_flows_at_train_end": int((times[test] == times[train[-1]]).sum()),
    }
    return train, test, details


def _time_range(times: np.ndarray) -> dict[str, str]:
    return {
        "first": pd.Timestamp(times.min()).isoformat(),
        "last": pd.Timestamp(times.max()).isoformat(),
    }


def _file_positions(
    table: FlowTable, test_files: list[str] | None, seed: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Whole files on each side: ``test_files`` test, the others train (shuffled)."""
    files = table.origin["file"].astype(str).to_numpy(dtype=object)
    known = list(dict.fromkeys(files))
    chosen = _match_files(test_files, known)
    if len(chosen) == len(known):
        raise UsageError(
            f"the test files cover every input file ({len(known)}); the files split needs at "
            "least one other file to train on"
        )

    in_test = np.isin(files, list(chosen))
    test = np.flatnonzero(in_test)
    train = np.random.default_rng(seed).permutation(np.flatnonzero(~in_test))
    details = {
        "train_files": [file for file in known if file not in chosen],
        "test_files": [file for file in known if file in chosen],
    }
    return train, test, details


def _match_files(test_files: list[str] | None, known: list[str]) -> set[str]:
    """Map the given test files onto the table's file names (same text or same file)."""
    if not test_files:
        raise UsageError(
            "the files split needs test files: name one or more of the input files "
            f"({', '.join(known)}) as the test part"
        )
    by_path = {Path(file).resolve(): file for file in known}
    chosen: set[str] = set()
    unknown: list[str] = []
    for given in test_files:
        file = str(given) if str(given) in known else by_path.get(Path(given).resolve())
        if file is None:
            unknown.append(str(given))
        else:
            chosen.add(file)
    if unknown:
        raise UsageError(
            f"test file(s) {', '.join(unknown)} are not among the input files "
            f"({', '.join(known)}); a test file must also be read as input"
        )
    return chosen


def _log_split(split: Split) -> None:
    logger.info(
        "%s split (seed %d): %s training flows, %s test flows, %s test flows with a twin in "
        "training",
        split.name,
        split.seed,
        f"{len(split.train):,}",
        f"{len(split.test):,}",
        f"{split.test_twins_in_train:,}",
    )
    if split.name == TIME:
        logger.info(
            "time split: training %s .. %s, test %s .. %s",
            split.details["train_time"]["first"],
            split.details["train_time"]["last"],
            split.details["test_time"]["first"],
            split.details["test_time"]["last"],
        )
    if split.name == FILES:
        logger.info(
            "files split: training on %s; testing on %s",
            ", ".join(split.details["train_files"]),
            ", ".join(split.details["test_files"]),
        )
