"""fine_tune's execution_timeout keeps firing until it is disarmed (ml.retrain.ops)."""

from __future__ import annotations

import signal
import time

from ml.retrain.ops import repeat_pending_alarm


def test_an_armed_alarm_fires_again_until_disarmed() -> None:
    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # as Airflow's timeout arms it: once
        repeat_pending_alarm(every=0.05)
        deadline = time.monotonic() + 2
        while len(fired) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        # A first alarm dropped (raised inside a weakref callback) is followed by more.
        assert len(fired) >= 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    count = len(fired)
    time.sleep(0.15)
    assert len(fired) == count  # disarmed: no more


def test_nothing_is_armed_when_no_timer_runs() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    repeat_pending_alarm(every=0.05)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
