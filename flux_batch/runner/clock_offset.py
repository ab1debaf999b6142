"""When, in the API's time, an ambiguous create's prediction can have been created: bounds, measured.

Call ``skew`` the API's clock minus this machine's. Every create that answers brackets it: the API created
the prediction after we sent the request, so ``skew <= created_at - intent`` (``intent``: our wall clock
just before sending); and the answer left the API after every time it names, so
``skew >= latest - answered`` (``latest``: its ``completed_at`` if it finished, else its ``created_at``;
``answered``: our clock once the answer was in). Any delay on our side (a slow fsync before the send, a busy
event loop before the answer is read) or in the API's queue only widens a bracket: it always holds the
skew. (The lower edge used to come from the send side, the smallest ``created_at - intent`` seen, which
is an upper bound of the skew, not a lower one: when the first creates of a run were slow to leave this
machine, a later one that left at once was created before that edge, was not found, and was paid twice.)

:class:`OffsetRange` keeps the narrowest bracket that all of this run's answers agree on: a create that
finished within its ``Prefer: wait`` brackets the skew to the time on the wire, so a few of them make the
window tight whatever the others did. An answer whose bracket does not meet the kept one means a clock was
stepped or slewed (ours or the API's) since: the bracket then covers both settings, and later answers
narrow it to the new one. A change too small to show that way is within ``slack``.

A prediction made by an ambiguous create was created, in the API's time, within

    [intent + low - slack,  landed_by + high + slack)

where ``landed_by`` (our clock, :func:`landed_by`) is the latest moment the request can have been created:
``LANDING_S`` after the latest moment it can have left this machine (``sent_by``): when the error came back
(a 5xx answer, a timeout, a dropped connection), or, for a create of an earlier run that never got an
answer, when that run ended (it was gone before this run took the folder's lock); never later than
``intent + MAX_SEND_S`` (httpx's pool, connect and write timeouts as
:class:`~flux_batch.runner.client.ApiClient` sets them) for a create sent at ``intent``. An earlier run's
intent is recorded before its fsync and its limiter token, which have no timeout (a stalled disk, a
throttled account): when that run sent it is not known, only that it was before this run started, so its
window reaches this run's start (``sending``). It used to end ``MAX_SEND_S + LANDING_S`` after the
recorded intent: a create that waited longer for its token was made after the window, not found on
resume and created again (paid twice). A search that lists nothing before ``landed_by``
proves nothing, since the request may still be on its way: the caller searches again once it has passed.

Before any create has answered (the first seconds of a run) the range is the old blind allowance, +/-
``UNMEASURED_MARGIN_S``: such searches come at the start of a run, when few predictions exist in that
window, so they stay cheap. Resuming an earlier run's unanswered create uses it too: that intent was read
before this run's clock may have been stepped, so this run's measurements do not apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The blind allowance for clock skew, either way, until an offset has been measured.
UNMEASURED_MARGIN_S = 60.0
#: Rounded API timestamps, and a clock stepped between a measurement and a search, are covered by this.
SLACK_S = 1.0
#: The longest a create can take to leave this machine: httpx pool 30 s + connect 15 s + write 30 s.
MAX_SEND_S = 75.0
#: A create that has left this machine is made by the API within this long, or never: the time on the
#: wire and in the API's queue in front of its handler. (A killed run's last request may still be on its
#: way when the next run starts.)
LANDING_S = 5.0


@dataclass(frozen=True)
class Window:
    """API times (epoch seconds) to search: created at or after ``after`` and before ``before``."""

    after: float
    before: float


def landed_by(intent: float, sent_by: float) -> float:
    """The latest moment (our clock) a create sent at ``intent`` and gone by ``sent_by`` can be made."""
    return min(max(sent_by, intent), intent + MAX_SEND_S) + LANDING_S


@dataclass(frozen=True)
class OffsetRange:
    """The API's clock minus ours (seconds) is at least ``low`` and at most ``high``, as this run's answered
    creates tell; ``samples`` 0: not measured yet (the blind allowance)."""

    low: float = -UNMEASURED_MARGIN_S
    high: float = UNMEASURED_MARGIN_S
    samples: int = 0

    def observe(
        self, intent: float, answered: float, created_at: float, latest: float | None = None
    ) -> OffsetRange:
        """The range with one more answered create: sent at ``intent`` and answered at ``answered`` (our
        clock), created at ``created_at`` and naming no API time later than ``latest`` (default
        ``created_at``). The first replaces the blind allowance."""
        high = created_at - intent
        # An answer naming a time later than its round trip allows is wrong about it: keep what is sure.
        low = min(max(created_at, latest if latest is not None else created_at) - answered, high)
        if not self.samples:
            return OffsetRange(low, high, 1)
        if low <= self.high and high >= self.low:
            return OffsetRange(max(self.low, low), min(self.high, high), self.samples + 1)
        # It disagrees with every earlier answer: a clock was stepped. Cover the old setting and the new.
        return OffsetRange(min(self.low, low), max(self.high, high), self.samples + 1)

    def window(
        self, intent: float, sent_by: float, slack_s: float = SLACK_S, *, sending: float | None = None
    ) -> Window:
        """Where the prediction of a create sent at ``intent`` and gone by ``sent_by`` (our clock) can be;
        ``sending``: the latest moment it can have been handed to the client, if later than ``intent``."""
        start = intent if sending is None else sending
        return Window(intent + self.low - slack_s, landed_by(start, sent_by) + self.high + slack_s)
