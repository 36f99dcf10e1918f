"""kafkaml's exceptions. Every error the package raises derives from :class:`KafkaMLError`."""

from kafkaml._native import (
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

__all__ = [
    "KafkaMLError",
    "KafkaError",
    "DecodeError",
    "SchemaError",
    "DeliveryError",
    "ConfigError",
    "UnsupportedError",
    "ClosedError",
    "ModelError",
    "MqttError",
]
