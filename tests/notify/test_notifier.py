"""The notifier never blocks its caller; slow or failing sinks only lose their own messages."""

from __future__ import annotations

import io
import threading
import time

from gameday.notify import ConsoleSink, Notice, Notifier, SinkRetry, WarningNotice


def say(text: str) -> WarningNotice:
    """A notice of run r1 that says ``text``."""
    return WarningNotice(run="r1", text=text)


class HangingSink:
    name = "hangs"

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, notice: Notice) -> None:
        self.release.wait(30)


class FlakySink:
    name = "flaky"

    def __init__(self, failures: int, after: float | None = None) -> None:
        self.failures, self.after = failures, after
        self.delivered: list[tuple[str, float]] = []

    def send(self, notice: Notice) -> None:
        if self.failures:
            self.failures -= 1
            raise SinkRetry("429 rate limited", after=self.after)
        self.delivered.append((notice.text, time.monotonic()))


def test_post_returns_at_once_with_a_hung_sink() -> None:
    """A sink that never answers does not delay post() or other sinks."""
    hung, out = HangingSink(), io.StringIO()
    notifier = Notifier([hung, ConsoleSink(out)], size=3)
    slowest = 0.0
    for i in range(10):
        started = time.monotonic()
        notifier.post(say(f"message {i}"))
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)  # let the console keep up; the hung lane cannot
    assert slowest < 0.5
    assert notifier.flush(2) is False  # the hung lane cannot drain
    assert "message 9" in out.getvalue()
    notifier.close(timeout=0.2)
    hung.release.set()
    assert any(reason == "queue full" for _, _, reason in notifier.dropped)


def test_retry_after_is_honoured() -> None:
    """A sink asking to retry after 0.3 s gets its message delivered after the wait."""
    sink = FlakySink(failures=1, after=0.3)
    notifier = Notifier([sink])
    posted = time.monotonic()
    notifier.post(say("hello"))
    assert notifier.flush(10)
    assert sink.delivered and sink.delivered[0][1] - posted >= 0.3
    notifier.close()


def test_deadline_drops_and_reports() -> None:
    """A message that cannot be delivered before its deadline is dropped and reported."""
    drops: list[str] = []
    sink = FlakySink(failures=100, after=0.2)
    notifier = Notifier([sink], deadline=0.5, on_drop=lambda s, n, r: drops.append(n.text))
    notifier.post(say("guard tripped"))
    assert notifier.flush(10)
    assert drops == ["guard tripped"] and not sink.delivered
    notifier.close()


def test_a_crashing_sink_is_contained() -> None:
    """An unexpected exception in a sink is recorded as a drop, not raised."""
    class Broken:
        name = "broken"

        def send(self, notice: Notice) -> None:
            raise RuntimeError("bug")

    notifier = Notifier([Broken()])
    notifier.post(say("x"))
    assert notifier.flush(5)
    assert notifier.dropped[0][2] == "RuntimeError: bug"
    notifier.close()


def test_close_runs_each_sinks_close_after_its_last_notice() -> None:
    """A sink's close() runs once, in its own lane, after every notice it was given."""
    class Closing:
        name = "closing"

        def __init__(self) -> None:
            self.seen: list[str] = []

        def send(self, notice: Notice) -> None:
            time.sleep(0.05)
            self.seen.append(notice.text)

        def close(self) -> None:
            self.seen.append("closed")

    sink = Closing()
    notifier = Notifier([sink])
    for text in ("a", "b", "c"):
        notifier.post(say(text))
    notifier.close(timeout=5.0)
    assert sink.seen == ["a", "b", "c", "closed"]


def test_close_reports_a_notice_stuck_in_delivery_once() -> None:
    """A notice a hung sink still holds at close is reported dropped, and only once."""
    hung = HangingSink()
    drops: list[tuple[str, str]] = []
    notifier = Notifier([hung], on_drop=lambda s, n, r: drops.append((n.text, r)))
    notifier.post(say("stuck"))
    notifier.post(say("queued"))
    time.sleep(0.1)
    started = time.monotonic()
    notifier.close(timeout=0.2, grace=0.3)
    assert time.monotonic() - started < 2.0
    hung.release.set()
    time.sleep(0.1)
    assert drops == [("queued", "run ended before delivery"),
                     ("stuck", "run ended while it was being delivered (the sink did not "
                               "answer in time)")]
