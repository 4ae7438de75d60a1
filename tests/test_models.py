# SPDX-License-Identifier: Apache-2.0
"""Tests of the presets, config resolution and the stacked BiLSTM network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from flowids.errors import DataError, UsageError
from flowids.models.bilstm import (
    architecture_table,
    attack_metrics,
    build_bilstm,
    count_params,
    seed_everything,
    to_model_input,
)
from flowids.models.presets import (
    DEFAULT_PRESET,
    FIELD_NAMES,
    TrainingConfig,
    list_presets,
    resolve_config,
)

N_FEATURES = 70


@pytest.fixture(scope="module")
def config() -> TrainingConfig:
    return resolve_config()


@pytest.fixture(scope="module")
def model(config: TrainingConfig) -> keras.Model:
    seed_everything(config.seed)
    return build_bilstm(N_FEATURES, config)


@pytest.fixture(scope="module")
def fitted(config: TrainingConfig) -> tuple[keras.Model, keras.callbacks.History]:
    seed_everything(config.seed)
    model = build_bilstm(N_FEATURES, config)
    rng = np.random.default_rng(7)
    flows = rng.standard_normal((64, 1, N_FEATURES)).astype(np.float32)
    targets = keras.utils.to_categorical(np.arange(64) % 2, 2)
    history = model.fit(flows, targets, epochs=1, batch_size=32, validation_split=0.3, verbose=0)
    return model, history


def _fixed_flows(n_flows: int = 6) -> np.ndarray:
    values = np.linspace(-3.0, 3.0, n_flows * N_FEATURES, dtype=np.float32)
    return values.reshape(n_flows, 1, N_FEATURES)


# --- presets and config resolution ---------------------------------------------------------


def test_default_preset_holds_the_reference_settings() -> None:
    config = resolve_config()

    assert config == TrainingConfig(
        model="bilstm",
        timesteps=1,
        lstm_units=(64, 32, 16),
        dense_units=16,
        noise_stddev=0.5,
        max_norm=4.0,
        fwd_bias_l2=1e-5,
        dense_bias_l2=1e-2,
        optimizer="rmsprop",
        learning_rate=0.001,
        momentum=0.95,
        clipnorm=0.9,
        lr_decay=1e-6,
        loss="categorical_crossentropy",
        epochs=40,
        batch_size=512,
        validation_fraction=0.3,
        test_fraction=0.3,
        split="random",
        seed=20200924,
        threshold=0.5,
    )
    assert DEFAULT_PRESET == "seed-20200924"
    assert list(list_presets())[0] == "seed-20200924"
    assert all("\n" not in text and text for text in list_presets().values())


def test_config_dict_is_json_safe_and_round_trips() -> None:
    config = resolve_config()

    data = json.loads(json.dumps(config.to_dict()))

    assert data["lstm_units"] == [64, 32, 16]
    assert list(data) == list(FIELD_NAMES)
    assert TrainingConfig.from_dict(data) == config


def test_config_file_top_level_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('epochs = 3\nlstm_units = [8, 4]\nlearning_rate = 1\nsplit = "random"\n')

    config = resolve_config(config_file=path)

    assert config.epochs == 3
    assert config.lstm_units == (8, 4)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.batch_size == 512


def test_config_file_training_table_then_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[training]\nepochs = 3\nbatch_size = 64\nthreshold = 0.7\n")

    config = resolve_config(
        config_file=path, overrides={"epochs": 5, "batch_size": None, "seed": 1}
    )

    assert config.epochs == 5  # override beats file
    assert config.batch_size == 64  # None override leaves the file's value
    assert config.threshold == 0.7  # file beats preset
    assert config.seed == 1  # override beats preset
    assert config.learning_rate == 0.001  # preset


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown preset 'seed-1'; known presets: seed-20200924"):
        resolve_config("seed-1")


def test_unknown_key_in_file_names_key_file_and_allowed_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("epoch = 3\n")

    with pytest.raises(UsageError) as raised:
        resolve_config(config_file=path)

    message = str(raised.value)
    assert f"config file {path}: unknown key 'epoch' (did you mean 'epochs'?)" in message
    assert "allowed keys: model, timesteps, lstm_units," in message
    assert message.endswith(
        "seed, threshold, threshold_rule, target_fpr, mlp_units, window_key, window_gap_s, invalid"
    )


def test_unknown_override_key_is_refused() -> None:
    with pytest.raises(UsageError, match=r"overrides: unknown key 'colour'; allowed keys: model"):
        resolve_config(overrides={"colour": "red"})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("epochs", "x", r"epochs = 'x' is not valid; expected an integer >= 1"),
        ("epochs", -3, r"epochs = -3 is not valid; expected an integer >= 1"),
        ("epochs", True, r"epochs = True is not valid; expected an integer >= 1"),
        ("batch_size", 2.5, r"batch_size = 2.5 is not valid; expected an integer >= 1"),
        ("test_fraction", 1.0, r"test_fraction = 1.0 is not valid; expected a number in \(0, 1\)"),
        ("validation_fraction", 0, r"validation_fraction = 0 is not valid; expected a number"),
        ("threshold", 1.5, r"threshold = 1.5 is not valid; expected a number in \[0, 1\]"),
        ("momentum", 1.0, r"momentum = 1.0 is not valid; expected a number in \[0, 1\)"),
        ("lstm_units", [64, 0], r"lstm_units = \[64, 0\] is not valid; expected a non-empty"),
        ("lstm_units", [], r"lstm_units = \[\] is not valid"),
        ("optimizer", "adam", r"optimizer = 'adam' is not valid; expected one of rmsprop"),
        ("seed", -1, r"seed = -1 is not valid; expected an integer in \[0, 2\*\*32\)"),
        ("learning_rate", float("nan"), r"learning_rate = nan is not valid; expected a number > 0"),
    ],
)
def test_bad_override_values_name_key_value_and_expectation(
    key: str, value: object, expected: str
) -> None:
    with pytest.raises(UsageError, match=rf"^overrides: {expected}"):
        resolve_config(overrides={key: value})


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[training]\nepochs = "x"\n')

    with pytest.raises(UsageError, match=r"run\.toml: epochs = 'x' is not valid; expected an"):
        resolve_config(config_file=path)


def test_file_mixing_top_level_keys_and_training_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("seed = 1\n[training]\nepochs = 3\n")

    with pytest.raises(UsageError, match=r"keys seed sit outside the \[training\] table"):
        resolve_config(config_file=path)


def test_unreadable_config_files_are_usage_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("epochs = = 3\n")

    with pytest.raises(UsageError, match=r"broken\.toml: not valid TOML \(.*line 1"):
        resolve_config(config_file=broken)
    with pytest.raises(UsageError, match=r"absent\.toml: not found"):
        resolve_config(config_file=tmp_path / "absent.toml")


def test_from_dict_lists_missing_settings() -> None:
    data = resolve_config().to_dict()
    del data["seed"], data["threshold"]

    with pytest.raises(UsageError, match=r"^run record: missing settings seed, threshold;"):
        TrainingConfig.from_dict(data, source="run record")


# --- the network -------------------------------------------------------------------------


def test_layers_in_order(model: keras.Model) -> None:
    layers = [(layer.name, type(layer).__name__) for layer in model.layers]

    assert layers == [
        ("flows", "InputLayer"),
        ("bilstm_1", "Bidirectional"),
        ("noise_1", "GaussianNoise"),
        ("batchnorm_1", "BatchNormalization"),
        ("bilstm_2", "Bidirectional"),
        ("batchnorm_2", "BatchNormalization"),
        ("bilstm_3", "Bidirectional"),
        ("batchnorm_3", "BatchNormalization"),
        ("flatten", "Flatten"),
        ("dense", "Dense"),
        ("noise_dense", "GaussianNoise"),
        ("relu6", "Activation"),
        ("batchnorm_dense", "BatchNormalization"),
        ("logits", "Dense"),
        ("softmax", "Activation"),
    ]
    assert model.input_shape == (None, 1, N_FEATURES)
    assert model.output_shape == (None, 2)


def test_lstm_units_directions_and_sequences(model: keras.Model) -> None:
    for name, units, sequences in [
        ("bilstm_1", 64, True),
        ("bilstm_2", 32, True),
        ("bilstm_3", 16, False),
    ]:
        wrapper = model.get_layer(name)
        forward, backward = wrapper.forward_layer, wrapper.backward_layer

        assert wrapper.merge_mode == "concat"
        assert (forward.units, backward.units) == (units, units)
        assert (forward.return_sequences, backward.return_sequences) == (sequences, sequences)
        assert (forward.go_backwards, backward.go_backwards) == (False, True)


def test_max_norm_on_kernels_of_both_directions(model: keras.Model) -> None:
    for name in ("bilstm_1", "bilstm_2", "bilstm_3"):
        wrapper = model.get_layer(name)
        for lstm in (wrapper.forward_layer, wrapper.backward_layer):
            for constraint in (lstm.cell.kernel_constraint, lstm.cell.recurrent_constraint):
                assert isinstance(constraint, keras.constraints.MaxNorm)
                assert constraint.max_value == 4.0
            assert lstm.cell.bias_constraint is None

    dense = model.get_layer("dense")
    assert isinstance(dense.kernel_constraint, keras.constraints.MaxNorm)
    assert dense.kernel_constraint.max_value == 4.0
    assert model.get_layer("logits").kernel_constraint is None


def test_bias_penalties_forward_only_and_dense(model: keras.Model) -> None:
    for name in ("bilstm_1", "bilstm_2", "bilstm_3"):
        wrapper = model.get_layer(name)
        forward = wrapper.forward_layer.cell.bias_regularizer

        assert isinstance(forward, keras.regularizers.L2)
        assert forward.l2 == pytest.approx(1e-5)
        assert wrapper.backward_layer.cell.bias_regularizer is None
        assert wrapper.forward_layer.cell.kernel_regularizer is None

    dense = model.get_layer("dense").bias_regularizer
    assert isinstance(dense, keras.regularizers.L2)
    assert dense.l2 == pytest.approx(1e-2)
    assert model.get_layer("logits").bias_regularizer is None


def test_noise_and_activations(model: keras.Model) -> None:
    assert model.get_layer("noise_1").stddev == 0.5
    assert model.get_layer("noise_dense").stddev == 0.5
    assert model.get_layer("dense").units == 16
    assert model.get_layer("logits").units == 2

    relu6 = model.get_layer("relu6")
    values = keras.ops.convert_to_numpy(relu6(np.array([[-1.0, 3.0, 9.0]], dtype=np.float32)))
    np.testing.assert_array_equal(values, [[0.0, 3.0, 6.0]])
    assert model.get_layer("softmax").get_config()["activation"] == "softmax"


def test_parameter_count_for_70_features(model: keras.Model) -> None:
    # LSTM, per direction: 4 * units * (input_dim + units + 1); two directions each.
    #   bilstm_1: 4*64*(70+64+1)  = 34,560 x 2 = 69,120   output 128
    #   bilstm_2: 4*32*(128+32+1) = 20,608 x 2 = 41,216   output 64
    #   bilstm_3: 4*16*(64+16+1)  =  5,184 x 2 = 10,368   output 32
    # BatchNorm, 4 per channel (gamma, beta trainable; moving mean, variance not):
    #   128*4 + 64*4 + 32*4 + 16*4 = 512 + 256 + 128 + 64 = 960, of which 480 non-trainable
    # Dense: 32*16 + 16 = 528; logits: 16*2 + 2 = 34
    # Total: 69,120 + 41,216 + 10,368 + 960 + 528 + 34 = 122,226
    assert count_params(model) == 122_226
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 480

    table = {row["name"]: row for row in architecture_table(model)}
    assert table["bilstm_1"] == {
        "name": "bilstm_1",
        "type": "Bidirectional",
        "output_shape": "(None, 1, 128)",
        "params": 69_120,
    }
    assert table["bilstm_3"]["output_shape"] == "(None, 32)"
    assert table["batchnorm_dense"]["params"] == 64
    assert table["softmax"]["output_shape"] == "(None, 2)"
    assert "flows" not in table
    assert sum(row["params"] for row in table.values()) == 122_226


def test_optimizer_loss_and_decay(model: keras.Model) -> None:
    optimizer = model.optimizer
    schedule = optimizer._learning_rate

    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert optimizer.momentum == pytest.approx(0.95)
    assert optimizer.clipnorm == pytest.approx(0.9)
    assert isinstance(schedule, keras.optimizers.schedules.InverseTimeDecay)
    # rate = 0.001 / (1 + 1e-6 * 1000) = 0.001 / 1.001
    assert float(schedule(1000)) == pytest.approx(0.001 / 1.001, rel=1e-6)
    assert float(schedule(0)) == pytest.approx(0.001, rel=1e-6)
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)


def test_output_is_a_probability_per_class(model: keras.Model) -> None:
    probabilities = model.predict(_fixed_flows(), verbose=0)

    assert probabilities.shape == (6, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_same_seed_gives_same_initial_weights(config: TrainingConfig) -> None:
    small = resolve_config(overrides={"lstm_units": [4, 2], "dense_units": 2})
    first, second = [(seed_everything(config.seed), build_bilstm(3, small))[1] for _ in range(2)]

    for left, right in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)


def test_other_lstm_sizes_build_the_same_pattern() -> None:
    small = resolve_config(overrides={"lstm_units": [8, 4], "dense_units": 4})

    built = build_bilstm(5, small)

    names = [layer.name for layer in built.layers[1:6]]
    assert names == ["bilstm_1", "noise_1", "batchnorm_1", "bilstm_2", "batchnorm_2"]
    assert built.get_layer("bilstm_1").return_sequences is True
    assert built.get_layer("bilstm_2").return_sequences is False
    assert built.get_layer("dense").units == 4


@pytest.mark.parametrize("n_features", [0, -1, 2.5, True])
def test_bad_feature_count_is_refused(config: TrainingConfig, n_features: object) -> None:
    with pytest.raises(UsageError, match=r"n_features = .* is not valid; expected an integer"):
        build_bilstm(n_features, config)  # type: ignore[arg-type]


def test_fit_history_has_attack_precision_and_recall(
    fitted: tuple[keras.Model, keras.callbacks.History],
) -> None:
    model, history = fitted

    assert set(history.history) == {
        "loss",
        "val_loss",
        "precision",
        "val_precision",
        "recall",
        "val_recall",
    }
    # the forward biases of three LSTMs and the dense bias add their penalties to the loss
    assert len(model.losses) == 4


def test_attack_metrics_on_softmax_case(shared_dir: Path) -> None:
    # case BR-23: softmax metric fixture
    case = pd.read_csv(shared_dir / "cases" / "BR-23-softmax-metric-fixture.csv")
    targets = keras.utils.to_categorical(case["y_true"].to_numpy(), 2)
    probabilities = case[["p_benign", "p_attack"]].to_numpy(dtype=np.float32)

    precision, recall = attack_metrics()
    precision.update_state(targets, probabilities)
    recall.update_state(targets, probabilities)

    # attack verdicts at 0.5: flows 3 (benign, 0.6) and 5 (attack, 0.8); attacks: 5 and 6
    assert float(precision.result()) == pytest.approx(0.5)
    assert float(recall.result()) == pytest.approx(0.5)


def test_saved_model_reloads_in_a_fresh_process(
    fitted: tuple[keras.Model, keras.callbacks.History], tmp_path: Path
) -> None:
    model, _ = fitted
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "flows.npy", _fixed_flows())
    script = textwrap.dedent(
        """
        import sys
        import keras
        import numpy as np

        folder = sys.argv[1]
        model = keras.saving.load_model(folder + "/model.keras")
        flows = np.load(folder + "/flows.npy")
        np.save(folder + "/reloaded.npy", model.predict(flows, verbose=0))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    reloaded = np.load(tmp_path / "reloaded.npy")
    np.testing.assert_allclose(reloaded, model.predict(_fixed_flows(), verbose=0), atol=1e-6)


# --- model input -------------------------------------------------------------------------


def test_to_model_input_adds_one_step_axis() -> None:
    features = np.arange(6, dtype=np.float64).reshape(3, 2)

    arranged = to_model_input(features)

    assert arranged.shape == (3, 1, 2)
    assert arranged.dtype == np.float32
    np.testing.assert_array_equal(arranged[:, 0, :], features)


def test_to_model_input_takes_windows_of_the_given_length() -> None:
    windows = np.arange(24, dtype=np.float64).reshape(2, 4, 3)

    arranged = to_model_input(windows, timesteps=4)

    assert arranged.shape == (2, 4, 3)
    assert arranged.dtype == np.float32
    np.testing.assert_array_equal(arranged, windows)


def test_to_model_input_refuses_other_timesteps_and_shapes() -> None:
    with pytest.raises(UsageError, match=r"with timesteps = 5 expected windows of shape"):
        to_model_input(np.zeros((4, 2), dtype=np.float32), timesteps=5)
    with pytest.raises(UsageError, match=r"shape \(4, 3, 2\); with timesteps = 5 expected"):
        to_model_input(np.zeros((4, 3, 2), dtype=np.float32), timesteps=5)
    with pytest.raises(UsageError, match=r"features have shape \(4,\); expected \(n_flows,"):
        to_model_input(np.zeros(4, dtype=np.float32))


def test_to_model_input_refuses_non_finite_values() -> None:
    features = np.zeros((3, 4), dtype=np.float32)
    features[1, 2] = np.inf
    features[2, 0] = np.nan

    with pytest.raises(DataError, match=r"2 NaN or infinite values, first at flow 1 .* column 2"):
        to_model_input(features)


def test_validity_policy_setting_is_checked_and_stored_in_full() -> None:
    config = resolve_config(overrides={"invalid": "drop,sentinel=fail"})

    assert config.invalid == "negative=drop,sentinel=fail,non-finite=drop"
    assert resolve_config().invalid == "negative=keep,sentinel=keep,non-finite=repair"
    with pytest.raises(UsageError, match=r"overrides: invalid = 'clip' is not valid; expected"):
        resolve_config(overrides={"invalid": "clip"})
