"""kafkaml.ModelError: malformed and truncated files, unknown ops and names, shape and dtype
mismatches. Every one is a KafkaMLError with the reason in its message."""

from __future__ import annotations

from pathlib import Path

import kafkaml
import numpy as np
import pytest


def test_model_error_is_a_kafkaml_error() -> None:
    assert issubclass(kafkaml.ModelError, kafkaml.KafkaMLError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(kafkaml.ModelError, match="cannot read model file .*nope.pb"):
        kafkaml.Model.load(tmp_path / "nope.pb")


@pytest.mark.parametrize("suffix", [".pb", ".onnx", ".bin"])
def test_garbage_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"\xff\xfe this is not a model \x00\x01" * 10)
    with pytest.raises(kafkaml.ModelError, match="garbage"):
        kafkaml.Model.load(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pb"
    path.write_bytes(b"")
    with pytest.raises(kafkaml.ModelError, match="empty.pb"):
        kafkaml.Model.load(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path: Path, talk_fixtures: Path, fraction: float) -> None:
    data = (talk_fixtures / "autoencoder_fraud.pb").read_bytes()
    path = tmp_path / "truncated.pb"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(kafkaml.ModelError, match="truncated.pb"):
        kafkaml.Model.load(path)


def test_unknown_op_names_op_and_node(tmp_path: Path, talk_fixtures: Path) -> None:
    data = (talk_fixtures / "autoencoder_fraud.pb").read_bytes()
    # Rename the op of the Tanh nodes in place (same length keeps the protobuf valid).
    assert b"\x12\x04Tanh" in data
    path = tmp_path / "unknown_op.pb"
    path.write_bytes(data.replace(b"\x12\x04Tanh", b"\x12\x04Tanx"))
    with pytest.raises(kafkaml.ModelError, match=r"op Tanx \(node \"[^\"]+/Tanh\"\)"):
        kafkaml.Model.load(path)


def test_unknown_input_and_output_names(talk_fixtures: Path) -> None:
    path = talk_fixtures / "autoencoder_fraud.pb"
    with pytest.raises(kafkaml.ModelError, match='no node named "nope".*CreditCardInput'):
        kafkaml.Model.load(path, inputs=["nope"])
    with pytest.raises(kafkaml.ModelError, match='no node named "nope:0".*Decoder2/Relu'):
        kafkaml.Model.load(path, outputs=["nope:0"])


def test_input_shape_that_does_not_fit(talk_fixtures: Path) -> None:
    with pytest.raises(kafkaml.ModelError, match=r"input_shape \[29\] does not fit"):
        kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb", input_shape=[29])


def test_wrong_width_and_dtype(talk_fixtures: Path) -> None:
    model = kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb")
    with pytest.raises(kafkaml.ModelError, match="29 features per row, the model takes 30"):
        model.predict(np.zeros((4, 29), dtype=np.float32))
    with pytest.raises(kafkaml.ModelError, match="dtype <U"):
        model.predict(np.full((2, 30), "x"))
    with pytest.raises(kafkaml.ModelError, match="dtype object"):
        model.predict(np.array([[object()] * 30]))
    with pytest.raises(kafkaml.ModelError, match="scalar"):
        model.predict(np.float32(1.0))
    with pytest.raises(kafkaml.ModelError, match="output width == input width"):
        kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb", outputs=["Encoder1/Tanh"]).reconstruction_error(
            np.zeros((1, 30), dtype=np.float32)
        )
    assert model.predict(np.zeros((0, 30), dtype=np.float32)).shape == (0, 30)
