"""The campaign state machine, as pure functions.

States follow the reference PBX: READY (can run; waiting for a start, a slot or its window),
STARTNOW (start requested for an on-demand campaign), RUNNING (dialing), PAUSED (no new calls),
COMPLETED (every number called, or attempted the maximum number of times).

Decisions where the reference is silent:
- `pause` works for both types; `resume` returns an on-demand campaign to STARTNOW and a
  scheduled one to READY (its window then decides).
- `start` is for on-demand campaigns only: a scheduled campaign starts by its schedule.
- `reset` re-arms a COMPLETED or PAUSED campaign: it goes back to READY.
- A scheduled campaign whose end has passed becomes COMPLETED even if numbers remain pending;
  `status` shows how many.
- A campaign in RUNNING with no pending number and no call in flight becomes COMPLETED.

A number's retry decision (``RetryPolicy.retry_after_s``) is here too, pure, for the results
writer (agi_campaign.results) and the completion forecast (agi_campaign.forecast) alike.
"""
import dataclasses
import enum

from agi_campaign.errors import StateError


class CampaignState(str, enum.Enum):
    READY = "ready"
    STARTNOW = "startnow"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"


S = CampaignState

ON_DEMAND = "on_demand"
SCHEDULED = "scheduled"

COMMANDS = ("start", "pause", "resume", "reset")

_COMMAND_TABLE = {
    ("start", ON_DEMAND): {S.READY: S.STARTNOW},
    ("pause", ON_DEMAND): {S.READY: S.PAUSED, S.STARTNOW: S.PAUSED, S.RUNNING: S.PAUSED},
    ("pause", SCHEDULED): {S.READY: S.PAUSED, S.RUNNING: S.PAUSED},
    ("resume", ON_DEMAND): {S.PAUSED: S.STARTNOW},
    ("resume", SCHEDULED): {S.PAUSED: S.READY},
    ("reset", ON_DEMAND): {S.COMPLETED: S.READY, S.PAUSED: S.READY},
    ("reset", SCHEDULED): {S.COMPLETED: S.READY, S.PAUSED: S.READY},
}


def command_target(name, ctype, state, command):
    """The state a user command moves campaign `name` to, or StateError saying why not."""
    state = S(state)
    if command not in COMMANDS:
        raise StateError("unknown campaign command %r; valid: %s" % (command, ", ".join(COMMANDS)))
    table = _COMMAND_TABLE.get((command, ctype))
    if table is None:
        raise StateError("campaign %s is scheduled: it starts by its start/end and week_time; "
                         "use 'pause' and 'resume' to hold it" % name)
    if state not in table:
        allowed = ", ".join(s.value.upper() for s in table)
        raise StateError("campaign %s is %s: '%s' applies only when it is %s"
                         % (name, state.value.upper(), command, allowed))
    return table[state]


def automatic_target(*, state, ctype, now, start, end, window_open, pending, in_flight):
    """The scheduler's own move for a campaign, as (new_state, cause), or None to stay.

    `pending` counts numbers not yet final (due now or later); `in_flight` counts calls.
    """
    state = S(state)
    if state in (S.PAUSED, S.COMPLETED):
        return None
    if ctype == ON_DEMAND:
        if state == S.STARTNOW:
            return S.RUNNING, "start requested"
        if state == S.RUNNING and pending == 0 and in_flight == 0:
            return S.COMPLETED, "every number is done or out of attempts"
        return None
    if end is not None and now >= end:
        if in_flight == 0:
            return S.COMPLETED, "end %s passed" % end.isoformat()
        return (S.READY, "end passed; waiting for calls in flight") if state == S.RUNNING else None
    if state == S.RUNNING:
        if pending == 0 and in_flight == 0:
            return S.COMPLETED, "every number is done or out of attempts"
        if not window_open or (start is not None and now < start):
            return S.READY, "outside its week_time window"
        return None
    in_time = (start is None or now >= start) and window_open
    if state == S.READY and in_time and pending > 0:
        return S.RUNNING, "window open"
    return None


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """``rules``: ``{outcome value: (delay_s, max or None)}`` for outcomes with a rule of their
    own (config ``retry:``); the others wait ``retry_delay_s``, capped by max_attempts only."""
    max_attempts: int
    retry_delay_s: int
    rules: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, campaign):
        """The policy of a config.CampaignConfig."""
        return cls(campaign.max_attempts, campaign.retry_delay_s,
                   {rule.outcome: (rule.delay_s, rule.max) for rule in campaign.retry})

    def retry_after_s(self, outcome, attempts, same):
        """Seconds until a number retries after its ``attempts``-th attempt ended in
        ``outcome`` (a value; not refused, which gives its attempt back), or None when the
        number is settled: answered (done), or failed when it had more attempts with this
        outcome than the outcome's ``max`` retries (``same``: how many, this one included; read
        only when the rule has a ``max``) or ``max_attempts`` in all."""
        if outcome == "answered":
            return None
        rule = self.rules.get(outcome)
        if (rule is not None and rule[1] is not None and same > rule[1]) \
                or attempts >= self.max_attempts:
            return None
        return float(rule[0] if rule is not None else self.retry_delay_s)
