"""Property: whatever the leads, the policy and the time, the selector never returns a lead that is in
quiet hours (center or the lead's known zone), on the DNC list, before its retry time, or over max attempts.

The expectations are computed here from first principles (wall clocks read with zoneinfo, a hand-written
table of the zones of the test numbers), not with the policy's own helpers.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leads.policy.selector import order_dialable
from leads.policy.values import DEFAULTS
from tests.policy_helpers import CENTER, lead, policy

# The numbers the leads get, with the one zone each is known to be in (None: a mobile, zone unknown).
KNOWN_ZONE = {"+74232123456": "Asia/Vladivostok", "+74012123456": "Europe/Kaliningrad",
              "+74951234567": "Europe/Moscow", "+73832123456": "Asia/Novosibirsk", "+79071234567": None}
EXPLICIT_ZONES = [None, None, "Asia/Yekaterinburg", "Asia/Vladivostok", "Europe/Kaliningrad"]
BASE = datetime(2026, 11, 23, 0, 0, tzinfo=ZoneInfo("UTC"))
STATUSES = ["new", "retry", "callback", "closed", "duplicate", "invalid", "dnc"]

clock_times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))


def quiet(when: datetime, zone: str, start: str, end: str) -> bool:
    local = when.astimezone(ZoneInfo(zone)).time()
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return (s <= local < e) if s < e else (local >= s or local < e)


@st.composite
def leads(draw, lead_id):
    status = draw(st.sampled_from(STATUSES))
    minutes = st.integers(-3 * 24 * 60, 3 * 24 * 60)
    received = BASE + timedelta(minutes=draw(minutes))
    attempts = draw(st.integers(0, 22))
    callback_at = BASE + timedelta(minutes=draw(minutes)) if status == "callback" else None
    next_attempt_at = draw(st.one_of(st.none(), minutes.map(lambda m: BASE + timedelta(minutes=m))))
    last_attempt_at = None
    if callback_at is not None and next_attempt_at is not None:
        last_attempt_at = callback_at   # a retry delay after an attempt made for the callback
    contacts = draw(st.integers(0, 3))
    return lead(lead_id, received, status=status, phone=draw(st.sampled_from(sorted(KNOWN_ZONE))),
                timezone=draw(st.sampled_from(EXPLICIT_ZONES)), attempts_count=attempts, contacts_count=contacts,
                last_contact_at=received + timedelta(hours=1) if contacts else None, last_attempt_at=last_attempt_at,
                next_attempt_at=next_attempt_at, callback_at=callback_at, on_dnc=draw(st.booleans()),
                callback_operator_id=draw(st.sampled_from([None, 1, 2])))


@st.composite
def policies(draw):
    start = draw(clock_times)
    end = draw(clock_times.filter(lambda t: t != start))
    tiers = draw(st.permutations(list(DEFAULTS.tier_order)))
    return policy(max_attempts=draw(st.integers(1, 20)), quiet_start=start, quiet_end=end,
                  unknown_zone_rule=draw(st.sampled_from(["center", "strict"])), tier_variant=draw(st.sampled_from([1, 2])),
                  tier_order=tiers)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=12, unique=True).flatmap(
    lambda ids: st.tuples(*[leads(i) for i in ids])), policies(),
       st.integers(-2 * 24 * 60, 2 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m)),
       st.one_of(st.none(), st.sets(st.sampled_from([1, 2, 3]))))
def test_selector_never_returns_a_lead_it_must_not_dial(candidates, chosen_policy, now, free_operators):
    for verdict in order_dialable(candidates, now, chosen_policy, CENTER, free_operators):
        facts = verdict.lead
        start, end = chosen_policy.quiet_start, chosen_policy.quiet_end
        assert facts.status in ("new", "retry", "callback")
        assert not quiet(now, "Europe/Moscow", start, end)
        own_zone = facts.timezone or KNOWN_ZONE[facts.phone_e164]
        if own_zone is not None:
            assert not quiet(now, own_zone, start, end)
        assert not facts.on_dnc
        assert facts.next_attempt_at is None or facts.next_attempt_at <= now or (
            facts.status == "callback" and facts.last_attempt_at < facts.callback_at)
        assert facts.attempts_count < chosen_policy.max_attempts
        if facts.status == "callback":
            assert facts.callback_at <= now
