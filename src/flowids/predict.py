# SPDX-License-Identifier: Apache-2.0
"""Score flow files with a trained run: its saved model, preprocessing and decision rule.

Nothing is fitted here. Files are read in chunks, so memory stays bounded whatever their size,
and the output is written to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from flowids.data.labels import is_attack
from flowids.data.readers import (
    DEFAULT_CHUNK_FLOWS,
    FlowTable,
    expand_paths,
    inspect_header,
    iter_flow_chunks,
)
from flowids.data.schema import IDENTIFIERS
from flowids.errors import DataError, RunRecordError, UsageError
from flowids.evaluation import binary_metrics, verdicts
from flowids.features.preprocessing import Preprocessor
from flowids.features.windows import (
    WindowSettings,
    WindowState,
    stream_table_windows,
    table_windows,
)

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
DECISION_FILE = "decision.json"


@dataclass
class TrainedRun:
    """A run's detector with everything needed to score new flows exactly as in training."""

    path: Path
    detector: object
    preprocessor: Preprocessor
    threshold: float
    decision: dict
    windows: WindowSettings | None = None

    def score(self, features: pd.DataFrame, source: str = "input") -> np.ndarray:
        """Attack probability of each flow.

        Parameters
        ----------
        features : DataFrame of shape (n_flows, n_any_features)
            Canonical features; the run's feature list is selected by name.

        Returns
        -------
        ndarray of float64, shape (n_flows,)

        Raises
        ------
        UsageError
            If the run scores windows of related flows: use :meth:`score_table`.
        """
        if self.windows is not None:
            raise UsageError(
                f"run {self.path} scores {self.windows.describe()}, which needs each flow's "
                "identifiers and timestamp; score a FlowTable with score_table"
            )
        x = self.preprocessor.transform(features, source=source)
        return self.detector.attack_probability(x)

    def score_table(
        self, table: FlowTable, source: str = "input", state: WindowState | None = None
    ) -> np.ndarray:
        """Attack probability of each flow of a table, with its window where the run uses them.

        Parameters
        ----------
        table : FlowTable
            Flows with canonical features; for a run with windows also the identifiers of
            its key and a Timestamp.
        state : WindowState, optional
            Flows pushed before, from :meth:`window_state`: the table is then the next chunk
            of a stream. Without it, windows are built from the table's flows only.

        Returns
        -------
        ndarray of float64, shape (n_flows,)
        """
        if self.windows is None:
            return self.score(table.features, source)
        x = self.preprocessor.transform(table.features, source=source)
        if state is None:
            return self.detector.attack_probability(table_windows(table, x, self.windows))
        return self.detector.attack_probability(stream_table_windows(state, table, x))

    def window_state(self) -> WindowState | None:
        """A fresh per-key window state for scoring a stream; None for runs without windows."""
        return None if self.windows is None else WindowState(self.windows)


def load_trained_run(run_dir: str | Path) -> TrainedRun:
    """Load the detector, preprocessing and decision rule of a complete run directory.

    Raises
    ------
    RunRecordError
        If the directory is not a complete run or a file in it cannot be read.
    """
    from flowids.models.detectors import load_detector

    path = Path(run_dir)
    if not (path / DECISION_FILE).is_file():
        raise RunRecordError(
            f"{path}: not a complete flowids run (no {DECISION_FILE}); give a directory "
            "that `flowids runs list` shows"
        )
    decision = json.loads((path / DECISION_FILE).read_text(encoding="utf-8"))
    preprocessor = Preprocessor.load(path / PREPROCESSING_FILE)
    detector = load_detector(path, decision.get("model_file", MODEL_FILE))
    windows = WindowSettings.from_dict(decision["windows"]) if decision.get("windows") else None
    return TrainedRun(path, detector, preprocessor, float(decision["threshold"]), decision, windows)


@dataclass
class PredictionSummary:
    """Counts of what :func:`predict_files` scored, and metrics when labels were present."""

    flows: int = 0
    attacks: int = 0
    per_file: dict = field(default_factory=dict)
    metrics: dict | None = None
    output: Path | None = None


def _output_columns(mappings: list) -> list[str]:
    """Columns of the output: origin, every identifier any file has, label, score, verdict."""
    identifiers = [name for name in IDENTIFIERS if any(name in m.identifiers for m in mappings)]
    label = ["label"] if any(m.has_label for m in mappings) else []
    return ["file", "row", *identifiers, *label, "attack_probability", "verdict"]


def _output_frame(chunk, probability: np.ndarray, threshold: float, columns) -> pd.DataFrame:
    frame = pd.concat([chunk.origin, chunk.identifiers], axis=1)
    if chunk.labels is not None:
        frame["label"] = chunk.labels
    frame["attack_probability"] = probability
    frame["verdict"] = np.where(verdicts(probability, threshold) == 1, "attack", "benign")
    return frame.reindex(columns=columns)


def _write_frame(frame: pd.DataFrame, handle, kind: str, first: bool) -> None:
    if kind == "jsonl":
        frame.to_json(handle, orient="records", lines=True, double_precision=15)
    else:
        frame.to_csv(handle, index=False, header=first, float_format="%.9g")


class _Scores:
    """Labels and attack probabilities gathered across chunks for the final evaluation."""

    def __init__(self) -> None:
        self.labels: list[np.ndarray] = []
        self.probabilities: list[np.ndarray] = []
        self.complete = True

    def add(self, labels: np.ndarray | None, probability: np.ndarray) -> None:
        if labels is None or (labels == "").any():
            self.complete = False
            return
        self.labels.append(labels)
        self.probabilities.append(probability)

    def metrics(self, threshold: float) -> dict | None:
        if not self.complete or not self.labels or not sum(map(len, self.labels)):
            return None
        labels = np.concatenate(self.labels)
        return binary_metrics(
            is_attack(labels), np.concatenate(self.probabilities), threshold, labels=labels
        )


def training_files(run: TrainedRun) -> dict[str, str]:
    """sha256 -> file name of every file the run was trained (and tested) on."""
    record_path = run.path / "run.json"
    if not record_path.is_file():
        return {}
    record = json.loads(record_path.read_text(encoding="utf-8"))
    files = (record.get("data") or {}).get("files") or []
    return {f["sha256"]: Path(f["path"]).name for f in files if f.get("sha256")}


def preflight(run: TrainedRun, files: list[Path], allow_other_producer: bool) -> list:
    """Check every file's header before scoring any, so one bad file never ends a batch.

    Returns
    -------
    list of HeaderMapping
        One per file, in order.

    Raises
    ------
    MissingFeaturesError, DataError
        If a file lacks a feature the run needs, or comes from another producer.
    """
    mappings = []
    for path in files:
        mapping = inspect_header(path)
        run.preprocessor.check_features(mapping.features, str(path))
        run.preprocessor.check_dialects([mapping.dialect], str(path), allow_other_producer)
        mappings.append(mapping)
    return mappings


def _is_training_file(seen: dict[str, str], path: Path, chunk: FlowTable | None) -> bool:
    """Whether a file just read is one the run was trained on (by the sha256 of its read)."""
    digest = chunk.reports[0].sha256 if chunk is not None else None
    if digest not in seen:
        return False
    logger.warning(
        "%s: this file is part of the run's own data (same sha256 as %s); its flows include "
        "training flows, so scores on it are not a test",
        path,
        seen[digest],
    )
    return True


def score_file(
    run: TrainedRun, path: Path, chunk_flows: int
) -> Iterator[tuple[FlowTable, np.ndarray]]:
    """Yield each chunk of a flow file with the attack probability of its flows.

    Check the file with :func:`preflight` first.

    For a run with windows, a flow's window holds the flows of its key read before it in the
    same file (the state is per file, as windows never cross files in training either).
    """
    state = run.window_state()
    validity = run.preprocessor.validity  # as the training flows were read
    with closing(iter_flow_chunks(path, chunk_flows, validity)) as chunks:
        for chunk in chunks:
            yield chunk, run.score_table(chunk, str(path), state)


def evaluate_files(
    run: TrainedRun,
    paths: Iterable[str | Path],
    chunk_flows: int = DEFAULT_CHUNK_FLOWS,
    allow_other_producer: bool = False,
) -> dict[str, dict]:
    """Metrics of a run on each labelled flow file, and on all of them together.

    Returns
    -------
    dict of str to dict
        File path (and ``"all files"``) to :func:`flowids.evaluation.binary_metrics` output
        at the run's threshold.

    Raises
    ------
    DataError
        If a file has no label column or flows marked unlabelled.
    """
    results: dict[str, dict] = {}
    together = _Scores()
    files = expand_paths(paths)
    preflight(run, files, allow_other_producer)
    seen = training_files(run)
    for path in files:
        scores = _Scores()
        chunk = None
        for chunk, probability in score_file(run, path, chunk_flows):
            scores.add(chunk.labels, probability)
            together.add(chunk.labels, probability)
        if not scores.complete:
            raise DataError(
                f"{path}: evaluation needs a label for every flow (no Label column, or flows "
                "marked 'No Label'); use `flowids predict` to score unlabelled flows"
            )
        results[str(path)] = scores.metrics(run.threshold)
        if results[str(path)] is None:
            raise DataError(f"{path}: no flow records to evaluate")
        results[str(path)]["in_training_data"] = _is_training_file(seen, path, chunk)
    if len(results) > 1:
        results["all files"] = together.metrics(run.threshold)
    return results


def predict_files(
    run: TrainedRun,
    paths: Iterable[str | Path],
    output: str | Path,
    chunk_flows: int = DEFAULT_CHUNK_FLOWS,
    allow_other_producer: bool = False,
    progress: bool = False,
) -> PredictionSummary:
    """Score every flow in ``paths`` and write one line per flow to ``output``.

    The output is CSV, or JSON lines when its name ends in ``.jsonl`` or ``.json``. It holds
    the source file and row, identifier columns when the input has them, the label when
    present, ``attack_probability`` and ``verdict`` ('attack' at or above the run's
    threshold, else 'benign'). Metrics are computed when every flow has a label.
    """
    output = Path(output)
    suffixes = [suffix.lower() for suffix in output.suffixes[-2:]]
    kind = "jsonl" if {".jsonl", ".json"} & set(suffixes) else "csv"
    files = expand_paths(paths)
    check_output_path(output, files)
    columns = _output_columns(preflight(run, files, allow_other_producer))
    seen = training_files(run)
    summary = PredictionSummary(output=output)
    scores = _Scores()

    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    bar = tqdm(desc="scoring", unit=" flows", disable=not progress, unit_scale=True)
    try:
        with bar, _open_output(tmp, gzipped=suffixes[-1:] == [".gz"]) as handle:
            for path in files:
                counts = {"flows": 0, "attacks": 0}
                chunk = None
                for chunk, probability in score_file(run, path, chunk_flows):
                    frame = _output_frame(chunk, probability, run.threshold, columns)
                    _write_frame(frame, handle, kind, first=not summary.flows + counts["flows"])
                    scores.add(chunk.labels, probability)
                    counts["flows"] += len(frame)
                    counts["attacks"] += int((frame["verdict"] == "attack").sum())
                    bar.update(len(frame))
                _is_training_file(seen, path, chunk)
                summary.per_file[str(path)] = counts
                summary.flows += counts["flows"]
                summary.attacks += counts["attacks"]
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()

    summary.metrics = scores.metrics(run.threshold)
    logger.info(
        "scored %s flows from %d file(s): %s called attack; wrote %s",
        f"{summary.flows:,}",
        len(files),
        f"{summary.attacks:,}",
        output,
    )
    return summary


def _open_output(path: Path, gzipped: bool):
    """A text handle on the temporary output; gzip-compressed for names ending in .gz."""
    if gzipped:
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115


def check_output_path(output: str | Path, inputs: Iterable[Path] = ()) -> Path:
    """Refuse an output path that is a directory, lies in a missing one, or is an input."""
    output = Path(output)
    if output.is_dir():
        raise UsageError(f"{output}: is a directory; give a file name such as scores.csv")
    if not output.parent.exists():
        raise UsageError(f"{output}: directory {output.parent} does not exist")
    if output.exists() and any(output.resolve() == Path(p).resolve() for p in inputs):
        raise UsageError(f"{output}: is also an input file; write the scores elsewhere")
    return output
