"""Jupyter displays and progress bars: the shared HTML helpers escape what they show, Model,
StreamScorer and LocalKafka render their state, and progress_bar picks a bar that works
(no ipywidgets warning in a notebook without it, our own text bar without tqdm)."""

from __future__ import annotations

import io
import sys
import types
import warnings
from pathlib import Path

import kafkaml
import pytest
from kafkaml._display import Html, format_value, html_error, html_rows, html_table
from kafkaml._progress import TextBar, progress_bar


def test_html_table_escapes_labels_values_and_title() -> None:
    page = html_table("<topic & co>", [("name", "<script>alert(1)</script>"), ("<b>", 'a "quoted" value')])
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;topic &amp; co&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;quoted&quot;" in page
    assert page.count("<tr>") == 2
    assert isinstance(page, str) and isinstance(page, Html)


def test_nested_markup_is_kept_and_values_are_formatted() -> None:
    inner = html_rows(["name", "shape"], [("x", "[batch, 30]"), ("y<", 3)])
    page = html_table(
        "outer", [("inputs", inner), ("count", 1234567), ("missing", None), ("error", html_error("bad <x>"))]
    )
    assert inner in page, "Html values are inserted as they are"
    assert '<td style="text-align:left;padding:0.15em 0.8em 0.15em 0">1,234,567</td>' in page
    assert "\u2013" in page
    assert "bad &lt;x&gt;" in page and "kafkaml-error" in page
    assert "y&lt;" in inner and inner.count("<th ") == 2


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "\u2013"),
        (True, "yes"),
        (12345, "12,345"),
        (0.000123456, "0.0001235"),
        (12345.67, "12,345.7"),
        ("s", "s"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_model_display_shows_inputs_outputs_backend_and_file(talk_fixtures: Path) -> None:
    model = kafkaml.Model.load(talk_fixtures / "autoencoder_fraud.pb")
    page = model._repr_html_()
    for expected in [
        "CreditCardInput",
        "Decoder2/Relu",
        "[batch, 30]",
        "float32",
        "TensorFlow frozen graph",
        str(talk_fixtures),
    ]:
        assert expected in page, expected
    assert page.count("<thead>") == 2  # the inputs' and the outputs' tables
    assert repr(model) == (
        "Model('autoencoder_fraud.pb', tensorflow, input 'CreditCardInput' float32[batch, 30] "
        "-> output 'Decoder2/Relu' float32[batch, 30])"
    )


def test_local_kafka_display() -> None:
    # The mock takes any topic name, so the page's escaping shows (the broker refuses "<").
    with kafkaml.LocalKafka(engine="mock") as kafka:
        kafka.create_topic("sensors<1>", partitions=3)
        page = kafka._repr_html_()
        assert "running" in page and kafka.bootstrap_servers in page
        assert "sensors&lt;1&gt;" in page and ">3<" in page
    page = kafka._repr_html_()
    assert "stopped" in page and "127.0.0.1" not in page


# --- progress bars ----------------------------------------------------------------------


def test_outside_a_notebook_the_bar_is_tqdms_text_bar() -> None:
    std = pytest.importorskip("tqdm.std")
    stream = io.StringIO()
    with progress_bar(100, "topic", "msg", file=stream) as bar:
        bar.update(40)
        assert type(bar) is std.tqdm
        assert bar.n == 40
    assert "topic" in stream.getvalue() and "40" in stream.getvalue()


def test_without_tqdm_our_text_bar_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    stream = io.StringIO()
    with progress_bar(1000, "creditcard", "msg", file=stream) as bar:
        assert isinstance(bar, TextBar)
        bar.update(400)
    assert stream.getvalue() == "creditcard:  40%|##########               | 400/1,000 msg\n"


def test_text_bar_without_total_counts() -> None:
    bar = TextBar(None, "live", "msg", file=io.StringIO())
    bar.update(1234)
    assert bar.text() == "live: 1,234 msg"


def fake_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes progress_bar believe it runs in a Jupyter kernel."""
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_a_notebook_without_ipywidgets_gets_the_text_bar_and_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    std = pytest.importorskip("tqdm.std")
    fake_notebook(monkeypatch)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.delitem(sys.modules, "tqdm.notebook", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bar = progress_bar(10, "t", "msg")
        bar.close()
    assert type(bar) is std.tqdm
    assert [str(w.message) for w in caught] == []


def test_a_notebook_with_working_widgets_gets_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The widget branch, with tqdm.auto replaced (ipywidgets need a real kernel to draw)."""
    import kafkaml._progress as progress

    pytest.importorskip("tqdm.std")
    made: list[dict[str, object]] = []

    class WidgetBar:
        def __init__(self, **options: object) -> None:
            made.append(options)

    fake_notebook(monkeypatch)
    monkeypatch.setattr(progress, "_notebook_widgets_work", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=WidgetBar))
    assert isinstance(progress_bar(7, "creditcard", "msg"), WidgetBar)
    assert made == [{"total": 7, "desc": "creditcard", "unit": "msg", "unit_scale": True}]
