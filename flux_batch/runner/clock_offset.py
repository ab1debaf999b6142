"""When, in the API's time, an ambiguous create's prediction can have been created: the offset, measured.

Every create that answers tells us the API's ``created_at`` for a request whose send time (``intent``, our
wall clock) we know. Their difference, the *offset*, is the clock skew between this machine and the API
plus the time the request took to reach it. :class:`OffsetRange` keeps the smallest and largest offset seen
in this run. A prediction made by an ambiguous create was created, in the API's time, within

    [intent + low - slack,  sent_by + high + slack)

where ``sent_by`` is the latest moment the request can have left this machine: the moment the error came
back (a 5xx answer comes after the creation; a timeout or dropped connection after the last byte was sent),
and never later than ``intent + MAX_SEND_S`` (httpx's pool, connect and write timeouts as
:class:`~flux_batch.runner.client.ApiClient` sets them). A create held by ``Prefer: wait`` is created when
the request arrives, not when it answers, so the wait does not widen the window. ``slack`` covers a request
a little faster or slower than any seen. The range only ever widens, so a clock stepped or slewed during the
run stays covered once one create has answered after the change.

Before any create has answered (the first seconds of a run) the range is the old blind allowance, +/-
``UNMEASURED_MARGIN_S``: such searches come at the start of a run, when few predictions exist in that
window, so they stay cheap. Resuming an earlier run's unanswered create uses it too: that intent was read
before this run's clock may have been stepped, so this run's measurements do not apply to it. The HTTP
``Date`` header (1 s resolution) could seed the range earlier, but only the client sees it; the first
answered create is as early in practice, and exact to the millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The blind allowance for clock skew, either way, until an offset has been measured.
UNMEASURED_MARGIN_S = 60.0
#: A request faster or slower than every one measured, by this much, is still found.
SLACK_S = 1.0
#: The longest a create can take to leave this machine: httpx pool 30 s + connect 15 s + write 30 s.
MAX_SEND_S = 75.0


@dataclass(frozen=True)
class Window:
    """API times (epoch seconds) to search: created at or after ``after`` and before ``before``."""

    after: float
    before: float


@dataclass(frozen=True)
class OffsetRange:
    """The smallest and largest ``created_at - intent`` seen (seconds); ``samples`` 0: not measured yet."""

    low: float = -UNMEASURED_MARGIN_S
    high: float = UNMEASURED_MARGIN_S
    samples: int = 0

    def observe(self, intent: float, created_at: float) -> OffsetRange:
        """The range widened by one answered create (the first replaces the blind allowance)."""
        offset = created_at - intent
        if not self.samples:
            return OffsetRange(offset, offset, 1)
        return OffsetRange(min(self.low, offset), max(self.high, offset), self.samples + 1)

    def window(self, intent: float, sent_by: float, slack_s: float = SLACK_S) -> Window:
        """Where the prediction of a create sent at ``intent`` and gone by ``sent_by`` (our clock) can be."""
        sent_by = min(max(sent_by, intent), intent + MAX_SEND_S)
        return Window(intent + self.low - slack_s, sent_by + self.high + slack_s)
