# SPDX-License-Identifier: Apache-2.0
"""Tests of windows of related flows: builder, streaming state, masking, training, prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowids.cli import main
from flowids.data.readers import read_flows
from flowids.errors import DataError, UsageError
from flowids.features.windows import (
    MASK_VALUE,
    FlowWindows,
    WindowSettings,
    WindowState,
    build_windows,
    flow_keys,
    table_windows,
    window_index,
)
from flowids.models.bilstm import build_bilstm, seed_everything
from flowids.models.presets import resolve_config
from flowids.predict import load_trained_run, predict_files
from flowids.splits import flow_times, make_split

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GLF = SHARED / "data" / "cicids2017"
GLF_FILES = [
    GLF / "friday_ddos_only_1000_glf.csv",
    GLF / "friday_ddos_file_head_299_glf.csv",
    GLF / "friday_portscan_only_1000_glf.csv",
]
CASES = SHARED / "cases"


def _seconds(*values: float) -> np.ndarray:
    base = np.datetime64("2017-07-07T15:00:00", "ns")
    return base + (np.asarray(values) * 1e9).astype("timedelta64[ns]")


# Six flows of two keys, given out of time order. By (time, row): 2, 1, 0, 3, 5, 4;
# key a is 2 (0 s), 0 (10 s), 3 (20 s), 5 (20 s); key b is 1 (5 s), 4 (30 s).
KEYS = np.array(["a", "b", "a", "a", "b", "a"], dtype=object)
TIMES = _seconds(10, 5, 0, 20, 30, 20)


# --- the window builder ------------------------------------------------------------------


def test_windows_hold_predecessors_of_the_same_key_in_time_order() -> None:
    index = window_index(KEYS, TIMES, WindowSettings(3, gap_s=None))

    np.testing.assert_array_equal(
        index,
        [
            [-1, 2, 0],
            [-1, -1, 1],
            [-1, -1, 2],
            [2, 0, 3],
            [-1, 1, 4],
            [0, 3, 5],
        ],
    )


def test_ties_in_time_are_broken_by_row() -> None:
    # flows 3 and 5 start in the same second; with rows reversed, 5 comes first
    rows = np.array([0, 1, 2, 9, 4, 8])

    index = window_index(KEYS, TIMES, WindowSettings(3, gap_s=None), rows)

    np.testing.assert_array_equal(index[5], [2, 0, 5])
    np.testing.assert_array_equal(index[3], [0, 5, 3])


def test_a_gap_longer_than_gap_s_starts_a_new_sequence() -> None:
    # consecutive flows of key a are 10 s, 10 s and 0 s apart; of key b 25 s
    at_limit = window_index(KEYS, TIMES, WindowSettings(3, gap_s=25.0))
    below = window_index(KEYS, TIMES, WindowSettings(3, gap_s=9.0))
    no_gap = window_index(KEYS, TIMES, WindowSettings(3, gap_s=None))

    np.testing.assert_array_equal(at_limit, no_gap)
    np.testing.assert_array_equal(
        below,
        [
            [-1, -1, 0],
            [-1, -1, 1],
            [-1, -1, 2],
            [-1, -1, 3],
            [-1, -1, 4],
            [-1, 3, 5],
        ],
    )


def test_one_timestep_is_each_flow_alone() -> None:
    index = window_index(KEYS, TIMES, WindowSettings(1))

    np.testing.assert_array_equal(index, np.arange(6).reshape(6, 1))


def test_keys_by_setting_and_flows_without_a_key() -> None:
    identifiers = pd.DataFrame(
        {
            "src_ip": ["10.0.0.1", "10.0.0.1", "10.0.0.2", "", "10.0.0.1"],
            "dst_ip": ["10.0.0.9", "10.0.0.9", "10.0.0.9", "10.0.0.9", "10.0.0.8"],
            "dst_port": ["80", "443", "80", "80", "80"],
        }
    )

    by_flow = flow_keys(identifiers, "src-dst-port")
    by_target = flow_keys(identifiers, "dst")
    by_source = flow_keys(identifiers, "src")

    assert pd.factorize(by_flow)[0].tolist() == [0, 1, 2, -1, 3]
    assert pd.factorize(by_target)[0].tolist() == [0, 1, 0, 0, 2]
    assert pd.factorize(by_source)[0].tolist() == [0, 0, 1, -1, 0]
    # two flows without a source IP never share a window
    keys = np.array([None, None, "a"], dtype=object)
    index = window_index(keys, _seconds(0, 1, 2), WindowSettings(2, gap_s=None))
    np.testing.assert_array_equal(index, [[-1, 0], [-1, 1], [-1, 2]])


def test_flows_of_different_files_never_share_a_key() -> None:
    identifiers = pd.DataFrame({"src_ip": ["10.0.0.1"] * 2})

    keys = flow_keys(identifiers, "src", files=np.array(["a.csv", "b.csv"]))

    assert keys[0] != keys[1]


def test_build_windows_pads_on_the_left_with_the_mask_value() -> None:
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    index = window_index(KEYS, TIMES, WindowSettings(3, gap_s=None))

    windows = build_windows(x, index)

    assert windows.shape == (6, 3, 2)
    assert windows.dtype == np.float32
    np.testing.assert_array_equal(windows[0], [[MASK_VALUE, MASK_VALUE], [4, 5], [0, 1]])
    np.testing.assert_array_equal(windows[5], [[0, 1], [6, 7], [10, 11]])
    np.testing.assert_array_equal(FlowWindows(x, index).context_lengths(), [2, 1, 1, 3, 2, 3])


def test_a_flow_that_looks_like_padding_is_refused() -> None:
    x = np.zeros((2, 3), dtype=np.float32)
    x[1] = MASK_VALUE

    with pytest.raises(DataError, match=r"1 preprocessed flow\(s\), first at position 1, have"):
        build_windows(x, np.array([[-1, 0], [0, 1]]))


def test_settings_are_checked_and_round_trip() -> None:
    settings = WindowSettings(8, "dst", 30.0)

    assert WindowSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(UsageError, match=r"window key 'port' is not known; expected one of"):
        WindowSettings(8, "port")
    with pytest.raises(UsageError, match=r"gap_s = 0.0; expected a number of seconds > 0"):
        WindowSettings(8, gap_s=0.0)
    with pytest.raises(UsageError, match=r"timesteps = 0; expected an integer >= 1"):
        WindowSettings(0)


def test_windows_preset_and_config_rules() -> None:
    config = resolve_config("windows-t8")

    assert (config.timesteps, config.window_key, config.window_gap_s) == (8, "src-dst-port", 120.0)
    assert WindowSettings.from_config(config) == WindowSettings(8, "src-dst-port", 120.0)
    assert WindowSettings.from_config(resolve_config()) is None
    with pytest.raises(UsageError, match=r"window_key = 'port' is not valid; expected one of"):
        resolve_config(overrides={"window_key": "port"})
    with pytest.raises(UsageError, match=r"window_gap_s = 0 is not valid; expected a number"):
        resolve_config(overrides={"window_gap_s": 0})
    mlp = resolve_config("windows-t8", overrides={"model": "mlp"})
    with pytest.raises(UsageError, match=r"only the bilstm model reads; model is 'mlp'"):
        WindowSettings.from_config(mlp)


# --- streaming ---------------------------------------------------------------------------


def _stream_fixture(n_flows: int = 240, seed: int = 3):
    rng = np.random.default_rng(seed)
    keys = rng.choice(np.array(["a", "b", "c", "d", None], dtype=object), n_flows)
    seconds = np.sort(rng.integers(0, 1200, n_flows)) // 30 * 30  # many ties
    x = rng.standard_normal((n_flows, 4)).astype(np.float32)
    return keys, _seconds(*seconds), x


@pytest.mark.parametrize("gap_s", [None, 45.0])
@pytest.mark.parametrize("cuts", [(1, 2, 3), (7, 50, 51, 120), (239,)])
def test_streamed_windows_equal_batch_windows(gap_s, cuts) -> None:
    keys, times, x = _stream_fixture()
    settings = WindowSettings(4, gap_s=gap_s)
    expected = build_windows(x, window_index(keys, times, settings))
    state = WindowState(settings)

    parts = []
    for chunk in np.split(np.arange(len(keys)), cuts):
        parts.append(state.push(keys[chunk], times[chunk], x[chunk], rows=chunk).gather())

    np.testing.assert_array_equal(np.concatenate(parts), expected)
    assert state.n_held <= (settings.timesteps - 1) * state.n_keys


def test_state_drops_keys_idle_past_the_gap() -> None:
    settings = WindowSettings(3, gap_s=60.0)
    state = WindowState(settings)
    x = np.eye(4, dtype=np.float32)

    state.push(np.array(["a", "a"], dtype=object), _seconds(0, 10), x[:2])
    assert (state.n_keys, state.n_held) == (1, 2)
    state.push(np.array(["b"], dtype=object), _seconds(100), x[2:3])
    later = state.push(np.array(["a"], dtype=object), _seconds(200), x[3:4])

    assert (state.n_keys, state.n_held) == (1, 1)  # a was dropped at 100 s, then came back
    np.testing.assert_array_equal(later.context_lengths(), [1])


def test_state_keeps_at_most_max_keys() -> None:
    settings = WindowSettings(3, gap_s=None, max_keys=2)
    state = WindowState(settings)
    x = np.eye(6, dtype=np.float32)

    for position, key in enumerate("abcab"):
        windows = state.push(np.array([key], dtype=object), _seconds(position), x[[position]])

    assert state.n_keys == 2
    assert state.evicted == 3  # a (at c), b (at a again), c (at b again)
    np.testing.assert_array_equal(windows.context_lengths(), [1])


# --- masking in the network -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_networks():
    """The windows network (8 steps) and the same weights reading 3 steps and 1 step."""
    overrides = {"lstm_units": [4, 3], "dense_units": 3}
    seed_everything(5)
    eight = build_bilstm(5, resolve_config("windows-t8", overrides=overrides))
    three = build_bilstm(5, resolve_config("windows-t8", overrides={**overrides, "timesteps": 3}))
    one = build_bilstm(5, resolve_config(overrides=overrides))
    three.set_weights(eight.get_weights())
    one.set_weights(eight.get_weights())
    return eight, three, one


def test_padded_window_scores_as_the_shorter_sequence(small_networks) -> None:
    eight, three, one = small_networks
    flows = np.random.default_rng(1).standard_normal((4, 3, 5)).astype(np.float32)
    padded = np.full((4, 8, 5), MASK_VALUE, dtype=np.float32)
    padded[:, 5:] = flows
    alone = np.full((4, 8, 5), MASK_VALUE, dtype=np.float32)
    alone[:, 7] = flows[:, 2]

    np.testing.assert_allclose(
        eight.predict_on_batch(padded), three.predict_on_batch(flows), atol=1e-6
    )
    np.testing.assert_allclose(
        eight.predict_on_batch(alone), one.predict_on_batch(flows[:, 2:]), atol=1e-6
    )
    # the context changes the score: the mask is not hiding every step
    assert not np.allclose(eight.predict_on_batch(padded), eight.predict_on_batch(alone))


def test_windows_network_adds_only_the_mask_layer() -> None:
    model = build_bilstm(68, resolve_config("windows-t8"))

    names = [layer.name for layer in model.layers]
    assert names[:4] == ["flows", "padding_mask", "bilstm_1", "noise_1"]
    assert model.get_layer("padding_mask").mask_value == MASK_VALUE
    assert model.input_shape == (None, 8, 68)
    assert model.count_params() == 121_202  # as seed-20200924 on 68 features


# --- no leakage across the split ---------------------------------------------------------


def test_time_split_test_windows_hold_only_test_period_flows() -> None:
    table = read_flows(GLF_FILES)
    settings = WindowSettings(8)
    split = make_split(table, "time", test_fraction=0.3, seed=1)
    x = np.random.default_rng(0).standard_normal((len(table), 3)).astype(np.float32)
    times = flow_times(table)

    test = table_windows(table.take(split.test), x[split.test], settings)
    whole = table_windows(table, x, settings)

    held = split.test[test.index[test.index >= 0]]
    assert set(held.tolist()) <= set(split.test.tolist())
    assert times[held].min() >= times[split.test].min()
    assert (test.context_lengths() > 1).sum() > 100  # the windows do hold related flows
    # over the whole table, some test flows would have had training flows in their windows
    in_train = np.isin(whole.index[split.test], split.train)
    assert in_train.any()


# --- training and prediction end to end ---------------------------------------------------


@pytest.fixture(scope="module")
def windows_run(tmp_path_factory) -> Path:
    """A short run of the windows preset on GLF samples (one small BiLSTM layer for speed)."""
    runs = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "train",
            "--data",
            *map(str, GLF_FILES),
            "--preset",
            "windows-t8",
            "--epochs",
            "2",
            "--set",
            "lstm_units=[8]",
            "--set",
            "dense_units=4",
            "--runs-dir",
            str(runs),
            "-q",
        ]
    )
    assert code == 0
    (path,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    return path


def test_run_records_the_window_settings(windows_run: Path) -> None:
    config = json.loads((windows_run / "config.json").read_text())
    decision = json.loads((windows_run / "decision.json").read_text())
    record = json.loads((windows_run / "run.json").read_text())

    assert (config["timesteps"], config["window_key"], config["window_gap_s"]) == (
        8,
        "src-dst-port",
        120.0,
    )
    assert decision["windows"]["timesteps"] == 8
    assert decision["windows"]["key_columns"] == ["src_ip", "dst_ip", "dst_port"]
    assert decision["windows"]["mask_value"] == MASK_VALUE
    assert record["architecture"][0]["name"] == "padding_mask"
    assert load_trained_run(windows_run).windows == WindowSettings(8, "src-dst-port", 120.0)


def test_streamed_prediction_equals_the_batch_score(windows_run: Path, tmp_path: Path) -> None:
    run = load_trained_run(windows_run)
    test_flows = windows_run / "test_flows.csv.gz"
    recorded = json.loads((windows_run / "metrics.json").read_text())["test"]

    summary = predict_files(run, [test_flows], tmp_path / "scores.csv", chunk_flows=37)
    streamed = pd.read_csv(tmp_path / "scores.csv")["attack_probability"].to_numpy()
    batch = run.score_table(read_flows([test_flows]))

    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-7)
    for key in ("tn", "fp", "fn", "tp", "n_flows"):
        assert summary.metrics[key] == recorded[key]
    assert summary.metrics["roc_auc"] == pytest.approx(recorded["roc_auc"], abs=1e-9)


def test_windowed_run_refuses_bare_features(windows_run: Path) -> None:
    run = load_trained_run(windows_run)
    table = read_flows([GLF_FILES[1]])

    with pytest.raises(UsageError, match=r"scores windows of 8 flows .* score_table"):
        run.score(table.features)


def test_file_shorter_than_a_window_is_scored_with_padding(
    windows_run: Path, tmp_path: Path
) -> None:
    # Two DDoS flows of the same key: windows [pad x 7, f1] and [pad x 6, f1, f2].
    lines = GLF_FILES[0].read_text(encoding="utf-8").splitlines()[:3]
    short = tmp_path / "short_glf.csv"
    short.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = load_trained_run(windows_run)

    summary = predict_files(run, [short], tmp_path / "out.csv")
    scores = pd.read_csv(tmp_path / "out.csv")["attack_probability"].to_numpy()

    x = run.preprocessor.transform(read_flows([short]).features)
    by_hand = FlowWindows(x, np.array([[-1] * 7 + [0], [-1] * 6 + [0, 1]]))
    assert summary.flows == 2
    np.testing.assert_allclose(scores, run.detector.attack_probability(by_hand), atol=1e-7)


def test_short_file_without_identifiers_gets_a_clear_message(
    windows_run: Path, tmp_path: Path, capsys
) -> None:
    # case BR-22: a file shorter than any window, here also without IPs and timestamps
    code = main(
        [
            "predict",
            "--run",
            str(windows_run),
            str(CASES / "BR-22-short-predict-file.csv"),
            "-o",
            str(tmp_path / "out.csv"),
        ]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert "BR-22-short-predict-file.csv has no Source IP, Destination IP, Timestamp" in err
    assert "use such files, or a run with timesteps = 1" in err.lower()
    assert not (tmp_path / "out.csv").exists()


def test_training_windows_need_identifiers(tmp_path: Path) -> None:
    mlcve = GLF / "wednesday_random_sample_1k_mlcve.csv"

    code = main(
        [
            "train",
            "--data",
            str(mlcve),
            "--preset",
            "windows-t8",
            "--epochs",
            "1",
            "--runs-dir",
            str(tmp_path),
            "-q",
        ]
    )

    assert code == 2
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]


def test_detect_scores_capture_flows_with_their_windows(windows_run: Path, tmp_path: Path) -> None:
    from flowids.detect import detect

    flows_out = tmp_path / "flows.csv"

    report = detect(
        windows_run,
        tmp_path / "alerts.jsonl",
        pcaps=[SHARED / "data" / "pcap" / "kihy_slowloris.pcap"],
        flows_out=flows_out,
    )

    run = load_trained_run(windows_run)
    table = read_flows([flows_out])
    streamed = pd.read_csv(flows_out)["Attack Probability"].to_numpy()
    x = run.preprocessor.transform(table.features)
    windows = table_windows(table, x, run.windows)
    assert report.flows == len(table) > 10
    assert (windows.context_lengths() == 8).sum() > 0  # slowloris flows share their key
    np.testing.assert_allclose(streamed, run.detector.attack_probability(windows), atol=2e-6)
