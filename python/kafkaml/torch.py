"""A PyTorch ``IterableDataset`` over a Kafka topic: each epoch replays its snapshot.

Importing this module imports PyTorch; ``import kafkaml`` alone does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import IterableDataset as _TorchIterableDataset
from torch.utils.data import get_worker_info

from kafkaml._args import Bootstrap
from kafkaml._matrix import MatrixDtype
from kafkaml._replay import TopicEpochs


class IterableDataset(_TorchIterableDataset):  # type: ignore[type-arg, misc]
    """The rows of ``topic`` as ready-made batches of tensors, one epoch per iteration.

    Yields ``x`` (``[rows, len(features)]``) or ``(x, y)`` with a ``label``. The batches are
    already formed, so hand it to ``DataLoader(dataset, batch_size=None)``. With
    ``num_workers=n`` each worker reads the topic and keeps every n-th row, so together they
    yield each row exactly once per epoch.

    Args are those of :func:`kafkaml.tf.dataset`.
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
        **consumer_options: Any,
    ) -> None:
        super().__init__()
        self.epochs = TopicEpochs(
            bootstrap,
            topic,
            features=features,
            label=label,
            batch_size=batch_size,
            dtype=dtype,
            label_dtype=label_dtype,
            consumer_options=consumer_options,
        )

    def __iter__(self) -> Iterator[Any]:
        worker = get_worker_info()
        shard = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for x, y in self.epochs.batches(shard):
            if y is None:
                yield torch.from_numpy(x)
            else:
                yield torch.from_numpy(x), torch.from_numpy(y)
