# SPDX-License-Identifier: Apache-2.0
"""Render a run record as the Markdown report (README.md) that sits in its run directory.

The report is built only from the record, so it can be rendered again from ``run.json``.
"""

from __future__ import annotations

import logging
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from flowids.evaluation import confusion_markdown, metrics_markdown, per_label_markdown

logger = logging.getLogger(__name__)

MISSING = "n/a"

_PLOT_CAPTIONS = {
    "learning_curves": "Learning curves: cross-entropy loss per epoch, training and validation",
    "precision": "Precision of the attack class per epoch",
    "recall": "Recall of the attack class per epoch",
    "roc": "ROC curve on the test split",
    "confusion_matrix": "Confusion matrix on the test split",
}


def render_run_readme(record: Mapping[str, Any]) -> str:
    """Render the Markdown report of one run.

    Parameters
    ----------
    record : mapping
        The run record as written to ``run.json``. Only ``run_id`` is required; every
        section whose keys are absent is left out.

    Returns
    -------
    str
        Markdown text ending in a newline, meant for ``README.md`` in the run directory.

    Notes
    -----
    Rates are shown with 4 decimals and counts with thousands separators; a missing or
    non-finite value (an ROC AUC on a test split with one class) reads ``n/a``.
    """
    sections = [
        f"# Run {record['run_id']}",
        _created_line(record),
        _summary(record),
        _data_section(record),
        _split_section(record),
        _preprocessing_section(record),
        _model_section(record),
        _training_section(record),
        *_evaluation_sections(record),
        _plots_section(record),
        _reproduce_section(record),
        _environment_section(record),
        _files_section(record),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def reproduce_command(record: Mapping[str, Any]) -> str:
    """Return the ``flowids train`` command line that repeats a run.

    Parameters
    ----------
    record : mapping
        A run record; uses ``data.files[].path``, ``preset``, ``optimizer``, ``split.name``
        and ``split.seed`` (or ``config.split`` and ``config.seed``) where present.

    Returns
    -------
    str
        One shell-quoted command line.
    """
    if record.get("command"):
        return str(record["command"])
    config = record.get("config") or {}
    split = record.get("split") or {}
    words = ["flowids", "train"]
    paths = [str(f["path"]) for f in _data_files(record) if "path" in f]
    if paths:
        words += ["--data", *paths]
    if record.get("preset"):
        words += ["--preset", str(record["preset"])]
    if record.get("model"):
        words += ["--model", str(record["model"])]
    split_name = split.get("name", config.get("split"))
    if split_name:
        words += ["--split", str(split_name)]
    seed = split.get("seed", config.get("seed"))
    if seed is not None:
        words += ["--seed", str(seed)]
    return shlex.join(words)


def count(value: Any) -> str:
    """Format a count with thousands separators (``12,345``), or ``n/a``."""
    if not _is_number(value):
        return MISSING
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{float(value):,.1f}"


def rate(value: Any) -> str:
    """Format a rate or probability with 4 decimals (``0.9876``), or ``n/a``."""
    if not _is_number(value):
        return MISSING
    return f"{float(value):.4f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """Return a Markdown table; ``align`` holds one ``l`` or ``r`` per column (default ``l``)."""
    align = align.ljust(len(header), "l")
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [_row(header), _row(rule)]
    lines += [_row([_cell(v) for v in r]) for r in rows]
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: Any) -> str:
    text = MISSING if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> str:
    """Format a setting as written in the config: no separators, so seeds stay readable."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "(none)"
    return str(value)


def _data_files(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((record.get("data") or {}).get("files") or [])


def _file_names(record: Mapping[str, Any]) -> list[str]:
    return [PurePath(str(f["path"])).name for f in _data_files(record) if "path" in f]


def _test_metrics(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return (record.get("metrics") or {}).get("test") or {}


def _created_line(record: Mapping[str, Any]) -> str:
    parts = []
    if record.get("created"):
        parts.append(f"Created {record['created']}")
    if record.get("flowids_version"):
        parts.append(f"flowids {record['flowids_version']}")
    return "_" + ", ".join(parts) + "._" if parts else ""


def _summary(record: Mapping[str, Any]) -> str:
    return " ".join(s for s in (_summary_setup(record), _summary_results(record)) if s)


def _summary_setup(record: Mapping[str, Any]) -> str:
    kind = record.get("kind", "train")
    verb = "trained" if kind == "train" else f"({kind}) used"
    text = f"This run {verb} a {record.get('model', 'model')} model"
    if record.get("preset"):
        text += f" from preset `{record['preset']}`"
    if record.get("optimizer"):
        text += f" with the {record['optimizer']} optimizer"
    names = _file_names(record)
    if names:
        kept = [f.get("flows_kept") for f in _data_files(record)]
        if all(_is_number(k) for k in kept):
            text += f" on {count(sum(kept))} flows"
        text += f" from {', '.join(names)}"
    split = record.get("split") or {}
    if split:
        text += (
            f", split {split.get('name', 'in an unrecorded way')}"
            f" (seed {_plain(split.get('seed'))}) into {count(split.get('train_flows'))}"
            f" training, {count(split.get('validation_flows'))} validation"
            f" and {count(split.get('test_flows'))} test flows"
        )
    return text + "."


def _summary_results(record: Mapping[str, Any]) -> str:
    m = _test_metrics(record)
    if not m:
        return "No test metrics were recorded."
    text = (
        f"On the {count(m.get('n_flows'))} test flows ({count(m.get('n_attack'))} attack,"
        f" {count(m.get('n_benign'))} benign) at threshold {rate(m.get('threshold'))} it reached"
        f" precision {rate(m.get('precision'))}, recall {rate(m.get('recall'))}"
        f" ({count(m.get('tp'))} of {count(m.get('n_attack'))} attack flows detected),"
        f" F1 {rate(m.get('f1'))} and a false-positive rate of"
        f" {rate(m.get('false_positive_rate'))} ({count(m.get('fp'))} of"
        f" {count(m.get('n_benign'))} benign flows called attacks), that is"
        f" {_per10k(m.get('false_alarms_per_10k_benign'))} false alarms per 10,000 benign flows."
    )
    if m.get("n_benign") == 0:
        text += (
            " The test part holds no benign flow, so it cannot measure false alarms; "
            "score benign flows with `flowids evaluate` for that."
        )
    elif m.get("n_attack") == 0:
        text += " The test part holds no attack flow, so it cannot measure recall."
    decision = record.get("decision") or {}
    if decision.get("rule") and decision["rule"] != "fixed":
        text += (
            f" The threshold was chosen by the rule `{decision['rule']}` on the"
            f" {count(decision.get('n_validation'))} validation flows."
        )
    twins = (record.get("split") or {}).get("test_twins_in_train")
    if _is_number(twins) and twins > 0:
        text += f" {count(twins)} test flows have an exact twin among the training flows."
    return text


def _per10k(value: Any) -> str:
    return f"{float(value):,.2f}" if _is_number(value) else MISSING


def _data_section(record: Mapping[str, Any]) -> str:
    data = record.get("data") or {}
    if not data:
        return ""
    parts = ["## Data"]
    files = _data_files(record)
    if files:
        rows = [
            [
                f"`{PurePath(str(f.get('path', '?'))).name}`",
                f.get("dialect"),
                count(f.get("rows_read")),
                count(f.get("flows_kept")),
                f"`{f['sha256']}`" if f.get("sha256") else None,
            ]
            for f in files
        ]
        header = ["file", "dialect", "rows read", "flows kept", "sha256"]
        parts.append(markdown_table(header, rows, "llrrl"))
    if data.get("labels"):
        parts += ["### Labels", _labels_table(data["labels"])]
    parts.append(_counted_table("Flows dropped", "reason", "flows", data.get("dropped")))
    parts.append(_counted_table("Values repaired", "repair", "values", data.get("repaired")))
    parts.append(_validity_table(data.get("validity")))
    return "\n\n".join(p for p in parts if p)


_RULE_MEANING = {
    "negative": "negative duration, time or rate",
    "sentinel": "-1 for an unseen TCP window (Init_Win_bytes)",
    "non-finite": "missing, NaN or Infinity",
}


def _validity_table(validity: Mapping[str, Any] | None) -> str:
    """The validity rules: what each found, in how many flows, and what the policy did."""
    if not validity:
        return ""
    rows = []
    for rule, found in validity.items():
        values = found.get("values") or {}
        top = ", ".join(f"`{name}` {count(n)}" for name, n in list(values.items())[:4])
        more = f", ... ({len(values) - 4} more)" if len(values) > 4 else ""
        rows.append(
            [
                _RULE_MEANING.get(rule, rule),
                found.get("action"),
                count(found.get("flows")),
                top + more,
            ]
        )
    return (
        "### Validity rules\n\nEach rule's action (keep, repair, drop or fail) is the run's "
        "`invalid` setting, applied the same way when the run scores new flows.\n\n"
        + markdown_table(["rule", "action", "flows", "values by feature"], rows, "llrl")
    )


def _labels_table(labels: Mapping[str, Any]) -> str:
    total = sum(v for v in labels.values() if _is_number(v))
    ordered = sorted(labels.items(), key=lambda kv: (-(kv[1] or 0), kv[0]))
    rows = [[label, count(n), rate(n / total) if total else MISSING] for label, n in ordered]
    return markdown_table(["label", "flows", "share"], rows, "lrr")


def _counted_table(title: str, what: str, unit: str, counts: Mapping[str, Any] | None) -> str:
    if counts is None:
        return ""
    if not counts:
        return f"### {title}\n\nNone."
    rows = [[reason, count(n)] for reason, n in counts.items()]
    return f"### {title}\n\n" + markdown_table([what, unit], rows, "lr")


def _split_section(record: Mapping[str, Any]) -> str:
    split = record.get("split") or {}
    if not split:
        return ""
    rows = [
        ["split", _plain(split.get("name"))],
        ["seed", _plain(split.get("seed"))],
        ["training flows", count(split.get("train_flows"))],
        ["validation flows", count(split.get("validation_flows"))],
        ["test flows", count(split.get("test_flows"))],
        ["test flows with a twin in training", count(split.get("test_twins_in_train"))],
    ]
    for reason, n in (split.get("removed") or {}).items():
        rows.append([f"removed before splitting: {reason}", count(n)])
    details = split.get("details") or {}
    for key, what in (("train_files", "training files"), ("test_files", "test files")):
        if details.get(key):
            rows.append([what, ", ".join(f"`{PurePath(str(p)).name}`" for p in details[key])])
    for key, what in (("train_time", "training period"), ("test_time", "test period")):
        if isinstance(details.get(key), Mapping):
            rows.append([what, f"{details[key].get('first')} to {details[key].get('last')}"])
    if details.get("test_flows_at_train_end"):
        rows.append(
            ["test flows at the last training time", count(details["test_flows_at_train_end"])]
        )
    text = "## Split\n\n" + markdown_table(["", "value"], rows, "lr")
    twins = split.get("test_twins_in_train")
    if _is_number(twins):
        text += "\n\n" + _twins_sentence(twins, split.get("test_flows"))
    duplicates = (split.get("details") or {}).get("duplicates")
    if duplicates:
        text += "\n\n" + _duplicates_sentence(duplicates, split.get("name"))
    return text


def _duplicates_sentence(duplicates: Mapping[str, Any], split_name: Any) -> str:
    text = (
        f"Before splitting, the flows held {count(duplicates.get('exact_duplicates'))} exact "
        "duplicate flow records (same features and label as an earlier one) and "
        f"{count(duplicates.get('conflicting_vectors'))} feature vectors seen with more than "
        f"one label ({count(duplicates.get('conflicting_flows'))} flows)."
    )
    if split_name != "dedup":
        text += " `--split dedup` removes both before splitting."
    return text


def _twins_sentence(twins: Any, test_flows: Any) -> str:
    share = f" ({100 * twins / test_flows:.1f} %)" if _is_number(test_flows) and test_flows else ""
    if twins == 0:
        return (
            "No test flow has an exact twin (the same feature vector) among the training flows, "
            "so the test scores measure flows the model has not seen."
        )
    return (
        f"{count(twins)} test flows{share} have an exact twin (the same feature vector) among "
        "the training flows. CIC-IDS2017 repeats many flows, so a model can score these by "
        "recall of its training data rather than by generalisation: the test metrics are an "
        "optimistic estimate. `--split dedup` keeps twins out of the test set and gives a "
        "fairer one."
    )


def _preprocessing_section(record: Mapping[str, Any]) -> str:
    prep = record.get("preprocessing") or {}
    if not prep:
        return ""
    dropped = prep.get("constant_features_dropped")
    rows = [
        ["features read", count(prep.get("n_features_in"))],
        ["features used", count(prep.get("n_features"))],
        ["non-finite values", _plain(prep.get("non_finite_rule"))],
        ["scaling", _plain(prep.get("scaling"))],
    ]
    text = "## Preprocessing\n\n" + markdown_table(["step", "setting"], rows, "ll")
    if dropped is not None:
        names = ", ".join(f"`{n}`" for n in dropped) or "none"
        text += f"\n\nConstant features dropped on the training flows ({len(dropped)}): {names}."
    return text + "\n\nAll of it is fitted on the training flows only and applied unchanged."


def _model_section(record: Mapping[str, Any]) -> str:
    layers = record.get("architecture") or []
    if not layers and "total_params" not in record:
        return ""
    parts = [f"## Model\n\nModel: {record.get('model', MISSING)}."]
    if record.get("estimator"):
        params = record.get("estimator_params") or {}
        rows = [[f"`{key}`", _plain(value)] for key, value in params.items()]
        parts.append(
            f"Estimator: `{record['estimator']}` with its library defaults, seeded; saved with "
            "skops."
        )
        if rows:
            parts.append(markdown_table(["parameter", "value"], rows, "ll"))
        return "\n\n".join(parts)
    if layers:
        rows = [
            [
                layer.get("name"),
                layer.get("type"),
                f"`{layer.get('output_shape', MISSING)}`",
                count(layer.get("params")),
            ]
            for layer in layers
        ]
        parts.append(markdown_table(["layer", "type", "output shape", "params"], rows, "lllr"))
    parts.append(
        f"Total parameters: {count(record.get('total_params'))};"
        f" trainable: {count(record.get('trainable_params'))}."
    )
    return "\n\n".join(parts)


def _training_section(record: Mapping[str, Any]) -> str:
    config = record.get("config") or {}
    training = record.get("training") or {}
    if not config and not training:
        return ""
    parts = ["## Optimizer and training settings"]
    rows = [[f"`{key}`", _plain(value)] for key, value in relevant_settings(config).items()]
    if rows:
        parts.append(markdown_table(["setting", "value"], rows, "ll"))
    if training:
        seconds = training.get("seconds")
        took = f"{float(seconds):,.1f} s" if _is_number(seconds) else MISSING
        epochs = training.get("epochs_run")
        what = f"ran {count(epochs)} epochs" if epochs else "fitted the model"
        compile_note = ", the first epoch's compilation included" if epochs else ""
        parts.append(
            f"Training {what} in {took} ({count(_round(training.get('flows_per_s')))} flows "
            f"per s{compile_note})."
        )
    return "\n\n".join(parts)


# Settings that only some models or rules read; the report shows them only where they apply.
_NETWORK_KEYS = {
    "timesteps",
    "lstm_units",
    "dense_units",
    "noise_stddev",
    "max_norm",
    "fwd_bias_l2",
    "dense_bias_l2",
    "optimizer",
    "learning_rate",
    "momentum",
    "clipnorm",
    "lr_decay",
    "loss",
    "epochs",
    "batch_size",
    "mlp_units",
    "window_key",
    "window_gap_s",
}
_BILSTM_ONLY = {
    "lstm_units",
    "dense_units",
    "noise_stddev",
    "max_norm",
    "fwd_bias_l2",
    "dense_bias_l2",
}


def relevant_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that shaped this run: those of its model, split and threshold rule."""
    model = config.get("model")
    skip = set()
    if model not in ("bilstm", "mlp"):
        skip |= _NETWORK_KEYS
    if model == "mlp":
        skip |= _BILSTM_ONLY
    if model == "bilstm":
        skip.add("mlp_units")
    if (config.get("timesteps") or 1) <= 1:
        skip |= {"window_key", "window_gap_s"}
    if config.get("threshold_rule") != "target-fpr":
        skip.add("target_fpr")
    if config.get("threshold_rule") not in (None, "fixed"):
        skip.add("threshold")
    return {key: value for key, value in config.items() if key not in skip}


def _round(value: Any) -> Any:
    return round(float(value)) if _is_number(value) else value


def _evaluation_sections(record: Mapping[str, Any]) -> list[str]:
    metrics_by_split = record.get("metrics") or {}
    sections = []
    for split_name in sorted(metrics_by_split, key=lambda s: (s != "test", s)):
        m = metrics_by_split[split_name]
        if not m:
            continue
        parts = [f"## Evaluation on the {split_name} split", metrics_markdown(m).strip()]
        if split_name == "test" and all(k in m for k in ("tn", "fp", "fn", "tp")):
            parts += ["### Confusion matrix (flows)", confusion_markdown(m).strip()]
        if split_name == "test" and m.get("per_label"):
            parts += ["### Per label", per_label_markdown(m).strip()]
        sections.append("\n\n".join(parts))
    prediction = record.get("prediction") or {}
    if sections and _is_number(prediction.get("flows_per_s")):
        sections[0] += (
            f"\n\nPrediction speed: {count(_round(prediction['flows_per_s']))} flows per s."
        )
    return sections


def _plots_section(record: Mapping[str, Any]) -> str:
    plots = record.get("plots") or {}
    if not plots:
        return ""
    images = []
    for key, file_name in plots.items():
        caption = _PLOT_CAPTIONS.get(key, key.replace("_", " ").capitalize())
        images.append(f"![{caption}]({file_name})")
    return "## Plots\n\n" + "\n\n".join(images)


def _reproduce_section(record: Mapping[str, Any]) -> str:
    text = "## Reproduce\n\n```sh\n" + reproduce_command(record) + "\n```"
    if _data_files(record):
        text += "\n\nThe data files must match the sha256 sums listed under Data."
    return text


def _environment_section(record: Mapping[str, Any]) -> str:
    env = record.get("environment") or {}
    if not env and not record.get("flowids_version"):
        return ""
    rows = []
    if record.get("flowids_version") and "flowids" not in env:
        rows.append(["flowids", record["flowids_version"]])
    rows += [[name, _plain(version)] for name, version in env.items()]
    return "## Environment\n\n" + markdown_table(["component", "version"], rows, "ll")


def _files_section(record: Mapping[str, Any]) -> str:
    files = record.get("files") or {}
    if not files:
        return ""
    lines = [f"- {what}: [`{name}`]({name})" for what, name in files.items()]
    return "## Files\n\n- run record: [`run.json`](run.json)\n" + "\n".join(lines)


_COMPARISON_HEADER = [
    "run",
    "model",
    "preset",
    "split",
    "data",
    "precision",
    "recall",
    "F1",
    "false-positive rate",
    "false alarms per 10,000 benign",
    "ROC AUC",
    "training s",
    "prediction flows per s",
]


def render_comparison_markdown(frame: Any) -> str:
    """Render the table of :func:`flowids.runs.compare_runs` as a Markdown page.

    Parameters
    ----------
    frame : DataFrame of shape (n_runs, 12)
        Indexed by run id, with the columns of ``flowids.runs.COMPARE_COLUMNS``.

    Returns
    -------
    str
        Markdown text with the table and the ``comparison.png`` chart embedded.
    """
    rows = []
    for run_id, r in frame.iterrows():
        seconds = r["training_seconds"]
        rows.append(
            [
                f"`{run_id}`",
                r["model"],
                r["preset"],
                r["split"],
                r["data"],
                *(rate(r[c]) for c in ("precision", "recall", "f1", "false_positive_rate")),
                _per10k(r["false_alarms_per_10k_benign"]),
                rate(r["roc_auc"]),
                f"{float(seconds):,.1f}" if _is_number(seconds) else MISSING,
                count(_round(r["prediction_flows_per_s"])),
            ]
        )
    table = markdown_table(_COMPARISON_HEADER, rows, "lllll" + "r" * 8)
    return (
        "# Comparison of runs\n\nResults on each run's test split; `n/a` where a run did not "
        "record the value or it is undefined.\n\n"
        + table
        + "\n\n![Precision, recall and F1 per run](comparison.png)\n"
    )
