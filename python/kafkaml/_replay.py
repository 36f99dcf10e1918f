"""Epochs over a topic: each replays the snapshot from the start to the end offsets taken
when the epoch begins, as feature (and label) matrices. Shared by the tf.data and PyTorch
adapters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from kafkaml._args import Bootstrap, bootstrap_servers
from kafkaml._consumer import Consumer
from kafkaml._matrix import MatrixDtype, to_numpy


class TopicEpochs:
    """Re-readable rows of a topic: every iteration is one epoch over its snapshot.

    Partitions are read one after another, so the rows of an epoch come in the same order
    every time (shuffle downstream). ``shard=(i, n)`` keeps every n-th row starting at i, so
    n readers together see each row exactly once.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        topic: str,
        *,
        features: Sequence[str],
        label: str | None = None,
        batch_size: int = 256,
        dtype: MatrixDtype = "float32",
        label_dtype: MatrixDtype = "float32",
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        options = dict(consumer_options or {})
        for reserved in ("stop", "ordered", "group_id"):
            if reserved in options:
                raise ValueError(f"{reserved!r} is set by the epoch reader (each epoch is a snapshot)")
        self.bootstrap = bootstrap_servers(bootstrap)
        self.topic = topic
        self.features = list(features)
        self.label = label
        self.batch_size = batch_size
        self.dtype = dtype
        self.label_dtype = label_dtype
        self.consumer_options = options

    def batches(self, shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """One epoch: ``(x, y)`` matrices of up to ``batch_size`` rows (``y`` None without a label)."""
        index, count = shard
        seen = 0  # rows of the epoch before the current record batch
        x_left = np.zeros((0, len(self.features)), dtype=self.dtype)
        y_left = np.zeros(0, dtype=self.label_dtype)
        with Consumer(self.bootstrap, self.topic, stop="end", ordered=True, **self.consumer_options) as consumer:
            for record_batch in consumer:
                rows = record_batch.num_rows
                keep = np.arange((index - seen) % count, rows, count)
                seen += rows
                if keep.size == 0:
                    continue
                x = to_numpy(record_batch, columns=self.features, dtype=self.dtype)
                x = x if keep.size == rows else x[keep]
                x_left = np.concatenate([x_left, x]) if len(x_left) else x
                if self.label is not None:
                    y = to_numpy(record_batch, columns=[self.label], dtype=self.label_dtype)[:, 0]
                    y = y if keep.size == rows else y[keep]
                    y_left = np.concatenate([y_left, y]) if len(y_left) else y
                full = len(x_left) // self.batch_size * self.batch_size
                for start in range(0, full, self.batch_size):
                    stop = start + self.batch_size
                    yield x_left[start:stop], (y_left[start:stop] if self.label is not None else None)
                x_left = x_left[full:]
                y_left = y_left[full:] if self.label is not None else y_left
        if len(x_left):
            yield x_left, (y_left if self.label is not None else None)
