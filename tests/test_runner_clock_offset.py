"""The search window of an ambiguous create, from measured clock offsets (literal times, no I/O)."""

from __future__ import annotations

import httpx
import pytest

from flux_batch.runner.client import ApiClient
from flux_batch.runner.clock_offset import MAX_SEND_S, SLACK_S, UNMEASURED_MARGIN_S, OffsetRange, Window

T = 1_750_000_000.0


def measured(*pairs: tuple[float, float]) -> OffsetRange:
    offsets = OffsetRange()
    for intent, created in pairs:
        offsets = offsets.observe(intent, created)
    return offsets


def test_before_any_answer_the_window_is_the_blind_allowance_both_ways() -> None:
    window = OffsetRange().window(T, T + 0.2)
    assert window == Window(T - UNMEASURED_MARGIN_S - SLACK_S, T + 0.2 + UNMEASURED_MARGIN_S + SLACK_S)


def test_the_first_answer_replaces_the_allowance_and_later_ones_widen_it() -> None:
    offsets = measured((T, T + 0.05))
    assert (offsets.low, offsets.high, offsets.samples) == (pytest.approx(0.05), pytest.approx(0.05), 1)
    offsets = offsets.observe(T + 10, T + 10.30).observe(T + 20, T + 20.10)
    assert (offsets.low, offsets.high, offsets.samples) == (pytest.approx(0.05), pytest.approx(0.30), 3)


@pytest.mark.parametrize("skew", [90.0, -90.0, 300.0, -300.0, 0.0])
def test_the_window_follows_a_skewed_clock_either_way(skew: float) -> None:
    # The API's clock reads ours + skew; requests take 40-120 ms to arrive.
    offsets = measured((T, T + skew + 0.04), (T + 1, T + 1 + skew + 0.12))
    intent, answered = T + 100, T + 100.3  # a 502 came back 300 ms after sending
    window = offsets.window(intent, answered, slack_s=0.5)
    assert window.after == pytest.approx(intent + skew + 0.04 - 0.5)
    assert window.before == pytest.approx(answered + skew + 0.12 + 0.5)
    for arrival in (0.0, 0.04, 0.12, 0.3):  # anywhere between sending and the answer, in the API's time
        assert window.after <= intent + skew + arrival < window.before
    # The blind allowance would have missed a clock ahead or behind by more than a minute.
    blind = OffsetRange().window(intent, answered, slack_s=0.5)
    assert (blind.after <= intent + skew + 0.04 < blind.before) == (abs(skew) < UNMEASURED_MARGIN_S)


def test_a_clock_stepped_mid_run_is_covered_once_one_create_answers_after_the_step() -> None:
    offsets = measured((T, T + 0.05)).observe(T + 50, T + 50 - 5 + 0.05)  # our clock jumped 5 s ahead
    window = offsets.window(T + 60, T + 60.1, slack_s=0.5)
    assert window.after <= T + 60 - 5 + 0.05 and window.before > T + 60.1 + 0.05


def test_sent_by_is_bounded_by_the_send_timeouts() -> None:
    offsets = measured((T, T))
    assert offsets.window(T, T + 3600, slack_s=0).before == T + MAX_SEND_S  # a resume hours later
    assert offsets.window(T, T - 5, slack_s=0).before == T  # a wall clock stepped back during the create


def test_max_send_covers_the_clients_pool_connect_and_write_timeouts() -> None:
    timeout = ApiClient(httpx.AsyncClient(), "http://api/v1", "t")._timeout()
    assert timeout.pool is not None and timeout.connect is not None and timeout.write is not None
    assert timeout.pool + timeout.connect + timeout.write <= MAX_SEND_S
