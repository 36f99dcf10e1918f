"""kafkaml: Kafka and ksqlDB data as Arrow tables and numpy matrices, at native speed.

The Rust core decodes messages straight into Arrow record batches (no Python object per
message) and encodes Arrow rows into messages; this package is its Python face.
"""

from kafkaml import datasets, export, tf  # export and tf import TensorFlow only when used
from kafkaml._consumer import Consumer, ConsumerErrors, DecodeFailure, read_matrix, read_topic
from kafkaml._errors import (
    ClosedError,
    ConfigError,
    DecodeError,
    DeliveryError,
    KafkaError,
    KafkaMLError,
    ModelError,
    MqttError,
    SchemaError,
    UnsupportedError,
)
from kafkaml._local import LocalKafka
from kafkaml._matrix import to_numpy
from kafkaml._model import Model, TensorInfo
from kafkaml._mqtt import MqttBridge, MqttProxy, mqtt_publish
from kafkaml._native import __version__
from kafkaml._native import parse_columns as _parse_columns
from kafkaml._producer import Producer, write_topic
from kafkaml._registry import LocalSchemaRegistry
from kafkaml._scorer import StreamScorer

parse_columns = _parse_columns
"""Parses KSQL column declarations (``"ID BIGINT, V1 DOUBLE"`` or a list) into a ``pyarrow.Schema``."""

__all__ = [
    "Consumer",
    "ConsumerErrors",
    "DecodeFailure",
    "LocalKafka",
    "LocalSchemaRegistry",
    "MqttProxy",
    "MqttBridge",
    "mqtt_publish",
    "StreamScorer",
    "Producer",
    "read_topic",
    "read_matrix",
    "write_topic",
    "to_numpy",
    "parse_columns",
    "datasets",
    "export",
    "tf",
    "KafkaMLError",
    "KafkaError",
    "DecodeError",
    "SchemaError",
    "DeliveryError",
    "ConfigError",
    "UnsupportedError",
    "ClosedError",
    "Model",
    "TensorInfo",
    "ModelError",
    "MqttError",
    "__version__",
]
