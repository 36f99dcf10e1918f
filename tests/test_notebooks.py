"""The notebooks run top to bottom, headless, against the real broker; any cell error fails.

They run in order in one artifacts folder (notebook 2 saves the model notebook 3 deploys), with
few training epochs to keep CI short. Committed notebooks must carry no outputs with errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_are_there() -> None:
    assert [n.name for n in NOTEBOOKS] == [
        "01_ingest_and_preprocess.ipynb",
        "02_train.ipynb",
        "03_deploy.ipynb",
        "04_iot_car_sensors.ipynb",
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_error_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    errors = [
        o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook-artifacts")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_the_real_broker(
    notebook: Path, bootstrap: str, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", bootstrap)  # the kernel inherits this process's environment
    monkeypatch.setenv("KAFKAML_ARTIFACTS", str(artifacts))
    monkeypatch.setenv("EPOCHS", "3")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    document = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        document, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
