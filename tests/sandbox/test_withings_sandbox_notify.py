"""Withings sandbox: notify subscribe/get/list/update/revoke and webhook delivery with retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import free_port, wait_for
from tests.sandbox.withings_fixtures import Receiver, SandboxServer, receiving, running_sandbox

UNAUTHORIZED_OR_INVALID = set(range(201, 354)) | {503}


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with running_sandbox(delivery_speed=100) as server:
        yield server


@pytest.fixture
def user(sb: SandboxServer) -> tuple[int, str]:
    userid = sb.new_user()
    return userid, sb.token(userid)["access_token"]


def notify(sb: SandboxServer, token: str, **form: Any) -> dict[str, Any]:
    return sb.call("/notify", token, **form)


def test_subscribe_checks_the_callback_with_head(sb: SandboxServer, user: tuple[int, str]) -> None:
    _, token = user
    refusing = Receiver(head_status=404)
    with receiving(refusing) as url:
        refused = notify(sb, token, action="subscribe", callbackurl=url, appli=1)
    assert refused["status"] == 293 and refused["error"]
    assert refusing.heads == 1
    dead = f"http://127.0.0.1:{free_port()}/hook"
    assert notify(sb, token, action="subscribe", callbackurl=dead, appli=1)["status"] == 293
    assert (
        notify(sb, token, action="subscribe", callbackurl="ftp://x.test/", appli=1)["status"] == 293
    )
    assert notify(sb, token, action="list")["body"]["profiles"] == []

    accepting = Receiver()
    with receiving(accepting) as url:
        assert notify(sb, token, action="subscribe", callbackurl=url, appli=1)["status"] == 0
    assert accepting.heads == 1 and accepting.posts == []


def test_list_get_update_revoke(sb: SandboxServer, user: tuple[int, str]) -> None:
    userid, token = user
    with receiving(Receiver()) as url, receiving(Receiver()) as other:
        for appli in (1, 4):
            envelope = notify(
                sb, token, action="subscribe", callbackurl=url, appli=appli, comment=f"ohe {appli}"
            )
            assert envelope == {"status": 0, "body": {}}
        profiles = notify(sb, token, action="list")["body"]["profiles"]
        assert [(p["appli"], p["callbackurl"], p["comment"]) for p in profiles] == [
            (1, url, "ohe 1"),
            (4, url, "ohe 4"),
        ]
        assert all(isinstance(p["expires"], int) for p in profiles)
        assert [
            p["appli"] for p in notify(sb, token, action="list", appli=4)["body"]["profiles"]
        ] == [4]
        got = notify(sb, token, action="get", callbackurl=url, appli=4)["body"]
        assert got == {"appli": 4, "callbackurl": url, "comment": "ohe 4"}
        missing = notify(sb, token, action="get", callbackurl=other, appli=4)
        assert missing["status"] in UNAUTHORIZED_OR_INVALID

        assert (
            notify(sb, token, action="update", callbackurl=url, appli=4, comment="renamed")[
                "status"
            ]
            == 0
        )
        two_changes = notify(
            sb, token, action="update", callbackurl=url, appli=4, comment="x", new_appli=1
        )
        assert two_changes["status"] == 503
        assert (
            notify(sb, token, action="update", callbackurl=url, appli=1, new_callbackurl=other)[
                "status"
            ]
            == 0
        )
    subs = sb.admin("GET", f"/subscriptions?userid={userid}")["subscriptions"]
    assert sorted((s["appli"], s["callbackurl"], s["comment"]) for s in subs) == [
        (1, other, "ohe 1"),
        (4, url, "renamed"),
    ]
    assert notify(sb, token, action="revoke", callbackurl=other, appli=1)["status"] == 0
    assert [p["appli"] for p in notify(sb, token, action="list")["body"]["profiles"]] == [4]
    again = notify(sb, token, action="revoke", callbackurl=other, appli=1)
    assert again["status"] in UNAUTHORIZED_OR_INVALID and again["status"] != 0


def test_data_changes_are_posted_as_forms_to_matching_subscriptions(
    sb: SandboxServer, user: tuple[int, str]
) -> None:
    userid, token = user
    receiver = Receiver()
    with receiving(receiver) as url:
        for appli in (1, 4, 54):
            assert (
                notify(sb, token, action="subscribe", callbackurl=url, appli=appli)["status"] == 0
            )
        weight = sb.admin(
            "POST", f"/users/{userid}/measures", {"weight_kg": 80.1, "date": 1_790_000_000}
        )
        wait_for(lambda: len(receiver.posts) == 1, timeout=10)
        post = receiver.posts[0]
        assert post["content_type"] == "application/x-www-form-urlencoded"
        assert post["query"] == ""
        assert post["form"] == {
            "userid": str(userid),
            "appli": "1",
            "startdate": "1790000000",
            "enddate": "1790000001",
        }

        sb.admin("POST", f"/users/{userid}/measures", {"systolic": 130, "diastolic": 85})
        wait_for(lambda: len(receiver.posts) == 2, timeout=10)
        assert receiver.posts[1]["form"]["appli"] == "4"

        sb.admin("PATCH", f"/users/{userid}/measures/{weight['grpid']}", {"weight_kg": 80.3})
        sb.admin("DELETE", f"/users/{userid}/measures/{weight['grpid']}")
        sb.admin("POST", f"/users/{userid}/ecg", {"afib": 1, "heart_rate": 110})
        sb.admin("POST", f"/users/{userid}/activity", {"steps": 12345})  # appli 16: not subscribed
        wait_for(lambda: len(receiver.posts) == 5, timeout=10)
        assert sorted(p["form"]["appli"] for p in receiver.posts) == ["1", "1", "1", "4", "54"]

    deliveries = sb.admin("GET", f"/deliveries?userid={userid}")["deliveries"]
    assert len(deliveries) == 5
    assert all(d["state"] == "delivered" and len(d["attempts"]) == 1 for d in deliveries)
    assert all(d["attempts"][0]["status_code"] == 200 for d in deliveries)
    assert sb.admin("GET", "/stats")["notifications"]["delivered"] == 5


def test_failed_deliveries_are_retried_on_the_scaled_schedule(
    sb: SandboxServer, user: tuple[int, str]
) -> None:
    userid, token = user
    receiver = Receiver(fail_posts=3)  # both tries of the first cycle and one of the second
    with receiving(receiver) as url:
        assert notify(sb, token, action="subscribe", callbackurl=url, appli=4)["status"] == 0
        sb.admin("POST", f"/users/{userid}/measures", {"spo2": 97})

        def delivered() -> dict[str, Any] | None:
            (delivery,) = sb.admin("GET", f"/deliveries?userid={userid}")["deliveries"]
            return delivery if delivery["state"] == "delivered" else None

        delivery = wait_for(delivered, timeout=10)
    attempts = delivery["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 500, 200]
    assert [a["cycle"] for a in attempts] == [0, 0, 1, 1]
    # second cycle starts 10 s later, divided by --delivery-speed 100
    assert attempts[2]["at"] - attempts[1]["at"] >= 0.09
    assert len(receiver.posts) == 4
    assert len({tuple(sorted(p["form"].items())) for p in receiver.posts}) == 1  # same payload
    stats = sb.admin("GET", "/stats")["notifications"]
    assert stats == {"attempts": 4, "delivered": 1, "failed_attempts": 3, "abandoned": 0}
