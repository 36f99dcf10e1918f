"""``tf.data`` over Kafka topics: each epoch replays the topic's snapshot as feature batches.

TensorFlow is imported when :func:`dataset` is called, not with kafkaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kafkaml._args import Bootstrap
from kafkaml._matrix import MatrixDtype
from kafkaml._replay import TopicEpochs

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow


def dataset(
    bootstrap: Bootstrap,
    topic: str,
    *,
    features: Sequence[str],
    label: str | None = None,
    batch_size: int = 256,
    dtype: MatrixDtype = "float32",
    label_dtype: MatrixDtype = "float32",
    **consumer_options: Any,
) -> tensorflow.data.Dataset:
    """A ``tf.data.Dataset`` of the rows of ``topic``, in batches.

    Every pass over the dataset (every epoch of ``model.fit``) reads the topic from the start
    to its end offsets at that moment, decoding in Rust; the batches are ``x`` of shape
    ``[rows, len(features)]``, or ``(x, y)`` with a ``label`` column. Rows come in the same
    order each epoch: add ``.shuffle(...)`` to mix them. For an autoencoder, map to ``(x, x)``.

    Args:
        bootstrap: ``"host:port"`` or a :class:`LocalKafka`.
        topic: the topic to replay.
        features: numeric columns, in the model's input order.
        label: a numeric column to yield as ``y``.
        batch_size: rows per batch (the last batch of an epoch may be smaller).
        dtype, label_dtype: numpy dtypes of ``x`` and ``y``.
        consumer_options: how to decode (``format``, ``schema``, ``start``, ...), as for
            :class:`kafkaml.Consumer`.
    """
    import tensorflow as tf

    epochs = TopicEpochs(
        bootstrap,
        topic,
        features=features,
        label=label,
        batch_size=batch_size,
        dtype=dtype,
        label_dtype=label_dtype,
        consumer_options=consumer_options,
    )
    x_spec = tf.TensorSpec(shape=(None, len(epochs.features)), dtype=tf.as_dtype(dtype))
    if label is None:

        def features_only() -> Any:
            for x, _ in epochs.batches():
                yield x

        return tf.data.Dataset.from_generator(features_only, output_signature=x_spec)

    def with_labels() -> Any:
        yield from epochs.batches()

    y_spec = tf.TensorSpec(shape=(None,), dtype=tf.as_dtype(label_dtype))
    return tf.data.Dataset.from_generator(with_labels, output_signature=(x_spec, y_spec))
