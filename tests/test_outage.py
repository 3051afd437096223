"""One outage, one alert: a registry that is down is one `error` naming it and how many
watches and pins it holds up, and one `recovered` when it answers again; a target failing
alone on a registry that answers still gets its own `error`.

The integration test runs `tagwatch check` (one process per cycle, so every cycle starts
from the database, as after a restart) against the real distribution registry behind two
fault-injecting proxies, with a local json:// webhook as the alert target."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink

from tagwatch.core.model import EventKind, Failed, Missing, Policy, Resolved
from tagwatch.core.outage import Outage, RegistrySeen, decide_outage

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DOWN = Failed("reg.example: HTTP 503 Service Unavailable for a:1", "unavailable")
POLICY = Policy(error_after=3)


def seen(*observations: Any, fails: tuple[int, ...] = (3, 3, 3)) -> RegistrySeen:
    return RegistrySeen("reg.example", observations, fails, configured=6,
                        held_up=["reg.example/a:1", "reg.example/b:1"])


# --- the pure decision ------------------------------------------------------------------------

def test_every_tag_failing_unavailable_after_error_after_is_one_registry_error() -> None:
    decision = decide_outage(seen(DOWN, DOWN, DOWN), None, policy=POLICY, now=NOW)
    (event,) = decision.events
    assert event.kind is EventKind.ERROR and event.target == "registry:reg.example"
    assert (event.image, event.tag, event.subject) == ("reg.example", "", "registry reg.example")
    assert event.details["targets"] == 6 and event.details["failures"] == 3
    assert event.details["error"] == DOWN.message
    assert decision.covers and decision.outage == Outage(NOW, DOWN.message, 6)
    assert event.details["down_since"] == "2026-11-29T12:00:00Z"


def test_before_error_after_the_outage_is_held_back_and_no_target_alerts() -> None:
    decision = decide_outage(seen(DOWN, DOWN, fails=(2, 5)), None, policy=POLICY, now=NOW)
    assert decision.events == () and decision.covers
    assert decision.outage == Outage(NOW, DOWN.message, 6, alerted=False)
    # error_after reached later: the alert says since when it is down (the first cycle)
    later = NOW + timedelta(minutes=30)
    alert = decide_outage(seen(DOWN, DOWN), decision.outage, policy=POLICY, now=later)
    (event,) = alert.events
    assert event.details["down_since"] == "2026-11-29T12:00:00Z"
    assert event.details["down_seconds"] == 1800.0
    assert alert.outage == Outage(NOW, DOWN.message, 6, alerted=True)
    # back before error_after: nobody was told, nothing to say
    back = decide_outage(seen(DOWN, Missing()), decision.outage, policy=POLICY, now=later)
    assert back.events == () and back.outage is None and not back.covers


@pytest.mark.parametrize("other", [
    Resolved("sha256:" + "a" * 64, "application/vnd.oci.image.manifest.v1+json"),
    Missing(),
    Failed("reg.example: a:1: access denied (HTTP 403)", "auth"),
])
def test_a_registry_that_answers_for_any_tag_is_not_down(other: Any) -> None:
    decision = decide_outage(seen(DOWN, DOWN, other), None, policy=POLICY, now=NOW)
    assert decision == decide_outage(seen(other), None, policy=POLICY, now=NOW)
    assert decision.events == () and not decision.covers and decision.outage is None


def test_one_tag_is_not_enough_to_call_a_registry_down() -> None:
    decision = decide_outage(seen(DOWN, fails=(9,)), None, policy=POLICY, now=NOW)
    assert decision.events == () and not decision.covers


def test_down_stays_down_without_a_new_alert_and_recovers_once() -> None:
    before = Outage(NOW - timedelta(minutes=45), DOWN.message, 6)
    still = decide_outage(seen(DOWN, DOWN), before, policy=POLICY, now=NOW)
    assert still.events == () and still.covers and still.outage == before
    alone = decide_outage(seen(DOWN, fails=(1,)), before, policy=POLICY, now=NOW)
    assert alone.events == () and alone.covers  # one tag failing: still the outage
    back = decide_outage(seen(DOWN, Missing()), before, policy=POLICY, now=NOW)
    (event,) = back.events
    assert event.kind is EventKind.RECOVERED and back.outage is None and not back.covers
    assert event.details["down_since"] == "2026-11-29T11:15:00Z"
    assert event.details["down_seconds"] == 2700.0


# --- through `tagwatch check` -------------------------------------------------------------------

def tagwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tagwatch", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.integration
def test_a_registry_down_is_one_error_and_one_recovered(
        registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    down_repos = [unique_repo("down") for _ in range(3)]
    ok_repo, sick_repo = unique_repo("ok"), unique_repo("sick")
    digests = {repo: push.push_image(repo, "1", seed=repo)
               for repo in [*down_repos, ok_repo, sick_repo]}
    with FaultProxy(registry_anonymous.url) as outage, \
            FaultProxy(registry_anonymous.url) as healthy:
        config = tmp_path / "config.toml"
        lines = [f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\nerror_after = 2\n'
                 'timeout = "5s"\n']
        lines += [f'[[watch]]\nimage = "{outage.host}/{r}:1"\n' for r in down_repos]
        pinned = digests[down_repos[0]]  # a pin on a tag a watch has too: 4 targets, 3 tags
        lines.append(f'[[pin]]\nimage = "{outage.host}/{down_repos[0]}:1@{pinned}"\n')
        lines += [f'[[watch]]\nimage = "{healthy.host}/{r}:1"\n' for r in (ok_repo, sick_repo)]
        lines.append(f'[[notify]]\nurl = "{webhook.url}"\n')
        config.write_text("\n".join(lines))

        def check(*extra: str) -> subprocess.CompletedProcess[str]:
            return tagwatch("check", "-c", str(config), *extra)

        assert check().returncode == 0  # everything resolves: recorded, nothing to say
        outage.set_fault("status", code=503)  # the whole registry answers 503
        healthy.set_fault("status", code=503, match=f"/v2/{sick_repo}/")  # one tag only

        first = check()
        assert first.returncode == 1, first.stdout + first.stderr
        assert webhook.received == []  # error_after = 2: not yet

        webhook.set_failing(True)  # the alert target is down when the alerts are decided
        second = check()
        assert f"registry {outage.host} is down: one error alert for its 4 watches and pins" \
            in second.stdout, second.stdout
        assert "2 alerts failed (will retry)" in second.stdout, second.stdout
        webhook.set_failing(False)

        third = check("--json")  # the outbox delivers them now, once each
        assert third.returncode == 1
        titles = sorted(m["title"] for m in webhook.received)
        assert titles == sorted([
            f"[tagwatch] error: registry {outage.host} is down (4 watches and pins held up)",
            f"[tagwatch] error: {healthy.host}/{sick_repo}:1",
        ]), titles
        registry_alert = next(m for m in webhook.received if "registry" in m["title"])
        assert "failed checks in a row: 2" in registry_alert["message"]
        assert f"{outage.host}/{down_repos[0]}:1" in registry_alert["message"]
        # the per-target detail stays in status
        objects = json.loads(tagwatch("status", "--json", "-c", str(config)).stdout)
        held = [o for o in objects if o["image"].startswith(outage.host)]
        assert len(held) == 4 and {o["state"] for o in held} == {"error"}
        assert all("503" in (o["error"] or "") for o in held), held

        outage.clear()  # the registry answers again; the sick tag still fails
        back = check()
        assert f"registry {outage.host} answers again: one recovered alert" in back.stdout
        titles = [m["title"] for m in webhook.received[2:]]
        assert titles == [f"[tagwatch] recovered: registry {outage.host} answers again "
                          "(4 watches and pins)"], titles
        assert check().returncode == 1  # the sick tag still fails: nothing more to say
        assert len(webhook.received) == 3, [m["title"] for m in webhook.received]


def test_pins_held_by_a_down_engine_say_nothing_about_their_registry() -> None:
    """A container's pin whose engine cannot be read carries its source's failure: it was not
    asked of the registry, so it neither keeps a down registry from recovering nor keeps an
    up one from being judged down."""
    from tagwatch.check.outages import registry_outages
    from tagwatch.core.model import Kind, Outcome, Target, TargetView
    from tagwatch.core.refs import parse_ref

    def outcome(ref: str, obs: Any, fails: int = 3, **kw: Any) -> Outcome:
        target = Target(Kind.PIN, parse_ref(ref), **kw)
        return Outcome(target, obs, TargetView(), TargetView(fail_count=fails))

    held = outcome(f"reg.example/a:1@sha256:{'b' * 64}", Failed("engine unix:///x: down", "source"),
                   source_error="engine unix:///x: down")
    answered = Resolved("sha256:" + "a" * 64, "application/vnd.oci.image.manifest.v1+json")
    # Down before, answering now for a:1 (the held pin names the same tag): recovered.
    before = {"reg.example": Outage(NOW - timedelta(hours=1), DOWN.message, 3)}
    result = registry_outages([], [outcome("reg.example/a:1", answered, 0), held], before,
                              policy=POLICY, now=NOW, notifier=None)
    assert [p.event.kind for p in result.events] == [EventKind.RECOVERED]
    # Every tag the registry was asked for is unavailable: down, whatever the held pin says.
    asked = [outcome("reg.example/a:1", DOWN), outcome("reg.example/b:1", DOWN)]
    result = registry_outages([], [*asked, held], {}, policy=POLICY, now=NOW, notifier=None)
    assert [p.event.kind for p in result.events] == [EventKind.ERROR]
