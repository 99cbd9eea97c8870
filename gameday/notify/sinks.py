"""Built-in sinks: the console and the run's journal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from gameday.notes import NoticeNote
from gameday.notify.core import Notice

_MARK = {"info": "·", "warning": "!", "critical": "‼"}


class ConsoleSink:
    """Prints one line per notice, for whoever started the run."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, notice: Notice) -> None:
        """Print the notice with a time stamp and a level mark."""
        stamp = time.strftime("%H:%M:%S", time.localtime(notice.at))
        print(f"{stamp} {_MARK[notice.level]} [{notice.kind}] {notice.text}", file=self.stream,
              flush=True)


class JournalSink:
    """Records every notice in the run's journal, so the report can show what was said."""

    name = "journal"

    def __init__(self, write: Callable[[NoticeNote], None]) -> None:
        self._write = write

    def send(self, notice: Notice) -> None:
        """Append the notice as a ``notice`` note: its kind, level and text."""
        self._write(NoticeNote(notice=notice.kind, level=notice.level, message=notice.text))
