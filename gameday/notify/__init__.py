"""Notifications off the safety path: a bounded queue per sink, retries, a deadline.

``Notifier.post`` never blocks and never raises: a slow, failing or hung sink only delays its own
messages, and what cannot be delivered before its deadline is dropped and the drop journaled.
"""

from gameday.notify.core import Notice, Notifier, Sink, SinkRetry
from gameday.notify.sinks import ConsoleSink, JournalSink

__all__ = ["ConsoleSink", "JournalSink", "Notice", "Notifier", "Sink", "SinkRetry"]
