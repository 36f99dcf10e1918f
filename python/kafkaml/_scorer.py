"""Stream deployment: score a topic with a model in Rust threads, one result per event."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from kafkaml import _native
from kafkaml._args import Bootstrap, bootstrap_servers, string_config
from kafkaml._consumer import ConsumerErrors, DecodeFailure
from kafkaml._display import html_error, html_table

Until = None | int | Literal["caught_up"]
State = Literal["not started", "running", "stopped", "failed"]

_POLL_S = 0.05


class StreamScorer:
    """Consumes ``source_topic``, scores every event with ``model``, and produces one result
    per event to ``sink_topic`` — consume, decode, predict and produce all run in Rust
    threads, with no Python per event (the talk's "model inside the app" deployment). A
    batch's results are delivered while the next batch is read.

    Each result holds the ``id_columns`` of its event, ``score`` (the model's reconstruction
    error, float32) and, with a ``threshold``, ``anomaly`` (``score > threshold``); it is
    keyed by the event's key. Offsets are committed only after a batch's results are
    acknowledged by the broker: at-least-once, and nothing is read twice across a clean
    :meth:`stop` and a new start with the same ``group_id``. Broker restarts are ridden out
    (librdkafka reconnects; the idempotent producer retries without duplicating).

    Args:
        bootstrap: ``"host:port"`` or a :class:`LocalKafka`.
        source_topic: the events.
        sink_topic: where results go.
        model: a :class:`kafkaml.Model` whose input width equals the number of features.
        features: a list of numeric columns, in the model's input order; or the name of one
            text column holding ``separator``-separated readings (the talk's car sensors:
            ``"eventid"`` plus ``"2.1#2.3#..."``).
        group_id: the consumer group; its committed offsets are how the scorer resumes.
        format, schema, delimiter: how the events are decoded (as for :class:`Consumer`).
        id_columns: event columns copied into each result.
        scaling: ``(offset, scale)`` per feature: the model sees ``(x - offset) / scale``, as in
            training — ``(scaler.mean_, scaler.scale_)`` of a fitted standard scaler, or
            ``(min, max - min)`` for min-max scaling.
        threshold: flags scores above it as anomalies.
        sink_format: ``"json"`` or ``"csv"``.
        on_error: ``"raise"``: an undecodable event or one with unreadable features stops the
            scorer, and :meth:`stop`/:meth:`run` raise :class:`DecodeError` naming its topic,
            partition and offset (it stays uncommitted); ``"skip"``: such events are counted
            in :attr:`errors` and get no result.
        batch_size, max_wait_ms: a batch is scored when it holds ``batch_size`` events or
            ``max_wait_ms`` passed since its first one (latency versus throughput: working
            off a backlog, 50,000 scored ~1.4x faster than 10,000 in benchmarks/, with
            ~90 MB more memory).
        config, sink_config: librdkafka properties for the consumer and the producer.
        timeout: seconds broker calls may take (connecting, acknowledgements, commits).

    Use :meth:`start` / :meth:`stop` (or ``with``) to run it in the background, or
    :meth:`run` to run it in the foreground until a condition.

    When it fails: an error in the background (a bad event under ``on_error="raise"``,
    features the source lacks, the broker refusing the results, ...) ends the scorer. It
    then shows it without raising: :attr:`state` is ``"failed"``, ``stats()["error"]`` holds
    the message (``None`` while healthy) and its repr says ``failed: ...``. The next
    :meth:`stop`, :meth:`run`, :meth:`start` or ``with`` raises the error as its typed
    exception (:class:`DecodeError`, :class:`SchemaError`, :class:`KafkaError`, ...), once;
    after that the scorer can be started again, resuming from the last committed offsets.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        source_topic: str,
        sink_topic: str,
        model: Any,
        *,
        features: str | Sequence[str],
        group_id: str,
        format: str = "json",
        schema: Any = None,
        id_columns: Sequence[str] = (),
        scaling: tuple[Iterable[float], Iterable[float]] | None = None,
        threshold: float | None = None,
        separator: str = "#",
        sink_format: Literal["json", "csv"] = "json",
        batch_size: int = 10_000,
        max_wait_ms: int = 100,
        on_error: Literal["raise", "skip"] = "raise",
        delimiter: str = ",",
        config: Mapping[str, Any] | None = None,
        sink_config: Mapping[str, Any] | None = None,
        timeout: float = 20.0,
    ) -> None:
        if not group_id:
            raise _native.ConfigError("StreamScorer needs a group_id: its committed offsets are how it resumes")
        self.source_topic = source_topic
        self.sink_topic = sink_topic
        self.group_id = group_id
        self._arguments: dict[str, Any] = dict(
            bootstrap=bootstrap_servers(bootstrap),
            source_topic=source_topic,
            sink_topic=sink_topic,
            model=getattr(model, "_native", model),
            group_id=group_id,
            feature_columns=None if isinstance(features, str) else list(features),
            feature_text_column=features if isinstance(features, str) else None,
            separator=separator,
            format=format,
            schema=schema,
            id_columns=list(id_columns),
            scaling=None if scaling is None else ([float(v) for v in scaling[0]], [float(v) for v in scaling[1]]),
            threshold=threshold,
            sink_format=sink_format,
            batch_size=batch_size,
            max_wait_ms=max_wait_ms,
            on_error=on_error,
            delimiter=delimiter,
            config=string_config(config),
            sink_config=string_config(sink_config),
            timeout_s=timeout,
        )
        self._native: _native.StreamScorer | None = None
        self._last_stats: dict[str, Any] = {}
        self._last_errors: ConsumerErrors = ConsumerErrors()

    def start(self) -> StreamScorer:
        """Connects and starts scoring in a background thread; returns ``self``.

        Raises the error of a previous run that failed in the background and was not raised
        yet (see the class docstring); :class:`ConfigError` if the scorer is running.
        """
        if self._native is not None:
            if self._native.running:
                raise _native.ConfigError("the scorer is already running; stop() it first")
            self.stop()  # it ended by itself: raises why, if nobody has seen it yet
        self._last_stats = {}
        self._last_errors = ConsumerErrors()
        self._native = _native.StreamScorer(**self._arguments)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finishes the batch in hand (results acknowledged, offsets committed) and stops.

        If that takes longer than ``timeout`` seconds (the broker is down), the batch is
        abandoned instead: it is read and scored again on the next start. Raises the error
        that stopped the scorer, if one did and it was not raised before; stopping a stopped
        scorer does nothing.
        """
        native = self._native
        if native is None:
            return
        try:
            native.stop(timeout)
        finally:
            self._last_stats = dict(native.stats())
            self._last_errors = _errors_of(native)
            self._native = None

    def run(self, until: Until = None, *, timeout: float | None = None) -> dict[str, Any]:
        """Runs in the foreground, then stops cleanly and returns :meth:`stats`.

        Args:
            until: ``None`` runs until Ctrl-C (or ``timeout``); an ``int`` runs until that
                many events were consumed (scored or skipped); ``"caught_up"`` runs until no
                event of the source is left unread.
            timeout: at most this many seconds.

        Ctrl-C stops the scorer cleanly and raises ``KeyboardInterrupt``. Errors that stop
        the scorer are raised, and so is the error of an earlier background run that failed
        unseen (rather than starting over as if nothing happened).
        """
        if until is not None and until != "caught_up" and not isinstance(until, int):
            raise _native.ConfigError(f"until must be None, an int or 'caught_up', got {until!r}")
        if self._native is None or not self._native.running:
            self.start()
        native = self._native
        assert native is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        # Caught up means a lag of 0 measured after this call began, not an old one.
        checks_before = native.stats()["lag_checks"]
        try:
            while native.running:
                stats = native.stats()
                if isinstance(until, int) and stats["consumed"] >= until:
                    break
                if until == "caught_up" and stats["lag"] == 0 and stats["lag_checks"] > checks_before:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_S)
        finally:
            self.stop()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """Progress: ``consumed``, ``produced``, ``skipped`` events, ``anomalies`` (results
        flagged, 0 without a threshold), ``batches``, ``commits``, ``lag`` (events of the
        source not yet read; None until measured), ``lag_checks`` (how often it was measured,
        about once a second), ``msgs_per_s`` (results per second over the last second),
        ``elapsed_s``, ``running``, and ``error``: the message of the error that ended the
        scorer, None while it is healthy. Never raises: the error itself is raised by the next
        :meth:`stop`, :meth:`run` or :meth:`start`."""
        if self._native is None:
            if not self._last_stats:
                return {"running": False, "error": None}
            return dict(self._last_stats, running=False)
        return dict(self._native.stats())

    @property
    def running(self) -> bool:
        """True while the scorer thread runs."""
        return self._native is not None and self._native.running

    @property
    def state(self) -> State:
        """``"not started"``, ``"running"``, ``"stopped"`` or ``"failed"`` (see ``stats()["error"]``)."""
        return self._state_of(self.stats())

    @property
    def errors(self) -> ConsumerErrors:
        """Events skipped under ``on_error="skip"``: the count and the latest few."""
        if self._native is None:
            return self._last_errors
        return _errors_of(self._native)

    def __enter__(self) -> StreamScorer:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        stats = self.stats()
        state: str = self._state_of(stats)
        if state == "failed":
            state = f"failed: {stats['error']}"
        done = f", consumed={stats['consumed']}, produced={stats['produced']}" if "consumed" in stats else ""
        return f"StreamScorer({self.source_topic!r} -> {self.sink_topic!r}, group_id={self.group_id!r}, {state}{done})"

    def _repr_html_(self) -> str:
        """Jupyter's display: state and the counters at the moment it is shown."""
        stats = self.stats()
        state = self._state_of(stats)
        rows: list[tuple[str, object]] = [
            ("state", html_error(state) if state == "failed" else state),
            ("group", self.group_id),
        ]
        if "consumed" in stats:
            rows += [
                ("read", stats["consumed"]),
                ("written", stats["produced"]),
                ("anomalies", stats["anomalies"] if self._arguments["threshold"] is not None else None),
                ("skipped", stats["skipped"]),
                ("rate", f"{stats['msgs_per_s']:,.0f} results/s"),
                ("lag", stats["lag"]),
                ("elapsed", f"{stats['elapsed_s']:,.1f} s"),
            ]
        if stats.get("error") is not None:
            rows.append(("error", html_error(stats["error"])))
        return html_table(f"StreamScorer {self.source_topic} \u2192 {self.sink_topic}", rows)

    @staticmethod
    def _state_of(stats: Mapping[str, Any]) -> State:
        if stats.get("error") is not None:
            return "failed"
        if stats.get("running"):
            return "running"
        return "stopped" if "consumed" in stats else "not started"


def _errors_of(native: _native.StreamScorer) -> ConsumerErrors:
    skipped, recent = native.errors()
    return ConsumerErrors(skipped, [DecodeFailure(*r) for r in recent])
