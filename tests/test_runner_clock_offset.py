"""The search window of an ambiguous create, from measured clock offsets (literal times, no I/O)."""

from __future__ import annotations

import httpx
import pytest

from flux_batch.runner.client import ApiClient
from flux_batch.runner.clock_offset import (
    LANDING_S,
    MAX_SEND_S,
    SLACK_S,
    UNMEASURED_MARGIN_S,
    OffsetRange,
    Window,
    landed_by,
)

T = 1_750_000_000.0


def measured(*samples: tuple[float, float, float, float]) -> OffsetRange:
    """``(intent, answered, created_at, completed_at)`` of each answered create, in order."""
    offsets = OffsetRange()
    for intent, answered, created, completed in samples:
        offsets = offsets.observe(intent, answered, created, completed)
    return offsets


def test_before_any_answer_the_window_is_the_blind_allowance_both_ways() -> None:
    window = OffsetRange().window(T, T + 0.2)
    assert window == Window(
        T - UNMEASURED_MARGIN_S - SLACK_S, T + 0.2 + LANDING_S + UNMEASURED_MARGIN_S + SLACK_S
    )


def test_each_answer_brackets_the_skew_and_the_bracket_is_what_they_all_agree_on() -> None:
    # Sent at T, created 50 ms later by our clock, done 400 ms after that, answered 30 ms later.
    offsets = measured((T, T + 0.48, T + 0.05, T + 0.45))
    assert (offsets.low, offsets.high, offsets.samples) == (pytest.approx(-0.03), pytest.approx(0.05), 1)
    # Unfinished when the wait ran out (only its creation time is known): it adds nothing. A faster one
    # narrows the bracket.
    offsets = offsets.observe(T + 10, T + 11.1, T + 10.3)
    assert (offsets.low, offsets.high, offsets.samples) == (pytest.approx(-0.03), pytest.approx(0.05), 2)
    offsets = offsets.observe(T + 20, T + 20.43, T + 20.02, T + 20.42)
    assert (offsets.low, offsets.high, offsets.samples) == (pytest.approx(-0.01), pytest.approx(0.02), 3)


def test_an_answer_naming_a_time_its_round_trip_cannot_hold_does_not_narrow_the_window() -> None:
    offsets = measured((T, T + 0.5, T + 0.05, T + 3600))  # completed an hour after it was answered?
    assert offsets.low == pytest.approx(0.05) == offsets.high


def test_a_create_faster_than_every_measured_one_is_still_in_the_window() -> None:
    """#9.6: the first creates of a run were slow to leave this machine (a 1.5 s fsync of the intent on a
    busy disk); the window's lower edge came from them (send time + the smallest created_at - send time,
    - 1 s) and missed a later create that left at once: it was created again and paid twice."""
    slow_send = [(T + i, T + i + 2.0, T + i + 1.5, T + i + 1.9) for i in range(3)]
    offsets = measured(*slow_send)
    intent = T + 10
    created = intent + 0.04  # this one went out at once, then a 502 came back
    window = offsets.window(intent, intent + 0.1)
    assert window.after <= created < window.before


@pytest.mark.parametrize("skew", [90.0, -90.0, 300.0, -300.0, 0.0])
def test_the_window_follows_a_skewed_clock_either_way(skew: float) -> None:
    # The API's clock reads ours + skew; requests take 40-120 ms to arrive and 10-30 ms to come back.
    offsets = measured(
        (T, T + 0.45, T + skew + 0.04, T + skew + 0.44), (T + 1, T + 1.65, T + 1 + skew + 0.12, None)
    )
    assert (offsets.low, offsets.high) == (pytest.approx(skew - 0.01), pytest.approx(skew + 0.04))
    intent, answered = T + 100, T + 100.3  # a 502 came back 300 ms after sending
    window = offsets.window(intent, answered, slack_s=0.5)
    assert window.after == pytest.approx(intent + skew - 0.01 - 0.5)
    assert window.before == pytest.approx(answered + LANDING_S + skew + 0.04 + 0.5)
    for arrival in (0.0, 0.04, 0.12, 0.3, 0.3 + LANDING_S):  # sending .. the answer, then on its way
        assert window.after <= intent + skew + arrival < window.before
    # The blind allowance would have missed a clock ahead or behind by more than a minute.
    blind = OffsetRange().window(intent, answered, slack_s=0.5)
    assert (blind.after <= intent + skew + 0.04 < blind.before) == (abs(skew) < UNMEASURED_MARGIN_S)


@pytest.mark.parametrize("step", [5.0, -5.0, 0.3, -0.3])
def test_a_clock_stepped_mid_run_is_covered_once_one_create_answers_after_the_step(step: float) -> None:
    # Our clock jumps ``step`` s ahead between two answered creates: the skew changes by -step.
    before_step = (T, T + 0.2, T + 0.05, T + 0.15)
    after_step = (T + 50, T + 50.2, T + 50.05 - step, T + 50.15 - step)
    window = measured(before_step, after_step).window(T + 60, T + 60.1)
    for skew in (0.0, -step):  # a create sent before the step and searched after it, or sent after it
        assert window.after <= T + 60 + skew and T + 60.1 + skew < window.before


def test_sent_by_is_bounded_by_the_send_timeouts() -> None:
    assert landed_by(T, T + 3600) == T + MAX_SEND_S + LANDING_S  # a resume hours later
    assert landed_by(T, T - 5) == T + LANDING_S  # a wall clock stepped back during the create
    offsets = measured((T, T, T, T))
    assert offsets.window(T, T + 3600, slack_s=0).before == T + MAX_SEND_S + LANDING_S


def test_a_create_handed_to_the_client_late_is_bounded_from_then() -> None:
    """An earlier run's create, sent at some unknown moment before this run started (its intent waited for
    its fsync and its token): the window reaches that start, whatever the intent."""
    window = OffsetRange().window(T, T + 3600, slack_s=0, sending=T + 3600)
    assert window.after == T - UNMEASURED_MARGIN_S
    assert window.before == T + 3600 + LANDING_S + UNMEASURED_MARGIN_S


def test_max_send_covers_the_clients_pool_connect_and_write_timeouts() -> None:
    timeout = ApiClient(httpx.AsyncClient(), "http://api/v1", "t")._timeout()
    assert timeout.pool is not None and timeout.connect is not None and timeout.write is not None
    assert timeout.pool + timeout.connect + timeout.write <= MAX_SEND_S
