"""Arrow data into numpy feature matrices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from kafkaml import _native

MatrixDtype = Literal["float32", "float64"]
"""The element types :func:`to_numpy` builds."""


def to_numpy(
    data: Any,
    columns: Sequence[str] | None = None,
    dtype: MatrixDtype = "float32",
    fill: float | None = None,
) -> np.ndarray:
    """A 2-D C-contiguous matrix of ``columns`` (all by default), built in Rust in one pass.

    ``data`` is a pyarrow Table or RecordBatch (or any Arrow stream). Numeric, boolean and
    decimal columns convert; a null raises :class:`SchemaError` naming the column and row unless
    ``fill`` gives a value for nulls.
    """
    return _native.to_numpy(data, list(columns) if columns is not None else None, np.dtype(dtype).name, fill)
