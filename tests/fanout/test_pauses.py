"""The storm counter's rule (pure): when failing batches start a pause, and what follows."""

from __future__ import annotations

import datetime

from pushcore.db.pauses import StormState, storm_step

T0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
WINDOW, BATCHES, PAUSE = 10.0, 3, 30.0


def _at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def _step(state: StormState, seconds: float) -> tuple[StormState, bool]:
    return storm_step(state, _at(seconds), window=WINDOW, batches=BATCHES, pause=PAUSE)


def test_the_nth_failure_within_the_window_starts_a_pause() -> None:
    state = StormState(T0, 0, None)
    state, started = _step(state, 1)
    assert (state.failures, started) == (1, False)
    state, started = _step(state, 2)
    assert (state.failures, started) == (2, False)
    state, started = _step(state, 3)
    assert started
    assert state.paused_until == _at(33)


def test_failures_spread_wider_than_the_window_never_pause() -> None:
    state = StormState(T0, 0, None)
    for t in (1, 12, 23, 34, 45):  # one every 11 s, window 10 s
        state, started = _step(state, t)
        assert not started
        assert state.failures == 1


def test_failures_during_a_pause_are_not_counted() -> None:
    state = StormState(_at(33), BATCHES - 1, _at(33))
    for t in (5, 20, 32):
        new, started = _step(state, t)
        assert (new, started) == (state, False)


def test_one_failure_right_after_a_pause_pauses_again() -> None:
    state = StormState(_at(33), BATCHES - 1, _at(33))
    state, started = _step(state, 34)
    assert started
    assert state.paused_until == _at(64)


def test_a_quiet_window_after_a_pause_starts_counting_afresh() -> None:
    state = StormState(_at(33), BATCHES - 1, _at(33))
    state, started = _step(state, 50)  # 17 s after the pause ended: past the window
    assert (state.failures, started) == (1, False)
    assert state.window_started == _at(50)
