"""Model.load given what Keras and TensorFlow save by default (.keras, .h5, SavedModel
folders): a ModelError that says what the path holds and how to convert it, never a protobuf
decoding error. Small fake files cover each detection; real Keras files when TensorFlow is
installed (the test extra installs it)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import kafkaml
import numpy as np
import pytest

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
CONVERT = r'kafkaml\.export\.freeze_keras\(model, "m\.pb"\) or kafkaml\.export\.to_onnx\(model, "m\.onnx"\)'


def keras_archive(path: Path) -> Path:
    """A file laid out as Keras 3 writes a .keras model: a zip of config, metadata, weights."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.0.0"}')
        archive.writestr("config.json", '{"class_name": "Sequential"}')
        archive.writestr("model.weights.h5", HDF5_MAGIC + b"\x00" * 64)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(kafkaml.ModelError) as caught:
        kafkaml.Model.load(path)
    message = str(caught.value)
    assert "protobuf" not in message.lower() and "decode" not in message.lower(), message
    return message


@pytest.mark.parametrize("name", ["model.keras", "model.zip", "model"])
def test_keras_archive_by_extension_or_zip_content(tmp_path: Path, name: str) -> None:
    message = load_error(keras_archive(tmp_path / name))
    assert name in message
    assert "a Keras model archive (.keras" in message
    assert "keras.models.load_model(path)" in message
    assert re.search(CONVERT, message), message


def test_keras_extension_alone_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes(b"half a download")
    assert "a Keras model archive" in load_error(path)


@pytest.mark.parametrize("name", ["model.h5", "model.hdf5", "model.pb", "model.onnx"])
def test_hdf5_by_magic_or_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(HDF5_MAGIC + b"\x00" * 100)
    message = load_error(path)
    assert f"{name} is an HDF5 file (a Keras .h5 model or weights)" in message
    assert "kafkaml.export.to_onnx" in message


def test_other_zip_archives(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a model is somewhere else")
    message = load_error(path)
    assert "bundle.zip is a zip archive, not a model file;" in message
    assert message.endswith("unpack it and pass the .pb or .onnx file inside")


def fake_saved_model(folder: Path, *, keras: bool) -> Path:
    folder.mkdir()
    (folder / "variables").mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01\x12\x02\x0a\x00")  # schema version 1, a meta graph
    if keras:
        (folder / "keras_metadata.pb").write_bytes(b"")
    return folder


@pytest.mark.parametrize("keras", [False, True])
def test_saved_model_folder(tmp_path: Path, keras: bool) -> None:
    folder = fake_saved_model(tmp_path / "exported", keras=keras)
    message = load_error(folder)
    assert "exported is a TensorFlow SavedModel folder" in message
    assert ("written by Keras" in message) == keras
    assert "python -m tf2onnx.convert --saved-model DIR --output m.onnx" in message
    assert "kafkaml.export.freeze_keras" in message


def test_saved_model_graph_file(tmp_path: Path) -> None:
    folder = fake_saved_model(tmp_path / "exported", keras=False)
    message = load_error(folder / "saved_model.pb")
    assert "saved_model.pb is the graph file of a TensorFlow SavedModel folder, not a frozen graph" in message


def test_plain_folder_names_the_model_files_in_it(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    message = load_error(tmp_path)
    assert message.endswith(
        "is a directory, not a model file; kafkaml loads TensorFlow frozen graphs (.pb) and ONNX files: pass the path of a model file in it: m.onnx"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_error(empty).endswith("pass the path of a .pb or .onnx file")


# --- real Keras files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_model() -> Any:
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(4)])
    return model


def test_real_keras_files_and_saved_model(tmp_path: Path, keras_model: Any) -> None:
    keras_model.save(tmp_path / "m.keras")
    assert "a Keras model archive" in load_error(tmp_path / "m.keras")
    keras_model.save(tmp_path / "m.h5")
    assert "an HDF5 file" in load_error(tmp_path / "m.h5")
    # Keras 3 writes SavedModels with export(); tf.keras 2 with save() to a folder.
    if hasattr(keras_model, "export"):
        keras_model.export(str(tmp_path / "saved"), verbose=False)
    else:
        keras_model.save(str(tmp_path / "saved"))
    assert "a TensorFlow SavedModel folder" in load_error(tmp_path / "saved")
    assert "graph file of a TensorFlow SavedModel" in load_error(tmp_path / "saved" / "saved_model.pb")


def test_the_advice_works(tmp_path: Path, keras_model: Any) -> None:
    """What the error points at loads, and gives Keras's numbers."""
    kafkaml.export.freeze_keras(keras_model, tmp_path / "m.pb")
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    expected = keras_model.predict(x, verbose=0)
    np.testing.assert_allclose(kafkaml.Model.load(tmp_path / "m.pb").predict(x), expected, rtol=1e-5, atol=1e-6)


def test_the_saved_model_advice_works(tmp_path: Path, keras_model: Any) -> None:
    """The tf2onnx command the SavedModel error names turns the folder into a loadable file."""
    pytest.importorskip("tf2onnx")
    saved = tmp_path / "saved"
    if hasattr(keras_model, "export"):
        keras_model.export(str(saved), verbose=False)
    else:
        keras_model.save(str(saved))
    converted = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved), "--output", str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert converted.returncode == 0, converted.stderr[-2000:]
    x = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(
        kafkaml.Model.load(tmp_path / "m.onnx").predict(x), keras_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
