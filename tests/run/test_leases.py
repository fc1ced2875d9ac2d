"""Issue 12: heartbeats survive a database hiccup and stop once the claim is gone; the run
command takes the lease settings (TTL and wait) from its flags and environment."""

from __future__ import annotations

import threading
import time

from modelmanager.errors import DatabaseError
from modelmanager.run.leases import Heartbeat


def _beats_until(done: threading.Event, answers: list[object]) -> tuple[list[float], object]:
    calls: list[float] = []

    def beat() -> bool:
        calls.append(time.monotonic())
        answer = answers[min(len(calls), len(answers)) - 1]
        if len(calls) >= len(answers):
            done.set()
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    return calls, beat


def test_a_failed_beat_does_not_stop_the_heartbeat() -> None:
    done = threading.Event()
    hiccup = DatabaseError("the database is locked", transient=True)
    calls, beat = _beats_until(done, [hiccup, hiccup, True, True])
    with Heartbeat(beat, 0.01, "a test claim"):  # type: ignore[arg-type]
        assert done.wait(5), f"the heartbeat stopped after {len(calls)} beats"
    assert len(calls) >= 4


def test_a_lost_claim_stops_the_heartbeat() -> None:
    done = threading.Event()
    calls, beat = _beats_until(done, [True, False])
    with Heartbeat(beat, 0.01, "a test claim") as heartbeat:  # type: ignore[arg-type]
        assert done.wait(5)
        heartbeat._thread.join(5)
        assert not heartbeat._thread.is_alive()
        time.sleep(0.05)
    assert len(calls) == 2
