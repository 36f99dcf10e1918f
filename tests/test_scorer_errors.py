"""A StreamScorer that fails in the background shows it (state, stats()["error"], repr, HTML)
without raising, and the next stop/run/start/with raises the typed exception, once.

Failures are real: a message that is not JSON under on_error="raise", and features the source
does not have, on the real broker.
"""

from __future__ import annotations

import html
import time
import uuid
from pathlib import Path

import kafkaml
import numpy as np
import pyarrow as pa
import pytest

FEATURES = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]


@pytest.fixture(scope="module")
def talk_model(talk_fixtures: Path) -> kafkaml.Model:
    return kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb")


@pytest.fixture(scope="module")
def events(talk_fixtures: Path) -> pa.Table:
    x = np.load(talk_fixtures / "creditcard_small_x.npy")[:20]
    columns = {"id": pa.array(np.arange(len(x), dtype=np.int64))}
    columns.update({name: pa.array(x[:, j]) for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def wait_until_stopped(scorer: kafkaml.StreamScorer, limit: float = 60) -> None:
    """Waits for the background thread to end by itself (a deadline, not a timing assert)."""
    deadline = time.monotonic() + limit
    while scorer.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not scorer.running, "the scorer did not stop by itself"


@pytest.fixture
def bad_source(bootstrap: str, new_topic, events: pa.Table) -> str:
    """5 good events, then one that is not JSON (offset 5), then 5 more."""
    source = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events.slice(0, 5))
    kafkaml.write_topic(bootstrap, source, pa.table({"value": ["<not json>"]}), format="raw")
    kafkaml.write_topic(bootstrap, source, events.slice(5, 5))
    return source


def scorer_on(bootstrap: str, source: str, sink: str, model: kafkaml.Model, **options) -> kafkaml.StreamScorer:
    options.setdefault("features", FEATURES)
    return kafkaml.StreamScorer(
        bootstrap,
        source,
        sink,
        model,
        id_columns=["id"],
        group_id=f"g-{uuid.uuid4().hex}",
        batch_size=5,
        **options,
    )


def test_a_background_failure_is_shown_then_raised_once_by_stop(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, bad_source: str
) -> None:
    scorer = scorer_on(bootstrap, bad_source, new_topic(partitions=1), talk_model, on_error="raise", threshold=1.0)
    scorer.start()
    wait_until_stopped(scorer)

    # Shown, without raising.
    stats = scorer.stats()
    assert scorer.state == "failed"
    assert f"{bad_source}[0]@5" in stats["error"], stats
    assert repr(scorer).endswith(
        f"failed: {stats['error']}, consumed={stats['consumed']}, produced={stats['produced']})"
    )
    page = scorer._repr_html_()
    assert html.escape(stats["error"]) in page and "kafkaml-error" in page

    # Raised by the next stop, typed and with the coordinates; once.
    with pytest.raises(kafkaml.DecodeError) as caught:
        scorer.stop()
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == (bad_source, 0, 5)
    assert str(caught.value) == stats["error"]
    scorer.stop()  # seen: nothing more to raise
    assert scorer.stats()["error"] == stats["error"], "the message stays for the notebook to show"
    assert scorer.state == "failed"
    assert scorer.stats()["produced"] == 5  # the batch before the bad message


def test_run_raises_an_unseen_background_failure_instead_of_starting_over(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table
) -> None:
    source = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events.slice(0, 5))
    # Features the source does not have: the first batch fails.
    scorer = scorer_on(
        bootstrap, source, new_topic(partitions=1), talk_model, features=[*FEATURES[:-1], "Amnt"], on_error="raise"
    )
    scorer.start()
    wait_until_stopped(scorer)
    assert "Amnt" in scorer.stats()["error"]
    with pytest.raises(kafkaml.SchemaError, match="Amnt"):
        scorer.run(until=5, timeout=60)
    # Seen now: start() begins a new run (which meets the same error again in the background).
    scorer.start()
    wait_until_stopped(scorer)
    with pytest.raises(kafkaml.SchemaError, match="Amnt"):
        with scorer:  # __enter__ raises the unseen error rather than starting
            pass


def test_leaving_a_with_block_raises_the_failure(
    bootstrap: str, new_topic, talk_model: kafkaml.Model, bad_source: str
) -> None:
    scorer = scorer_on(bootstrap, bad_source, new_topic(partitions=1), talk_model, on_error="raise")
    with pytest.raises(kafkaml.DecodeError, match="@5"):
        with scorer:
            wait_until_stopped(scorer)
            assert scorer.state == "failed"


def test_a_healthy_scorer_has_no_error(bootstrap: str, new_topic, talk_model: kafkaml.Model, events: pa.Table) -> None:
    source = new_topic(partitions=1)
    kafkaml.write_topic(bootstrap, source, events)
    scorer = scorer_on(bootstrap, source, new_topic(partitions=1), talk_model, threshold=1e9)
    assert (scorer.state, scorer.stats()) == ("not started", {"running": False, "error": None})
    assert "not started" in scorer._repr_html_()
    scorer.start()
    assert scorer.stats()["error"] is None
    stats = scorer.run(until=events.num_rows, timeout=60)
    assert (stats["error"], stats["consumed"], stats["anomalies"]) == (None, 20, 0)
    assert scorer.state == "stopped"
    assert "failed" not in repr(scorer)
    page = scorer._repr_html_()
    assert "<th" in page and ">stopped<" in page and "kafkaml-error" not in page
