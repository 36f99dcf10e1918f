"""kafkaml.Model on the talk's frozen autoencoder (no TensorFlow needed): numpy, pandas and
Arrow inputs, anomaly scores, batch sizes, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kafkaml
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]


@pytest.fixture(scope="module")
def talk(talk_fixtures: Path) -> tuple[kafkaml.Model, np.ndarray, np.ndarray]:
    model = kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb")
    x = np.load(talk_fixtures / "creditcard_small_x.npy")
    expected = np.load(talk_fixtures / "autoencoder_fraud_tf_output.npy")
    return model, x, expected


def test_reproduces_tensorflow_within_1e_5(talk) -> None:
    model, x, expected = talk
    got = model.predict(x)
    assert got.dtype == np.float32 and got.shape == (999, 30)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_describes_inputs_and_outputs(talk) -> None:
    model, _, _ = talk
    assert model.inputs == [kafkaml.TensorInfo("CreditCardInput", (None, 30), "float32")]
    assert model.outputs == [kafkaml.TensorInfo("Decoder2/Relu", (None, 30), "float32")]
    assert model.format == "tensorflow" and model.input_width == 30 == model.output_width
    assert repr(model) == (
        "Model('autoencoder_fraud.pb', tensorflow, input 'CreditCardInput' float32[batch, 30]"
        " -> output 'Decoder2/Relu' float32[batch, 30])"
    )


def test_explicit_names_and_shape_give_the_same_model(talk, talk_fixtures: Path) -> None:
    _, x, expected = talk
    model = kafkaml.Model.load(
        talk_fixtures / "autoencoder_fraud.pb",
        inputs=["CreditCardInput:0"],
        outputs="Decoder2/Relu",
        input_shape=[30],
    )
    np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 7, 1000, 20000])
def test_any_batch_size_after_one_load(talk, batch: int) -> None:
    model, x, expected = talk
    reps = -(-batch // len(x))
    xs, want = np.tile(x, (reps, 1))[:batch], np.tile(expected, (reps, 1))[:batch]
    np.testing.assert_allclose(model.predict(xs), want, rtol=0, atol=1e-5)


def test_float64_fortran_order_and_lists(talk) -> None:
    model, x, expected = talk
    np.testing.assert_allclose(model.predict(x.astype(np.float64)), expected, atol=1e-5)
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    np.testing.assert_allclose(model.predict(fortran), expected, atol=1e-5)
    np.testing.assert_allclose(model.predict(x[:2].tolist()), expected[:2], atol=1e-5)
    np.testing.assert_allclose(model.predict(x[3]), expected[3:4], atol=1e-5)  # one row


def test_pandas_and_arrow_with_columns(talk, talk_fixtures: Path) -> None:
    model, _, expected = talk
    table = pacsv.read_csv(talk_fixtures / "creditcard_small.csv")
    # The csv has Class as an extra column, in the file's order: columns= picks the features.
    from_arrow = model.predict(table, columns=FEATURES)
    np.testing.assert_allclose(from_arrow, expected, atol=1e-5)
    batch = table.to_batches()[0]
    np.testing.assert_allclose(model.predict(batch, columns=FEATURES), expected[: batch.num_rows], atol=1e-5)
    frame = table.to_pandas()
    np.testing.assert_allclose(model.predict(frame, columns=FEATURES), expected, atol=1e-5)
    np.testing.assert_allclose(model.predict(frame[FEATURES]), expected, atol=1e-5)
    reordered = pa.table({name: table.column(name) for name in reversed(FEATURES)})
    np.testing.assert_allclose(model.predict(reordered, columns=FEATURES), expected, atol=1e-5)


def test_reconstruction_error_and_score(talk) -> None:
    model, x, expected = talk
    manual = ((x.astype(np.float64) - expected) ** 2).mean(axis=1)
    errors = model.reconstruction_error(x)
    assert errors.shape == (999,) and errors.dtype == np.float32
    np.testing.assert_allclose(errors, manual, rtol=1e-4, atol=1e-6)
    threshold = float(np.quantile(manual, 0.9))
    scores, flags = model.score(x, threshold)
    np.testing.assert_array_equal(scores, errors)
    assert flags.dtype == np.bool_ and flags.sum() == (errors > np.float32(threshold)).sum()
    assert 90 <= flags.sum() <= 110
    frame = pd.DataFrame(x, columns=FEATURES)
    np.testing.assert_array_equal(model.score(frame, threshold)[1], flags)


def test_one_model_shared_between_threads(talk) -> None:
    model, x, _ = talk
    singles = [model.predict(x[i : i + 5]) for i in range(0, 200, 5)]

    def work(i: int) -> np.ndarray:
        return model.predict(x[i : i + 5])

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            results = list(pool.map(work, range(0, 200, 5)))
            for got, want in zip(results, singles):
                np.testing.assert_array_equal(got, want)
