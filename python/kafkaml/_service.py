"""What the embedded services (LocalKafka, LocalSchemaRegistry, LocalKsql, MqttProxy,
MqttBridge) share: a ``with`` block stops the service when it ends."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self


class StopOnExit:
    """Context-manager support for a service whose ``stop()`` ends it (idempotently)."""

    def stop(self) -> None:
        """Stops the service."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
