# SPDX-License-Identifier: Apache-2.0
"""Write run directories atomically, and list, show and compare the runs under a runs directory.

A run directory is complete once it holds ``run.json``; it appears under its final name only
after everything in it has been written.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from flowids.errors import RunRecordError, UsageError
from flowids.report import count, rate, render_comparison_markdown, render_run_readme

logger = logging.getLogger(__name__)

RUN_JSON = "run.json"
README = "README.md"
INCOMPLETE_PREFIX = ".incomplete-"

LIST_COLUMNS = [
    "run_id",
    "created",
    "model",
    "preset",
    "split",
    "data",
    "test_flows",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "roc_auc",
    "training_seconds",
    "path",
]
COMPARE_COLUMNS = [
    "model",
    "preset",
    "split",
    "data",
    "threshold_rule",
    "threshold",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "false_alarms_per_10k_benign",
    "roc_auc",
    "training_seconds",
    "prediction_flows_per_s",
]

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STAMP = re.compile(r"^(\d{8}-\d{6})-")
_MAX_SUFFIX = 1000


class RunWriter:
    """Context manager that writes one run directory and publishes it atomically.

    Inside the ``with`` block, callers write files into :attr:`path`, a hidden temporary
    directory in ``runs_dir``. :meth:`finish` writes ``run.json`` and ``README.md`` and renames
    the directory to ``<YYYYMMDD-HHMMSS>-<preset>-<optimizer>`` (``-2``, ``-3``, ... on a clash).
    If the block ends without :meth:`finish`, or with an exception, the temporary directory
    is removed and nothing is published.

    Parameters
    ----------
    runs_dir : Path
        Directory that holds the runs; created if missing.
    preset, optimizer : str
        Name parts of the run; letters, digits, ``.``, ``_`` and ``-`` only.
    now : datetime, optional
        Time stamp of the run name and of ``created``; defaults to the current local time.

    Examples
    --------
    >>> with RunWriter(Path("runs"), "seed-20200924", "rmsprop") as writer:  # doctest: +SKIP
    ...     model.save(writer.path / "model.keras")
    ...     final = writer.finish({"model": "bilstm", "metrics": {...}})

    Notes
    -----
    The rename is atomic because the temporary directory lives on the same filesystem.
    """

    # Limitation: a process killed with SIGKILL (or a power loss) cannot clean up, so a hidden
    # `.incomplete-*` directory stays behind; it is ignored by list_runs and safe to delete.

    def __init__(
        self,
        runs_dir: Path,
        preset: str,
        optimizer: str,
        now: dt.datetime | None = None,
    ) -> None:
        _check_name_part("preset", preset)
        _check_name_part("optimizer", optimizer)
        self.runs_dir = Path(runs_dir)
        self.now = now if now is not None else dt.datetime.now().astimezone()
        self.run_id = f"{self.now:%Y%m%d-%H%M%S}-{preset}-{optimizer}"
        self.path: Path | None = None
        self.final_path: Path | None = None

    def __enter__(self) -> RunWriter:
        if self.path is not None:
            raise UsageError(f"RunWriter for {self.run_id} was already entered; use a new one")

        self.runs_dir.mkdir(parents=True, exist_ok=True)
        base = f"{INCOMPLETE_PREFIX}{self.run_id}-{os.getpid()}"
        for attempt in range(1, _MAX_SUFFIX):
            candidate = self.runs_dir / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            self.path = candidate
            logger.debug("writing run %s in %s", self.run_id, candidate)
            return self
        raise RunRecordError(f"{self.runs_dir}: cannot create a temporary run directory {base}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.final_path is not None or self.path is None:
            return

        if exc_type is None:
            logger.warning("run %s ended without finish(); its files were removed", self.run_id)
        else:
            logger.info(
                "run %s failed (%s); its files were removed", self.run_id, exc_type.__name__
            )
        shutil.rmtree(self.path, ignore_errors=True)

    def finish(self, record: Mapping[str, Any]) -> Path:
        """Write ``run.json`` and ``README.md``, then publish the run under its final name.

        Parameters
        ----------
        record : mapping
            The run record. ``run_id`` is set to the final directory name and ``created``
            is filled in if absent. NumPy scalars and arrays, paths and datetimes are
            converted for JSON; non-finite floats are stored as ``null``.

        Returns
        -------
        Path
            The final run directory (also in :attr:`final_path`).

        Raises
        ------
        UsageError
            If called outside the ``with`` block or twice, or if the record holds a value
            that cannot be stored as JSON.
        """
        if self.path is None or self.final_path is not None:
            raise UsageError(
                f"RunWriter.finish for {self.run_id}: call it once, inside the `with` block"
            )

        record = dict(record)
        record.setdefault("created", self.now.isoformat(timespec="seconds"))
        for attempt in range(1, _MAX_SUFFIX):
            name = self.run_id if attempt == 1 else f"{self.run_id}-{attempt}"
            final = self.runs_dir / name
            if final.exists():
                continue
            self._write_record({**record, "run_id": name})
            if _rename_if_free(self.path, final):
                self.final_path = final
                logger.info("wrote run %s", final)
                return final
        raise RunRecordError(
            f"{self.runs_dir}: names {self.run_id} to -{_MAX_SUFFIX - 1} are all taken; "
            "move old runs away or use another runs directory"
        )

    def _write_record(self, record: dict[str, Any]) -> None:
        plain = _jsonable(record, "record")
        text = json.dumps(plain, sort_keys=True, indent=2, allow_nan=False)
        (self.path / RUN_JSON).write_text(text + "\n", encoding="utf-8")
        (self.path / README).write_text(render_run_readme(plain), encoding="utf-8")


def _check_name_part(what: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME_PART.fullmatch(value):
        raise UsageError(
            f"run name: {what} {value!r} cannot be part of a directory name; expected letters, "
            "digits, '.', '_' and '-', starting with a letter or digit"
        )


def _rename_if_free(source: Path, target: Path) -> bool:
    """Rename ``source`` to ``target``; False if another run took the name meanwhile."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _jsonable(value: Any, where: str) -> Any:
    """Convert a record value into plain JSON types; ``where`` names it in errors."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, np.generic):
        return _jsonable(value.item(), where)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise UsageError(
        f"run record: {where} has type {type(value).__name__}, which run.json cannot store; "
        "convert it to a number, string, list or dict"
    )


def load_run(path: Path | str) -> dict[str, Any]:
    """Read the run record of a run directory.

    Parameters
    ----------
    path : Path or str
        A run directory, or its ``run.json``.

    Returns
    -------
    dict
        The run record.

    Raises
    ------
    RunRecordError
        If the directory is missing, has no ``run.json`` (an incomplete run or no run at
        all), or ``run.json`` is not a readable run record.
    """
    path = Path(path)
    if path.name == RUN_JSON and path.is_file():
        path = path.parent
    if not path.is_dir():
        raise RunRecordError(
            f"{path}: no such run directory; `flowids runs list` lists the runs, or pass a run id"
        )

    record_file = path / RUN_JSON
    if not record_file.is_file():
        raise RunRecordError(_why_no_record(path))

    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunRecordError(
            f"{record_file}: not a readable run record ({error}); the file is damaged"
        ) from error
    if not isinstance(record, dict) or "run_id" not in record:
        raise RunRecordError(
            f"{record_file}: expected a JSON object with a run_id, found "
            f"{type(record).__name__}{' without run_id' if isinstance(record, dict) else ''}"
        )
    return record


def _why_no_record(path: Path) -> str:
    if path.name.startswith(INCOMPLETE_PREFIX):
        return (
            f"{path}: incomplete run (no {RUN_JSON}): its writer stopped before finishing, "
            "after a crash or a kill; it holds no usable result and can be deleted"
        )
    if any(path.iterdir()):
        return (
            f"{path}: has files but no {RUN_JSON}; it looks like an incomplete run or not a "
            "run directory; a complete run always has run.json"
        )
    return f"{path}: empty directory, not a run (no {RUN_JSON})"


def list_runs(runs_dir: Path | str) -> pd.DataFrame:
    """Tabulate the complete runs under a runs directory, newest first.

    Parameters
    ----------
    runs_dir : Path or str
        Directory holding run directories.

    Returns
    -------
    DataFrame of shape (n_runs, 14)
        Columns ``LIST_COLUMNS``: ``run_id``, ``created``, ``model``, ``preset``, ``split``,
        ``data`` (file names), ``test_flows``, test ``precision``, ``recall``, ``f1``,
        ``false_positive_rate``, ``roc_auc``, ``training_seconds`` (s) and ``path``.

    Notes
    -----
    Hidden directories (among them unfinished ``.incomplete-*`` ones) and directories without
    ``run.json`` are skipped; a damaged ``run.json`` is skipped with a warning. A missing
    runs directory gives an empty table.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        logger.info("%s: no runs directory, so no runs", runs_dir)
        return pd.DataFrame(columns=LIST_COLUMNS)

    records = []
    for child in sorted(runs_dir.iterdir()):
        if child.name.startswith(".") or not (child / RUN_JSON).is_file():
            continue
        try:
            records.append((child, load_run(child)))
        except RunRecordError as error:
            logger.warning("skipping %s", error)

    records.sort(key=lambda pr: (_created_timestamp(pr[1]), pr[1]["run_id"]), reverse=True)
    rows = [_list_row(path, record) for path, record in records]
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


def _list_row(path: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    test = _test_metrics(record)
    row = {key: _summary_value(record, key) for key in COMPARE_COLUMNS}
    row.update(
        run_id=record["run_id"],
        created=record.get("created"),
        test_flows=test.get("n_flows", (record.get("split") or {}).get("test_flows")),
        path=str(path),
    )
    return row


def _created_timestamp(record: Mapping[str, Any]) -> float:
    """Seconds since the epoch of a run's creation, from ``created`` or the run id."""
    created = record.get("created")
    if isinstance(created, str):
        try:
            return dt.datetime.fromisoformat(created).astimezone().timestamp()
        except ValueError:
            pass
    match = _STAMP.match(str(record.get("run_id", "")))
    if match:
        return dt.datetime.strptime(match[1], "%Y%m%d-%H%M%S").astimezone().timestamp()
    return 0.0


def _test_metrics(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return (record.get("metrics") or {}).get("test") or {}


def _summary_value(record: Mapping[str, Any], column: str) -> Any:
    """The value of one comparison column for a record (None where absent)."""
    test = _test_metrics(record)
    if column in ("model", "preset"):
        return record.get(column)
    if column == "split":
        return (record.get("split") or {}).get("name", (record.get("config") or {}).get("split"))
    if column == "data":
        files = (record.get("data") or {}).get("files") or []
        return ", ".join(PurePath(str(f.get("path", "?"))).name for f in files) or None
    if column == "threshold_rule":
        return (record.get("decision") or {}).get("rule") or (record.get("config") or {}).get(
            "threshold_rule"
        )
    if column == "training_seconds":
        return (record.get("training") or {}).get("seconds")
    if column == "prediction_flows_per_s":
        return (record.get("prediction") or {}).get("flows_per_s")
    return test.get(column)


def show_run(path: Path | str) -> str:
    """Summarise one run in a few lines of plain text.

    Parameters
    ----------
    path : Path or str
        A run directory.

    Returns
    -------
    str
        Lines for the terminal: what was trained on which data, the split, test results with
        counts, timings and where the report is.

    Raises
    ------
    RunRecordError
        If ``path`` is not a complete run (see :func:`load_run`).
    """
    record = load_run(path)
    test = _test_metrics(record)
    split = record.get("split") or {}
    training = record.get("training") or {}
    created = f"  (created {record['created']})" if record.get("created") else ""
    lines = [
        f"run       {record['run_id']}{created}",
        f"model     {record.get('model', '?')}, preset {record.get('preset', '?')}, "
        + (
            f"optimizer {record['optimizer']}, {count(record.get('total_params'))} params"
            if record.get("optimizer")
            else f"estimator {record.get('estimator', '?')}"
        ),
        f"data      {_summary_value(record, 'data') or '?'}",
    ]
    if split:
        lines.append(
            f"split     {split.get('name', '?')}, seed {split.get('seed', '?')}: "
            f"{count(split.get('train_flows'))} train / {count(split.get('validation_flows'))} "
            f"validation / {count(split.get('test_flows'))} test flows; "
            f"{count(split.get('test_twins_in_train'))} test twins in train"
        )
    if test:
        lines += _show_test_lines(test)
    if training:
        epochs = training.get("epochs_run")
        what = f"{count(epochs)} epochs" if epochs else "fit"
        lines.append(f"training  {what} in {count(_round1(training.get('seconds')))} s")
    lines.append(f"report    {Path(path) / README}")
    return "\n".join(lines) + "\n"


def _show_test_lines(test: Mapping[str, Any]) -> list[str]:
    return [
        f"test      precision {rate(test.get('precision'))}  recall {rate(test.get('recall'))} "
        f"({count(test.get('tp'))} of {count(test.get('n_attack'))} attacks)  "
        f"F1 {rate(test.get('f1'))}  ROC AUC {rate(test.get('roc_auc'))}",
        f"          false-positive rate {rate(test.get('false_positive_rate'))} "
        f"({count(test.get('fp'))} of {count(test.get('n_benign'))} benign), "
        f"{count(_round1(test.get('false_alarms_per_10k_benign')))} false alarms per 10,000 "
        f"benign, threshold {rate(test.get('threshold'))}",
    ]


def _round1(value: Any) -> Any:
    try:
        return round(float(value), 1)
    except (TypeError, ValueError):
        return None


def compare_runs(paths: Sequence[Path | str], out_dir: Path | str | None = None) -> pd.DataFrame:
    """Put the test results of several runs side by side.

    Parameters
    ----------
    paths : sequence of Path or str
        Run directories, in the order to show them.
    out_dir : Path or str, optional
        If given, ``comparison.md``, ``comparison.csv`` and ``comparison.png`` (precision,
        recall and F1 per run as grouped bars) are written there; created if missing.

    Returns
    -------
    DataFrame of shape (n_runs, 12)
        Indexed by ``run_id``, columns ``COMPARE_COLUMNS``; rates are test-split values,
        ``training_seconds`` in s, ``prediction_flows_per_s`` in flows per s.

    Raises
    ------
    UsageError
        If ``paths`` is empty.
    RunRecordError
        If a path is not a complete run.
    """
    if not paths:
        raise UsageError("compare_runs: no runs given; pass one or more run directories")

    unique = list(dict.fromkeys(Path(p).resolve() for p in paths))
    records = [load_run(p) for p in unique]
    data = {_summary_value(r, "data") for r in records}
    if len(data) > 1:
        logger.warning(
            "the compared runs were trained on different data (%s); their test sets differ",
            "; ".join(sorted(map(str, data))),
        )
    frame = pd.DataFrame(
        [{c: _summary_value(r, c) for c in COMPARE_COLUMNS} for r in records],
        index=pd.Index([r["run_id"] for r in records], name="run_id"),
        columns=COMPARE_COLUMNS,
    )
    numeric = COMPARE_COLUMNS[5:]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")

    if out_dir is not None:
        _write_comparison(frame, Path(out_dir))
    return frame


def _write_comparison(frame: pd.DataFrame, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "comparison.csv")
    (out_dir / "comparison.md").write_text(render_comparison_markdown(frame), encoding="utf-8")
    _plot_comparison(frame, out_dir / "comparison.png")
    logger.info("wrote comparison of %d runs to %s", len(frame), out_dir)


def _plot_comparison(frame: pd.DataFrame, png: Path) -> None:
    """Draw precision, recall and F1 per run as grouped bars."""
    from matplotlib.figure import Figure  # imported here: plotting is rarely needed

    metrics = [("precision", "precision"), ("recall", "recall"), ("f1", "F1")]
    positions = np.arange(len(frame))
    width = 0.8 / len(metrics)
    figure = Figure(figsize=(max(6.0, 1.6 * len(frame) + 2.0), 4.5), layout="constrained")
    axes = figure.subplots()

    for i, (column, name) in enumerate(metrics):
        values = frame[column].to_numpy(dtype="float64")
        bars = axes.bar(positions + (i - 1) * width, np.nan_to_num(values), width, label=name)
        labels = ["n/a" if np.isnan(v) else f"{v:.3f}" for v in values]
        axes.bar_label(bars, labels=labels, fontsize=7, padding=2)

    names = [
        f"{run_id}\n{model}" for run_id, model in zip(frame.index, frame["model"], strict=True)
    ]
    axes.set_xticks(positions, names, rotation=20, ha="right", fontsize=7)
    axes.set_ylim(0.0, 1.25)
    axes.set_ylabel("value on the test flows")
    axes.set_title("Precision, recall and F1 of the attack class per run", fontsize=10)
    axes.legend(loc="upper center", ncols=3, fontsize=8)
    figure.savefig(png, dpi=120)


def resolve_run(spec: str | Path, runs_dir: Path | str) -> Path:
    """Find a run directory from a path, a run id (or its unique prefix) or ``latest``.

    Parameters
    ----------
    spec : str or Path
        ``latest`` (the newest complete run under ``runs_dir``), an existing path, or a run
        id under ``runs_dir``; a prefix of one run id (``20261203-1715``) also works.
    runs_dir : Path or str
        Directory holding the runs.

    Returns
    -------
    Path
        The run directory; :func:`load_run` checks that it is complete.

    Raises
    ------
    RunRecordError
        If nothing matches, the prefix matches several runs, or there is no run for
        ``latest``.
    """
    runs_dir = Path(runs_dir)
    spec = str(spec)
    if spec == "latest":
        runs = list_runs(runs_dir)
        if runs.empty:
            raise RunRecordError(f"{runs_dir}: no complete runs, so no latest run; train first")
        return Path(runs["path"].iloc[0])

    if Path(spec).exists():
        return Path(spec)
    if (runs_dir / spec).exists():
        return runs_dir / spec

    matches = [p for p in _run_dirs(runs_dir) if p.name.startswith(spec)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(p.name for p in matches)
        raise RunRecordError(f"run {spec!r} is ambiguous in {runs_dir}: matches {names}")
    raise RunRecordError(
        f"run {spec!r}: no such path and no run with that id in {runs_dir}; "
        "`flowids runs list` lists the runs, or use 'latest'"
    )


def _run_dirs(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return sorted(
        p for p in runs_dir.iterdir() if not p.name.startswith(".") and (p / RUN_JSON).is_file()
    )
