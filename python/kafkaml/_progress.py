"""Progress bars for long reads and writes: tqdm's notebook widget in Jupyter, its text bar
elsewhere, and a small text bar of our own when tqdm is not installed.

``tqdm.auto`` alone warns ("IProgress not found...") on every bar in a notebook without
ipywidgets; :func:`progress_bar` checks first and quietly uses the text bar there.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Protocol, TextIO

__all__ = ["ProgressBar", "progress_bar", "TextBar"]


class ProgressBar(Protocol):
    """What kafkaml uses of a bar: tqdm's and :class:`TextBar` both provide it."""

    n: float
    total: float | None

    def update(self, n: float = 1) -> Any:
        """Advances the bar by ``n``."""

    def close(self) -> None:
        """Draws the final state and releases the bar."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython), as tqdm.autonotebook decides."""
    ipython_module = sys.modules.get("IPython")  # never import IPython just to ask
    if ipython_module is None:
        return False
    try:
        shell = ipython_module.get_ipython()
    except Exception:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _notebook_widgets_work() -> bool:
    """True when tqdm's notebook bar can draw (it needs ipywidgets' progress widget)."""
    try:
        from tqdm.notebook import IProgress  # tqdm's own check: None without ipywidgets
    except Exception:
        return False
    return IProgress is not None


def progress_bar(total: int | None, desc: str, unit: str = "msg", *, file: TextIO | None = None) -> ProgressBar:
    """A progress bar for ``total`` units (``None``: unknown, counts only), labelled ``desc``.

    In Jupyter with ipywidgets: tqdm's notebook widget (``tqdm.auto``); elsewhere, or without
    ipywidgets: tqdm's text bar on stderr; without tqdm: a :class:`TextBar`. Use it as a
    context manager and call ``update(n)``; ``n`` is the count so far.
    """
    stream = sys.stderr if file is None else file
    try:
        from tqdm.std import tqdm as text_tqdm
    except ImportError:
        return TextBar(total, desc, unit, file=stream)
    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "unit_scale": True}
    if file is None and _in_notebook() and _notebook_widgets_work():
        from tqdm.auto import tqdm as auto_tqdm

        bar: ProgressBar = auto_tqdm(**options)
        return bar
    return text_tqdm(file=stream, **options)


class TextBar:
    """A minimal text progress bar (used when tqdm is not installed): redrawn in place at most
    ten times a second on a terminal; elsewhere (a log file) one line when closed."""

    _REDRAW_S = 0.1
    _WIDTH = 25

    def __init__(self, total: int | None, desc: str, unit: str = "msg", *, file: TextIO | None = None) -> None:
        """A bar of ``total`` units (``None``: unknown) labelled ``desc``, drawn on ``file``
        (default stderr)."""
        self.n: float = 0
        self.total: float | None = total
        self.desc = desc
        self.unit = unit
        self._file = sys.stderr if file is None else file
        self._interactive = bool(getattr(self._file, "isatty", lambda: False)())
        self._drawn_at = 0.0
        self._closed = False

    def update(self, n: float = 1) -> None:
        """Advances the bar by ``n`` and redraws it (throttled)."""
        self.n += n
        now = time.monotonic()
        if self._interactive and now - self._drawn_at >= self._REDRAW_S:
            self._drawn_at = now
            self._file.write("\r" + self.text())
            self._file.flush()

    def text(self) -> str:
        """The bar as one line, e.g. ``topic:  40%|##########               | 400/1,000 msg``."""
        count = f"{int(self.n):,}"
        if not self.total:
            return f"{self.desc}: {count} {self.unit}"
        fraction = min(max(self.n / self.total, 0.0), 1.0)
        filled = int(fraction * self._WIDTH)
        bar = "#" * filled + " " * (self._WIDTH - filled)
        return f"{self.desc}: {fraction:4.0%}|{bar}| {count}/{int(self.total):,} {self.unit}"

    def close(self) -> None:
        """Draws the final state and ends the line."""
        if self._closed:
            return
        self._closed = True
        self._file.write(("\r" if self._interactive else "") + self.text() + "\n")
        self._file.flush()

    def __enter__(self) -> TextBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TextBar({self.text()!r})"
