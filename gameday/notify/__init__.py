"""Notifications off the safety path: a bounded queue per sink, retries, a deadline.

``Notifier.post`` never blocks and never raises: a slow, failing or hung sink only delays its own
messages, and what cannot be delivered before its deadline is dropped and the drop journaled.
Each kind of notice is its own record (:mod:`gameday.notify.notices`). Sinks: the console, the
journal, Slack (threads or a webhook) and run metrics on a Pushgateway; ``sinks_for`` builds
those an environment asks for.
"""

from gameday.notify.build import run_url, sinks_for
from gameday.notify.core import Notifier, Sink, SinkError, SinkRetry
from gameday.notify.notices import (
    NOTICE_TYPES,
    BaselineFigure,
    BreachNotice,
    Notice,
    ProbeNotice,
    RecoveryNotice,
    RollbackFailedNotice,
    RollbackNotice,
    SearchNotice,
    SignoffGrantedNotice,
    SignoffRequestedNotice,
    SignoffTimedOutNotice,
    StartNotice,
    StepNotice,
    SuiteNotice,
    SuiteRow,
    SummaryNotice,
    SweepNotice,
    VanishedNotice,
    WaitingNotice,
    WarningNotice,
)
from gameday.notify.pushgateway import RunLabels, RunMetricsSink
from gameday.notify.sinks import ConsoleSink, JournalSink
from gameday.notify.slack import SlackConfig, SlackSink

__all__ = ["NOTICE_TYPES", "BaselineFigure", "BreachNotice", "ConsoleSink", "JournalSink",
           "Notice", "Notifier", "ProbeNotice", "RecoveryNotice", "RollbackFailedNotice",
           "RollbackNotice", "RunLabels", "RunMetricsSink", "SearchNotice", "SignoffGrantedNotice",
           "SignoffRequestedNotice", "SignoffTimedOutNotice", "Sink", "SinkError", "SinkRetry",
           "SlackConfig", "SlackSink", "StartNotice", "StepNotice", "SuiteNotice", "SuiteRow",
           "SummaryNotice", "SweepNotice",
           "VanishedNotice", "WaitingNotice", "WarningNotice", "run_url", "sinks_for"]
