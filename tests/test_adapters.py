"""tf.data, PyTorch and the epoch reader behind both: each row of a topic once per epoch."""

from __future__ import annotations

from collections import Counter

import kafkaml
import numpy as np
import pyarrow as pa
import pytest
from kafkaml._replay import TopicEpochs

ROWS = 1_003  # not a multiple of the batch size: the last batch is short


@pytest.fixture
def numbered_topic(bootstrap: str, new_topic) -> str:
    topic = new_topic(partitions=3)
    ids = np.arange(ROWS, dtype=np.int64)
    kafkaml.write_topic(
        bootstrap, topic, pa.table({"id": ids, "a": ids * 0.5, "b": -ids.astype(np.float64), "label": ids % 2})
    )
    return topic


def ids_of(batches) -> list[int]:
    return [int(v) for x in batches for v in np.asarray(x)[:, 0]]


def test_epoch_reader_batches_and_shards(bootstrap: str, numbered_topic: str) -> None:
    epochs = TopicEpochs(
        bootstrap,
        numbered_topic,
        features=["id", "a"],
        label="label",
        batch_size=64,
        consumer_options={"batch_size": 100},
    )
    first = list(epochs.batches())
    assert [len(x) for x, _ in first] == [64] * (ROWS // 64) + [ROWS % 64]
    assert sorted(ids_of(x for x, _ in first)) == list(range(ROWS))
    for x, y in first:
        assert x.flags.c_contiguous and x.dtype == np.float32
        np.testing.assert_array_equal(y, x[:, 0] % 2)
        np.testing.assert_array_equal(x[:, 1], x[:, 0] * 0.5)
    second = list(epochs.batches())
    assert ids_of(x for x, _ in second) == ids_of(x for x, _ in first)  # same order every epoch
    shards = [ids_of(x for x, _ in epochs.batches((i, 3))) for i in range(3)]
    assert sorted(sum(shards, [])) == list(range(ROWS))  # together: every row exactly once


def test_tf_dataset_yields_every_row_once_per_epoch(bootstrap: str, numbered_topic: str) -> None:
    import tensorflow as tf  # in the test extra; kafkaml itself never needs it

    dataset = kafkaml.tf.dataset(bootstrap, numbered_topic, features=["id", "a", "b"], label="label", batch_size=100)
    for _ in range(2):
        seen: Counter[int] = Counter()
        for x, y in dataset:
            assert x.dtype == tf.float32 and x.shape[1] == 3
            np.testing.assert_array_equal(y.numpy(), x.numpy()[:, 0] % 2)
            seen.update(int(v) for v in x.numpy()[:, 0])
        assert seen == Counter(range(ROWS))


# Keras warns "ran out of data" at the end of every input whose length it does not know,
# though nothing went wrong (fixed upstream: keras-team/keras#23360).
@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_tf_dataset_trains_a_keras_model(bootstrap: str, numbered_topic: str) -> None:
    import tensorflow as tf

    dataset = kafkaml.tf.dataset(bootstrap, numbered_topic, features=["a", "b"], batch_size=128)
    autoencoder = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2)])
    autoencoder.compile(optimizer="adam", loss="mse")
    batches_per_epoch: Counter[int] = Counter()

    class CountBatches(tf.keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            batches_per_epoch[self.epoch] += 1

    history = autoencoder.fit(
        dataset.map(lambda x: (x / 1000.0, x / 1000.0)), epochs=2, verbose=0, shuffle=False, callbacks=[CountBatches()]
    )
    assert batches_per_epoch == Counter({0: 8, 1: 8})  # ceil(1003 / 128) batches, both epochs
    assert np.isfinite(history.history["loss"]).all()


def test_reserved_consumer_options_are_refused(bootstrap: str) -> None:
    with pytest.raises(ValueError, match="stop"):
        TopicEpochs(bootstrap, "t", features=["a"], consumer_options={"stop": None})


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_data_loader_yields_every_row_once_per_epoch(bootstrap: str, numbered_topic: str, workers: int) -> None:
    import torch  # in the test extra; kafkaml itself never needs it
    from kafkaml.torch import IterableDataset
    from torch.utils.data import DataLoader

    dataset = IterableDataset(bootstrap, numbered_topic, features=["id", "a"], label="label", batch_size=100)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    for _ in range(2):
        seen: Counter[int] = Counter()
        for x, y in loader:
            assert x.dtype == torch.float32 and x.shape[1] == 2 and len(y) == len(x)
            assert torch.equal(y, x[:, 0] % 2)
            seen.update(int(v) for v in x[:, 0])
        assert seen == Counter(range(ROWS))  # each row exactly once, with two workers too
