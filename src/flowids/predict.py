# SPDX-License-Identifier: Apache-2.0
"""Score flow files with a trained run: its saved model, preprocessing and decision rule.

Nothing is fitted here. Files are read in chunks, so memory stays bounded whatever their size,
and the output is written to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flowids.data.labels import is_attack
from flowids.data.readers import DEFAULT_CHUNK_FLOWS, expand_paths, iter_flow_chunks
from flowids.errors import RunRecordError, UsageError
from flowids.evaluation import attack_probability, binary_metrics, verdicts
from flowids.features.preprocessing import Preprocessor

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
DECISION_FILE = "decision.json"
PREDICT_BATCH = 4096


@dataclass
class TrainedRun:
    """A run's model with everything needed to score new flows exactly as in training."""

    path: Path
    model: object
    preprocessor: Preprocessor
    threshold: float
    decision: dict

    def score(self, features: pd.DataFrame, source: str = "input") -> np.ndarray:
        """Attack probability of each flow.

        Parameters
        ----------
        features : DataFrame of shape (n_flows, n_any_features)
            Canonical features; the run's feature list is selected by name.

        Returns
        -------
        ndarray of float64, shape (n_flows,)
        """
        x = self.preprocessor.transform(features, source=source)
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        outputs = _predict_network(self.model, x)
        return attack_probability(np.asarray(outputs, dtype=np.float64))


def _predict_network(model, x: np.ndarray) -> np.ndarray:
    """Run the network on (n_flows, n_features) input in fixed-size batches.

    Every batch is padded to the same number of flows, so a flow's score never depends on how
    many other flows share its file or chunk.
    """
    outputs = []
    for start in range(0, len(x), PREDICT_BATCH):
        batch = x[start : start + PREDICT_BATCH]
        n = len(batch)
        padded = np.zeros((PREDICT_BATCH, x.shape[1]), dtype=np.float32)
        padded[:n] = batch
        outputs.append(np.asarray(model.predict_on_batch(padded[:, None, :]))[:n])
    return np.concatenate(outputs)


def load_trained_run(run_dir: str | Path) -> TrainedRun:
    """Load the model, preprocessing and decision rule of a complete run directory.

    Raises
    ------
    RunRecordError
        If the directory is not a complete run or a file in it cannot be read.
    """
    path = Path(run_dir)
    if not (path / DECISION_FILE).is_file():
        raise RunRecordError(
            f"{path}: not a complete flowids run (no {DECISION_FILE}); give a directory "
            "that `flowids runs list` shows"
        )
    decision = json.loads((path / DECISION_FILE).read_text(encoding="utf-8"))
    preprocessor = Preprocessor.load(path / PREPROCESSING_FILE)
    model = _load_model(path, decision)
    return TrainedRun(path, model, preprocessor, float(decision["threshold"]), decision)


def _load_model(path: Path, decision: dict):
    model_file = path / decision.get("model_file", MODEL_FILE)
    if not model_file.is_file():
        raise RunRecordError(f"{model_file}: model file missing from the run")
    import keras

    try:
        return keras.saving.load_model(model_file, compile=False)
    except (ValueError, OSError) as exc:
        raise RunRecordError(f"{model_file}: cannot load the model ({exc})") from None


@dataclass
class PredictionSummary:
    """Counts of what :func:`predict_files` scored, and metrics when labels were present."""

    flows: int = 0
    attacks: int = 0
    per_file: dict = field(default_factory=dict)
    metrics: dict | None = None
    output: Path | None = None


def _output_frame(chunk, probability: np.ndarray, threshold: float) -> pd.DataFrame:
    frame = pd.concat([chunk.origin, chunk.identifiers], axis=1)
    if chunk.labels is not None:
        frame["label"] = chunk.labels
    frame["attack_probability"] = probability
    frame["verdict"] = np.where(verdicts(probability, threshold) == 1, "attack", "benign")
    return frame


def _write_frame(frame: pd.DataFrame, handle, kind: str, first: bool) -> None:
    if kind == "jsonl":
        frame.to_json(handle, orient="records", lines=True, double_precision=15)
    else:
        frame.to_csv(handle, index=False, header=first, float_format="%.9g")


def predict_files(
    run: TrainedRun,
    paths: Iterable[str | Path],
    output: str | Path,
    chunk_flows: int = DEFAULT_CHUNK_FLOWS,
    allow_other_producer: bool = False,
) -> PredictionSummary:
    """Score every flow in ``paths`` and write one line per flow to ``output``.

    The output is CSV, or JSON lines when its name ends in ``.jsonl`` or ``.json``. It holds
    the source file and row, identifier columns when the input has them, the label when
    present, ``attack_probability`` and ``verdict`` ('attack' at or above the run's
    threshold, else 'benign').
    """
    output = Path(output)
    kind = "jsonl" if output.suffix.lower() in (".jsonl", ".json") else "csv"
    files = expand_paths(paths)
    summary = PredictionSummary(output=output)
    y_true: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    labelled = True

    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            first = True
            for path in files:
                n_file = attacks_file = 0
                for chunk in iter_flow_chunks(path, chunk_flows):
                    run.preprocessor.check_dialects(
                        [chunk.reports[0].dialect], str(path), allow_other_producer
                    )
                    probability = run.score(chunk.features, source=str(path))
                    frame = _output_frame(chunk, probability, run.threshold)
                    _write_frame(frame, handle, kind, first)
                    first = False
                    n_file += len(frame)
                    attacks_file += int((frame["verdict"] == "attack").sum())
                    if chunk.labels is None or (chunk.labels == "").any():
                        labelled = False
                    else:
                        y_true.append(is_attack(chunk.labels))
                        labels.append(chunk.labels)
                        probabilities.append(probability)
                summary.per_file[str(path)] = {"flows": n_file, "attacks": attacks_file}
                summary.flows += n_file
                summary.attacks += attacks_file
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()

    if labelled and y_true:
        summary.metrics = binary_metrics(
            np.concatenate(y_true),
            np.concatenate(probabilities),
            threshold=run.threshold,
            labels=np.concatenate(labels),
        )
    logger.info(
        "scored %s flows from %d file(s): %s called attack; wrote %s",
        f"{summary.flows:,}",
        len(files),
        f"{summary.attacks:,}",
        output,
    )
    return summary


def check_output_path(output: str | Path) -> Path:
    """Refuse an output path whose directory does not exist."""
    output = Path(output)
    if not output.parent.exists():
        raise UsageError(f"{output}: directory {output.parent} does not exist")
    return output
