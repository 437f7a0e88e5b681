"""What libraries print while a command runs (DSPy and GEPA logs, tqdm bars, warnings, the tracebacks they
log and go on from) goes to a log file in the run's folder instead of burying the result; `-v` shows it too."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


class _Tee:
    """A text stream writing to several: the log file, and the terminal when asked for."""

    def __init__(self, *streams: TextIO):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False  # tqdm draws one line per update instead of redrawing in place


def _stream_handlers(streams: tuple) -> list[logging.StreamHandler]:
    """Every logging handler that writes straight to one of `streams` (a handler set up before the capture
    holds the stream itself, so redirecting sys.stderr alone would miss it). One whose stream is a property
    (logging's last resort) reads sys.stderr at each write: the redirect reaches it."""
    loggers = [logging.getLogger(), *(logger for logger in logging.root.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return [handler for logger in loggers for handler in logger.handlers
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in streams
            and not isinstance(getattr(type(handler), "stream", None), property)]


OURS = str(Path(__file__).parents[1])  # warnings raised by sage_dspy itself (a failed MLflow log) stay in sight


def _show_ours(sink: TextIO, terminal: TextIO):
    """warnings.showwarning for the block: a warning sage_dspy raised (or of its classes, as a failed MLflow
    log's TrackingWarning) to the terminal, any other to the log."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        ours = str(filename).startswith(OURS) or category.__module__.startswith("sage_dspy")
        target = terminal if ours else sink
        target.write(warnings.formatwarning(message, category, filename, lineno, line))
    return showwarning


@contextlib.contextmanager
def library_output(path: Path, verbose: bool = False) -> Iterator[Path]:
    """Send stdout, stderr and every logging handler that writes to them into `path` (appended) for the
    block; with `verbose`, to the terminal as well. Warnings our own code raises still reach the terminal.
    Restored afterwards, whatever the block does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", buffering=1) as log:  # line by line: uploaded while open
        terminal = (sys.stdout, sys.stderr)
        sink = _Tee(log, sys.stderr) if verbose else _Tee(log)
        handlers = _stream_handlers(terminal)
        previous = [handler.setStream(sink) for handler in handlers]
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
                warnings.showwarning = _show_ours(sink, terminal[1])
                yield path
        finally:
            for handler, stream in zip(handlers, previous):
                handler.setStream(stream)
