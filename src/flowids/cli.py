# SPDX-License-Identifier: Apache-2.0
"""The flowids command line: parse options, call the library, report.

Exit status: 0 on success, 2 on a usage error or bad input, 1 on any other failure. Errors
print as one ``error: ...`` line; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tomllib
from pathlib import Path

from flowids import __version__
from flowids.errors import FlowidsError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_RUNS_DIR = Path("runs")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="also log per-chunk detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=DEFAULT_RUNS_DIR,
        metavar="DIR",
        help="directory that holds run records (default: %(default)s)",
    )


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that score files with a trained run."""
    parser.add_argument(
        "--allow-other-producer",
        action="store_true",
        help="score flows from a producer other than the one the run was trained on",
    )
    _add_invalid(parser, "the policy the run was trained with")
    _add_runs_dir(parser)
    _add_common(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="flowids",
        description="Train, evaluate and apply a BiLSTM detector of attack traffic on "
        "CICFlowMeter flow records.",
    )
    parser.add_argument("--version", action="version", version=f"flowids {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train a detector and write a run record",
        description="Read labelled flow CSVs, split them, fit preprocessing and the network on "
        "the training part, evaluate on the test part and write a run record. The run "
        "directory is printed as the last line of standard output.",
    )
    train.add_argument(
        "--data",
        nargs="+",
        action="extend",
        required=True,
        metavar="PATH",
        help="flow CSV files (plain or .gz), directories or glob patterns",
    )
    train.add_argument(
        "--preset", default="seed-20200924", help="named settings (default: %(default)s)"
    )
    train.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file overriding the preset"
    )
    train.add_argument(
        "--model",
        metavar="NAME",
        help="detector: bilstm (the preset's), mlp, random-forest, gradient-boosting, "
        "logistic-regression",
    )
    train.add_argument(
        "--split",
        metavar="NAME",
        help="random (stratified), dedup (duplicates and label conflicts removed first), "
        "time (by timestamp), files (test on --test-data)",
    )
    train.add_argument(
        "--test-data",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="with --split files: the flow files that form the test part",
    )
    train.add_argument(
        "--threshold-rule",
        metavar="RULE",
        help="how the threshold is chosen on validation flows: fixed (--threshold), best-f1, "
        "target-fpr (--target-fpr)",
    )
    train.add_argument(
        "--target-fpr",
        type=float,
        metavar="F",
        help="false-positive rate the target-fpr rule aims for, e.g. 0.001",
    )
    train.add_argument(
        "--repeats",
        type=int,
        default=1,
        metavar="N",
        help="train N times with seeds seed, seed+1, ... and report mean and spread",
    )
    train.add_argument("--epochs", type=int, metavar="N", help="training epochs")
    train.add_argument("--batch-size", type=int, metavar="N", help="flows per training batch")
    train.add_argument("--learning-rate", type=float, metavar="RATE", help="initial learning rate")
    train.add_argument("--seed", type=int, metavar="N", help="seed of the split and the network")
    train.add_argument(
        "--test-fraction", type=float, metavar="F", help="share of flows held out for testing"
    )
    train.add_argument(
        "--validation-fraction",
        type=float,
        metavar="F",
        help="share of the training part (its end) used for validation",
    )
    train.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="attack probability from which a flow is an attack",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set lstm_units=[32,16,8] (repeatable)",
    )
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_invalid(train, "the preset's: negative=keep,sentinel=keep,non-finite=repair")
    _add_runs_dir(train)
    _add_common(train)

    predict = commands.add_parser(
        "predict",
        help="score flow files with a trained run",
        description="Score every flow of the given files with a run's saved model, "
        "preprocessing and threshold, and write one line per flow. With labelled input the "
        "evaluation is printed too.",
    )
    predict.add_argument(
        "files", nargs="+", metavar="FILE", help="flow CSV files, directories or globs"
    )
    predict.add_argument("--run", required=True, help="run directory, run id, or 'latest'")
    predict.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help="output file: CSV, or JSON lines if it ends in .jsonl or .json; gzip if it ends "
        "in .gz",
    )
    predict.add_argument(
        "--chunk-flows",
        type=int,
        default=200_000,
        metavar="N",
        help="flows read and scored at a time; bounds memory (default: %(default)s)",
    )
    _add_scoring_options(predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained run on labelled files: the transfer table",
        description="Score a run on any labelled flow files (other days, other datasets) and "
        "print one row per file: TN, FP, FN, TP, precision, recall, F1, false-positive rate, "
        "false alarms per 10,000 benign flows, ROC-AUC, and recall per attack label.",
    )
    evaluate.add_argument("files", nargs="+", metavar="FILE", help="labelled flow CSV files")
    evaluate.add_argument("--run", required=True, help="run directory, run id, or 'latest'")
    evaluate.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="also write transfer.md, transfer.csv and transfer.json here",
    )
    _add_scoring_options(evaluate)

    runs = commands.add_parser("runs", help="list, show or compare run records")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = runs_commands.add_parser("list", help="list complete runs, newest first")
    _add_runs_dir(runs_list)
    _add_common(runs_list)
    runs_show = runs_commands.add_parser("show", help="summarise one run")
    runs_show.add_argument("run", help="run directory, run id, or 'latest'")
    _add_runs_dir(runs_show)
    _add_common(runs_show)
    runs_compare = runs_commands.add_parser("compare", help="compare runs side by side")
    runs_compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories or ids")
    runs_compare.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="also write comparison.md, comparison.csv and comparison.png here",
    )
    _add_runs_dir(runs_compare)
    _add_common(runs_compare)

    presets = commands.add_parser("presets", help="list the named presets")
    _add_common(presets)

    inspect = commands.add_parser(
        "inspect",
        help="write a data-quality report on flow files",
        description="Read flow CSVs as training would, changing nothing, and write a Markdown "
        "report with plots: flows per file and label, distinct values, missing and non-finite "
        "rates and constant columns per feature, validity breaches, duplicates and conflicting "
        "labels, producers and time span, and the features that best separate benign from "
        "attack flows.",
    )
    inspect.add_argument(
        "files", nargs="+", metavar="FILE", help="flow CSV files, directories or globs"
    )
    inspect.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder for report.md, inspect.json and the PNG plots (created if missing)",
    )
    inspect.add_argument(
        "--top",
        type=int,
        default=6,
        metavar="N",
        help="most separating features to plot (default: %(default)s)",
    )
    _add_common(inspect)

    _add_extract_parser(commands)
    _add_detect_parser(commands)
    return parser


def _add_flow_settings(parser: argparse.ArgumentParser) -> None:
    """Flow timeouts shared by `extract` and `detect` (defaults: the Java CICFlowMeter's)."""
    parser.add_argument(
        "--active-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="a flow ends this long after its first packet (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="a flow ends after this long without packets (default: %(default)s)",
    )
    parser.add_argument(
        "--activity-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="gap that ends an active period, for the Active/Idle features (default: %(default)s)",
    )
    parser.add_argument(
        "--no-fin-end",
        action="store_true",
        help="do not end a TCP flow at its first FIN (CICFlowMeter does)",
    )


def _add_extract_parser(commands) -> None:
    extract = commands.add_parser(
        "extract",
        help="turn packet captures into CIC-IDS2017 flow records",
        description="Read pcap or pcapng files with NFStream and write their flows as a CSV "
        "with the CIC-IDS2017 columns, names and units, which `train`, `predict` and "
        "`evaluate` read. Counts of packets read, skipped (with reasons) and flows are printed.",
    )
    extract.add_argument(
        "pcaps", nargs="+", metavar="PCAP", help="capture files, directories or globs"
    )
    extract.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FLOWS.csv", help="CSV to write"
    )
    extract.add_argument(
        "--label", metavar="TEXT", help="add a Label column holding TEXT on every flow"
    )
    _add_flow_settings(extract)
    _add_common(extract)


def _add_detect_parser(commands) -> None:
    detect = commands.add_parser(
        "detect",
        help="score flows from captures or a live interface and write EVE alerts",
        description="Turn packets into flows, score them with a trained run and write every "
        "flow at or above the run's threshold as a JSON line in the Suricata EVE alert shape. "
        "With --interface, capture until Ctrl-C (or --duration), printing counters on "
        "standard error; flows are scored as they time out.",
    )
    detect.add_argument(
        "pcaps", nargs="*", metavar="PCAP", help="capture files, directories or globs"
    )
    detect.add_argument("--interface", metavar="IFACE", help="capture live from this interface")
    detect.add_argument("--run", required=True, help="run directory, run id, or 'latest'")
    detect.add_argument(
        "-o", "--output", required=True, type=Path, metavar="ALERTS.jsonl", help="alerts file"
    )
    detect.add_argument(
        "--flows-out", type=Path, metavar="FLOWS.csv", help="also write every scored flow"
    )
    detect.add_argument(
        "--duration", type=float, metavar="S", help="live: stop after this many seconds"
    )
    detect.add_argument(
        "--stats-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="live: seconds between counter lines (default: %(default)s)",
    )
    detect.add_argument("--bpf", metavar="FILTER", help="live: BPF capture filter")
    detect.add_argument(
        "--allow-other-producer",
        action="store_true",
        help="score even if the run was trained on flows of another producer",
    )
    _add_flow_settings(detect)
    _add_runs_dir(detect)
    _add_common(detect)


def _add_invalid(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--invalid",
        metavar="POLICY",
        help="what to do with negative values, -1 window sentinels and non-finite values: "
        "repair, drop or fail, or RULE=ACTION items, e.g. drop,sentinel=keep "
        f"(default: {default})",
    )


def _use_validity(run, text: str | None) -> None:
    """Read flows for ``run`` with the policy ``text`` instead of the one it was trained with."""
    if text is None:
        return
    from flowids.data.validity import ValidityPolicy

    policy = ValidityPolicy.parse(text)
    if policy != run.preprocessor.validity:
        logger.warning(
            "reading flows with validity policy %s; the run was trained with %s",
            policy.text(),
            run.preprocessor.validity.text(),
        )
    run.preprocessor.validity_ = policy.to_dict()


def _parse_setting(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE`` with VALUE in TOML syntax (bare words are strings)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {text!r}: expected KEY=VALUE, e.g. --set epochs=10")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def _check_runs_dir(runs_dir: Path) -> None:
    """Refuse a runs directory that cannot be written, before any training starts."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--runs-dir {runs_dir}: cannot create it ({exc.strerror})") from None
    if not os.access(runs_dir, os.W_OK):
        raise UsageError(f"--runs-dir {runs_dir}: not writable")


def cmd_train(args: argparse.Namespace) -> int:
    from flowids.models.presets import resolve_config
    from flowids.training import train_run

    _check_runs_dir(args.runs_dir)
    overrides = dict(_parse_setting(text) for text in args.set)
    overrides.update(
        {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
            "test_fraction": args.test_fraction,
            "validation_fraction": args.validation_fraction,
            "threshold": args.threshold,
            "model": args.model,
            "split": args.split,
            "threshold_rule": args.threshold_rule,
            "invalid": args.invalid,
            "target_fpr": args.target_fpr,
        }
    )
    config = resolve_config(args.preset, args.config, overrides)
    if args.repeats < 1:
        raise UsageError(f"--repeats {args.repeats}: expected an integer >= 1")
    if args.test_data and config.split != "files":
        raise UsageError("--test-data needs --split files (it names the files tested on)")
    command = shlex.join(["flowids", *sys.argv[1:]])
    progress = not args.no_progress and not args.quiet

    from dataclasses import replace

    from flowids.runs import show_run

    run_dirs = []
    for repeat in range(args.repeats):
        seeded = replace(config, seed=config.seed + repeat)
        run_dirs.append(
            train_run(
                args.data,
                seeded,
                args.runs_dir,
                args.preset,
                command,
                progress,
                test_paths=args.test_data,
            )
        )
        print(show_run(run_dirs[-1]))
    if len(run_dirs) > 1:
        print(_repeats_summary(run_dirs))
    for run_dir in run_dirs:
        print(run_dir)
    return 0


def _repeats_summary(run_dirs: list[Path]) -> str:
    """Mean and standard deviation of the test metrics over repeated runs."""
    from flowids.runs import compare_runs

    frame = compare_runs(run_dirs)
    columns = ["precision", "recall", "f1", "false_positive_rate", "roc_auc"]
    lines = [f"over {len(run_dirs)} seeds: metric mean (std, min-max)"]
    for column in columns:
        values = frame[column].astype(float)
        lines.append(
            f"  {column:<20} {values.mean():.4f} ({values.std(ddof=1):.4f}, "
            f"{values.min():.4f}-{values.max():.4f})"
        )
    return "\n".join(lines)


def _print_metrics(metrics: dict) -> None:
    from flowids.evaluation import confusion_markdown, metrics_markdown, per_label_markdown

    print(metrics_markdown(metrics))
    print()
    print(confusion_markdown(metrics))
    if metrics.get("per_label"):
        print()
        print(per_label_markdown(metrics))


def cmd_predict(args: argparse.Namespace) -> int:
    from flowids.predict import check_output_path, load_trained_run, predict_files
    from flowids.runs import resolve_run

    output = check_output_path(args.output)
    if args.chunk_flows < 1:
        raise UsageError(f"--chunk-flows {args.chunk_flows}: expected a positive number")
    run = load_trained_run(resolve_run(args.run, args.runs_dir))
    _use_validity(run, args.invalid)
    summary = predict_files(
        run,
        args.files,
        output,
        args.chunk_flows,
        args.allow_other_producer,
        progress=not args.quiet,
    )

    print(f"run: {run.path}")
    print(f"threshold: {run.threshold}")
    for path, counts in summary.per_file.items():
        print(f"{path}: {counts['flows']:,} flows, {counts['attacks']:,} called attack")
    print(f"total: {summary.flows:,} flows, {summary.attacks:,} called attack")
    if summary.metrics is not None:
        print()
        _print_metrics(summary.metrics)
    print(f"wrote {summary.output}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flowids.predict import evaluate_files, load_trained_run
    from flowids.runs import resolve_run
    from flowids.transfer import transfer_markdown, transfer_table, write_transfer

    run = load_trained_run(resolve_run(args.run, args.runs_dir))
    _use_validity(run, args.invalid)
    results = evaluate_files(run, args.files, allow_other_producer=args.allow_other_producer)
    frame = transfer_table(results)

    print(transfer_markdown(frame, run.path.name, run.threshold))
    if args.output:
        write_transfer(frame, results, args.output, run.path.name, run.threshold)
        print(f"wrote {args.output / 'transfer.md'}, transfer.csv, transfer.json")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from flowids import runs

    if args.runs_command == "list":
        table = runs.list_runs(args.runs_dir)
        if table.empty:
            print(f"no complete runs under {args.runs_dir}")
            return 0
        shown = table.drop(columns=["path"], errors="ignore")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    elif args.runs_command == "show":
        print(runs.show_run(runs.resolve_run(args.run, args.runs_dir)))
    else:
        paths = [runs.resolve_run(spec, args.runs_dir) for spec in args.runs]
        frame = runs.compare_runs(paths, args.output)
        print(frame.to_string(float_format=lambda v: f"{v:.4f}"))
        if args.output:
            print(f"wrote {args.output / 'comparison.md'}, comparison.csv, comparison.png")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from flowids.inspect import inspect_files

    report = inspect_files(args.files, args.output, top=args.top)
    print(f"wrote {report}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from flowids.models.presets import get_preset, list_presets

    for name, description in list_presets().items():
        print(f"{name}: {description}")
        print(json.dumps(get_preset(name).to_dict(), indent=2))
    return 0


def _flow_settings(args: argparse.Namespace):
    from flowids.features.packets import ExtractSettings

    return ExtractSettings(
        active_timeout_s=args.active_timeout,
        idle_timeout_s=args.idle_timeout,
        activity_timeout_s=args.activity_timeout,
        end_on_fin=not args.no_fin_end,
    )


def cmd_extract(args: argparse.Namespace) -> int:
    from flowids.features.packets import extract_flows

    report = extract_flows(args.pcaps, args.output, _flow_settings(args), label=args.label)
    for capture in report.captures:
        print(capture.summary())
    rate = report.packets_read / report.seconds if report.seconds else 0.0
    print(
        f"total: {report.packets_read:,} packets, {report.packets_skipped:,} skipped, "
        f"{report.flows_written:,} flows in {report.seconds:.2f} s ({rate:,.0f} packets/s)"
    )
    print(f"wrote {report.output}")
    return 0


def _print_live_counters(stats: dict) -> None:
    print(
        f"packets {stats['packets_read']:,} | flows {stats['flows']:,} "
        f"(active {stats['active_flows']:,}) | alerts {stats['alerts']:,} | "
        f"dropped {stats['dropped']:,}",
        file=sys.stderr,
        flush=True,
    )


def cmd_detect(args: argparse.Namespace) -> int:
    from flowids.detect import detect
    from flowids.runs import resolve_run

    if bool(args.pcaps) == bool(args.interface):
        raise UsageError("give capture files or --interface IFACE (one of the two)")
    live_options = {"stats_interval_s": args.stats_interval, "duration_s": args.duration}
    if args.bpf:
        live_options["bpf_filter"] = args.bpf
    report = detect(
        resolve_run(args.run, args.runs_dir),
        args.output,
        pcaps=args.pcaps or None,
        interface=args.interface,
        flows_out=args.flows_out,
        settings=_flow_settings(args),
        live_options=live_options,
        allow_other_producer=args.allow_other_producer,
        on_stats=_print_live_counters,
    )

    print(f"run: {report.run_id} (threshold {report.threshold:g})")
    for capture in report.captures:
        print(capture.summary())
    print(f"total: {report.flows:,} flows scored, {report.alerts:,} alerts")
    print(f"wrote {report.output}" + (f" and {report.flows_output}" if report.flows_output else ""))
    return 0


_COMMANDS = {
    "train": cmd_train,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "runs": cmd_runs,
    "presets": cmd_presets,
    "inspect": cmd_inspect,
    "extract": cmd_extract,
    "detect": cmd_detect,
}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("flowids")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return _COMMANDS[args.command](args)
    except FlowidsError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`flowids runs list | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
