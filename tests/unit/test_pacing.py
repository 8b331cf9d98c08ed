"""The pacing scripts on fakeredis, with an explicit clock."""

from __future__ import annotations

import fakeredis
import pytest

from twilio_jobs import keys
from twilio_jobs.pacing import sender_rate
from twilio_jobs.pacing.pacer import Lane, Pacer
from twilio_jobs.settings import Settings

ACCOUNT = "AC" + "0" * 32


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, account_max_in_flight=3)  # type: ignore[call-arg]


@pytest.fixture
def pacer(settings: Settings) -> Pacer:
    return Pacer(fakeredis.FakeRedis(decode_responses=True), settings)


def lane(interval: float = 0.0, cap: int = 3, campaign: str = "") -> Lane:
    return Lane(ACCOUNT, "+15005550006", interval, cap, campaign)


def test_in_flight_cap_and_release(pacer: Pacer) -> None:
    grants = [pacer.acquire(lane(), 100.0) for _ in range(4)]
    assert [len(g.leases) for g in grants] == [1, 1, 1, 0]
    assert grants[3].reason == "inflight"
    pacer.release(lane(), grants[0].leases)
    assert pacer.acquire(lane(), 100.1).leases


def test_leases_of_a_dead_worker_expire(pacer: Pacer) -> None:
    many = pacer.acquire(lane(), 100.0, want=5)
    assert len(many.leases) == 3
    assert not pacer.acquire(lane(), 100.0 + pacer.lease_seconds - 1).leases
    assert len(pacer.acquire(lane(), 100.0 + pacer.lease_seconds + 1, want=3).leases) == 3


def test_rate_grants_are_spaced_and_bounded_by_the_horizon(pacer: Pacer) -> None:
    fast = lane(interval=0.1, cap=100)
    grant = pacer.acquire(fast, 50.0, want=10)
    assert grant.starts == pytest.approx((0.0, 0.1, 0.2))  # 0.25 s ahead at most
    denied = pacer.acquire(fast, 50.0)
    assert denied.reason == "rate" and denied.wait == pytest.approx(0.05)
    later = pacer.acquire(fast, 50.3, want=1)
    assert later.starts == pytest.approx((0.0,))


def test_aimd_halves_once_per_interval_recovers_and_holds(pacer: Pacer, settings: Settings) -> None:
    big = Lane(ACCOUNT, "+15005550006", 0.0, 20)
    settings.account_limits[ACCOUNT] = 20
    assert pacer.throttled(ACCOUNT, 10.0, None) == 10
    # Within aimd_cut_interval no second cut, and half a slot regained meanwhile.
    assert pacer.throttled(ACCOUNT, 10.5, None) == 10.5
    assert pacer.throttled(ACCOUNT, 11.0, None) == 5  # (10 + 1 regained) / 2, floored
    assert len(pacer.acquire(big, 11.0, want=20).leases) == 5
    held = pacer.throttled(ACCOUNT, 12.0, retry_after=3.0)
    assert held == 3  # (5 + 1 regained) / 2
    blocked = pacer.acquire(big, 13.0)
    assert blocked.reason == "hold" and blocked.wait == pytest.approx(2.0)
    # Recovery: one slot per second, up to the configured cap.
    assert len(pacer.acquire(big, 30.0, want=20).leases) == 15  # 20 minus the 5 still held


def test_campaign_state_gates_acquire(pacer: Pacer) -> None:
    pacer.redis.hset(keys.campaign("CP1"), "state", "paused")
    assert pacer.acquire(lane(campaign="CP1"), 1.0).reason == "paused"
    pacer.redis.hset(keys.campaign("CP1"), "state", "active")
    assert pacer.acquire(lane(campaign="CP1"), 1.0).leases


def test_backlog_hands_out_places_in_line(pacer: Pacer) -> None:
    slow = lane(interval=1.0, cap=100)
    pacer.acquire(slow, 0.0)
    dues = [pacer.backlog_due(slow, 0.0) for _ in range(3)]
    lead = pacer.settings.pace_max_wait / 2
    assert dues == pytest.approx([2.0 - lead, 3.0 - lead, 4.0 - lead])


def test_sender_rate_defaults_by_type(settings: Settings) -> None:
    settings.sender_rates["+14155550100"] = 7
    assert sender_rate("+14155550100", settings) == 7
    assert sender_rate("+14155550111", settings) == settings.long_code_mps == 1
    assert sender_rate("+18005550100", settings) == 3
    assert sender_rate("12345", settings) == 100
    assert sender_rate("MG" + "0" * 32, settings) == 10


def test_one_wait_policy_for_threads_and_the_campaign_loop() -> None:
    from twilio_jobs.pacing.lane import Grant
    from twilio_jobs.pacing.wait import FIRST_STEP, MAX_STEP, WaitPolicy

    thread = WaitPolicy(pace_max_wait=1.0, lease_seconds=25.0, holds_thread=True)
    loop = WaitPolicy(pace_max_wait=1.0, lease_seconds=25.0, holds_thread=False)
    full = Grant(reason="inflight")
    # A full account: a thread waits up to pace_max_wait, a coroutine up to a third of the lease.
    assert thread.next_wait(full, 0.9, 0.05) == 0.05
    assert thread.next_wait(full, 0.99, 0.05) is None
    assert loop.next_wait(full, 8.0, FIRST_STEP) == FIRST_STEP
    assert loop.next_wait(full, 8.34, FIRST_STEP) is None
    # A thread backs off; the loop's one asker per lane keeps polling.
    assert thread.next_step(0.08) == MAX_STEP and loop.next_step(FIRST_STEP) == FIRST_STEP
    # A rate lane or a Retry-After hold: Redis says how long, bounded by pace_max_wait.
    for policy in (thread, loop):
        assert policy.next_wait(Grant(wait=0.3, reason="rate"), 0.5, FIRST_STEP) == 0.3
        assert policy.next_wait(Grant(wait=0.3, reason="hold"), 0.8, FIRST_STEP) is None
        assert policy.next_wait(Grant(wait=5.0, reason="rate"), 0.0, FIRST_STEP) is None
        for reason in ("paused", "cancelled"):
            assert policy.next_wait(Grant(reason=reason), 0.0, FIRST_STEP) is None


def test_a_full_account_is_shared_between_the_processes_that_wait_for_it(
    settings: Settings,
) -> None:
    """A process's pump hands finished slots back in the acquire that takes new ones: without
    a share, the process that first filled the account would keep every slot while it has
    work, and another process's sends would wait until they went back to the scheduler."""
    redis = fakeredis.FakeRedis(decode_responses=True)
    a, b = Pacer(redis, settings, holder="host:1:aaa"), Pacer(redis, settings, holder="host:2:bbb")
    ten = lane(cap=10)

    def recycle(pacer: Pacer, now: float, want: int, release: tuple[str, ...]) -> tuple[str, ...]:
        keys_, args, prefix = pacer.acquire_args(ten, want, now, release)
        return pacer.grant(pacer._acquire(keys=keys_, args=args), prefix).leases

    held_a = a.acquire(ten, 100.0, want=10).leases
    assert len(held_a) == 10
    assert b.acquire(ten, 100.01, want=4).reason == "inflight"  # b now waits
    # a frees 4 and asks again in one step: with b waiting, a may hold 5 (10 / 2): none now.
    assert recycle(a, 100.02, 10, held_a[:4]) == ()
    assert len(b.acquire(ten, 100.03, want=4).leases) == 4
    # Nobody else has asked for a while: a alone may take what is free again.
    assert len(recycle(a, 101.0, 10, held_a[4:])) == 6
    assert redis.zcard(keys.in_flight(ACCOUNT)) == 10
