"""POST /api/v1/contracts/<number>/events with the status codes of PRODUCT.md §5."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.money import balances, build_world, entries, sign


@pytest.fixture
def world(demo_app, clock):
    build_world(demo_app, clock)
    return demo_app


def _key(world, scopes=("contracts:events",), name="billing"):
    runner = world.test_cli_runner()
    args = ["crm", "api-key", "create", "--name", name]
    for s in scopes:
        args += ["--scope", s]
    return runner.invoke(args=args).output.splitlines()[-1]


def test_events_flow_with_replays_conflicts_and_refusals(world, clock):
    number = sign(world, clock)
    key = _key(world)
    client = world.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    clock.advance(hours=3)
    at = clock.now().isoformat()
    url = f"/api/v1/contracts/{number}/events"

    applied = client.post(url, json={"event_id": "bill-1", "event": "activated", "at": at}, headers=headers)
    assert applied.status_code == 201
    body = applied.get_json()
    assert body["status"] == "activated" and [e["kind"] for e in body["ledger_entries"]] == [
        "release", "earned", "release", "earned"]
    assert body["ledger_entries"][1]["amount"] == "1500.00"

    replay = client.post(url, json={"event_id": "bill-1", "event": "activated", "at": at}, headers=headers)
    assert replay.status_code == 200 and replay.get_json() == body
    assert len(entries(world)) == 6

    changed = client.post(url, json={"event_id": "bill-1", "event": "activated",
                                     "at": (clock.now() - timedelta(minutes=1)).isoformat()}, headers=headers)
    assert changed.status_code == 409 and changed.get_json()["error"]["code"] == "replay_differs"
    assert "at" in changed.get_json()["error"]["fields"]

    refused = client.post(url, json={"event_id": "bill-2", "event": "paid", "at": at}, headers=headers)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "transition_refused"

    unknown = client.post("/api/v1/contracts/D-2026-999999/events",
                          json={"event_id": "x", "event": "paid", "at": at}, headers=headers)
    assert unknown.status_code == 404

    cancel_without_reason = client.post(url, json={"event_id": "bill-3", "event": "cancelled", "at": at}, headers=headers)
    assert cancel_without_reason.status_code == 422
    cancelled = client.post(url, json={"event_id": "bill-3", "event": "cancelled", "at": at,
                                       "reason": "переехал"}, headers=headers)
    assert cancelled.status_code == 201
    assert balances(world, "agent1") == {"pending": 0, "payable": 0}  # clawed back inside the window


@pytest.mark.parametrize("body, field", [
    ({"event": "paid", "at": "2026-11-20T10:00:00+05:00"}, "event_id"),
    ({"event_id": "e", "event": "shipped", "at": "2026-11-20T10:00:00+05:00"}, "event"),
    ({"event_id": "e", "event": "paid", "at": "yesterday"}, "at"),
    ({"event_id": "e", "event": "paid", "at": "2026-11-20T10:00:00+05:00", "reason": 5}, "reason"),
    ({"event_id": "x" * 101, "event": "paid", "at": "2026-11-20T10:00:00+05:00"}, "event_id"),
])
def test_invalid_bodies_get_422_naming_the_field_and_write_nothing(world, clock, body, field):
    number = sign(world, clock)
    key = _key(world)
    response = world.test_client().post(f"/api/v1/contracts/{number}/events", json=body,
                                        headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    assert len(entries(world)) == 2


def test_not_json_future_times_and_keys(world, clock):
    number = sign(world, clock)
    url = f"/api/v1/contracts/{number}/events"
    client = world.test_client()
    good = {"event_id": "e1", "event": "paid", "at": clock.now().isoformat()}
    assert client.post(url, json=good).status_code == 401
    wrong_scope = _key(world, ("buildings:write",), "network")
    assert client.post(url, json=good, headers={"Authorization": f"Bearer {wrong_scope}"}).status_code == 403
    key = _key(world)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post(url, data="not json", headers={**headers, "Content-Type": "application/json"}
                       ).status_code == 422
    future = {**good, "at": (clock.now() + timedelta(minutes=6)).isoformat()}
    assert client.post(url, json=future, headers=headers).status_code == 422
    world.test_cli_runner().invoke(args=["crm", "api-key", "revoke", "billing"])
    assert client.post(url, json=good, headers=headers).status_code == 401
    assert len(entries(world)) == 2


def test_the_event_is_audited_with_the_key_as_actor(world, clock):
    from sqlalchemy import select

    from crm.audit.models import AuditEvent
    from crm.extensions import db

    number = sign(world, clock)
    key = _key(world)
    world.test_client().post(f"/api/v1/contracts/{number}/events", headers={"Authorization": f"Bearer {key}"},
                             json={"event_id": "p1", "event": "paid", "at": clock.now().isoformat()})
    with world.app_context():
        event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.position.desc())).first()
        assert (event.action, event.actor_label, event.object_id) == ("contract.paid", "api-key:billing", number)
