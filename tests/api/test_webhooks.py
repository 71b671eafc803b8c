"""The Withings webhook endpoint: verify, record, coalesce, enqueue — fast, never trusting."""

from __future__ import annotations

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ohe.extensions import db
from ohe.models import EHRUser, ProviderLink, WebhookEvent
from ohe.providers.rows import provider_row
from ohe.tasks.webhooks import process


def _link(app: Flask, external: str = "4242") -> None:
    with app.app_context():
        db.session.add(
            ProviderLink(
                ehr_user=EHRUser(ehr_user_id="hook-patient"),
                provider=provider_row("withings"),
                external_user_id=external,
                access_token="a",
                refresh_token="r",
            )
        )
        db.session.commit()


def _queued(app: Flask) -> int:
    return redis.Redis.from_url(app.extensions["ohe"].settings.broker_url).llen("webhooks")


def _events(app: Flask) -> list[WebhookEvent]:
    with app.app_context():
        db.session.remove()
        return db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)).all()


def test_head_and_get_answer_200_for_the_callback_check(client: FlaskClient) -> None:
    assert client.head("/webhooks/withings/").status_code == 200
    echoed = client.get("/webhooks/withings/?challenge=abc")
    assert echoed.status_code == 200 and echoed.get_data(as_text=True) == "abc"


def test_a_known_user_is_recorded_coalesced_and_enqueued_after_commit(
    app: Flask, client: FlaskClient
) -> None:
    _link(app)
    form = {"userid": "4242", "appli": "1", "startdate": "1795700000", "enddate": "1795700060"}
    first = client.post("/webhooks/withings/", data=form)
    assert first.status_code == 202
    body = first.get_json()
    assert body["status"] == "accepted" and body["queued_tasks"] == 1
    assert body["tasks"][0]["data_types"] == ["measures"]
    # How fast the reply is: benchmarks/backfill_under_fire.py (no timed assertions in tests).
    again = client.post("/webhooks/withings/", data={**form, "foo": "bar"})  # extra fields ignored
    assert again.status_code == 202 and again.get_json()["queued_tasks"] == 0
    events = _events(app)
    assert [e.status for e in events] == ["pending", "duplicate"]
    assert events[0].window_start.timestamp() == 1795700000
    assert _queued(app) == 1  # one sync for the burst


def test_a_notification_after_processing_began_gets_its_own_sync(
    app: Flask, client: FlaskClient
) -> None:
    """Two measurements in one second carry identical notifications; if the first one's fetch
    already ran, coalescing the second would leave its measurement to the safety net."""
    _link(app)
    form = {"userid": "4242", "appli": "1", "startdate": "1795700000", "enddate": "1795700000"}
    assert client.post("/webhooks/withings/", data=form).get_json()["queued_tasks"] == 1
    with app.app_context():
        assert process(_events(app)[0].id) == "synced"
    later = client.post("/webhooks/withings/", data=form)
    assert later.status_code == 202 and later.get_json()["queued_tasks"] == 1
    assert [e.status for e in _events(app)] == ["processed", "pending"]


def test_unknown_users_get_200_and_are_ignored(app: Flask, client: FlaskClient) -> None:
    response = client.post("/webhooks/withings/", data={"userid": "999", "appli": "1"})
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert _events(app) == []
    assert _queued(app) == 0


def test_malformed_notifications_get_a_400_problem_saying_what_is_wrong(
    client: FlaskClient,
) -> None:
    for form, field in (
        ({"appli": "1"}, "userid"),
        ({"userid": "abc", "appli": "1"}, "userid"),
        ({"userid": "1", "appli": "one"}, "appli"),
        ({"userid": "1", "appli": "1", "startdate": "yesterday"}, "startdate"),
    ):
        response = client.post("/webhooks/withings/", data=form)
        assert response.status_code == 400, form
        assert response.mimetype == "application/problem+json"
        assert field in response.get_json()["detail"]
    assert client.post("/webhooks/withings/", data={}).status_code == 400


def test_a_secret_path_segment_makes_forged_calls_404(tmp_path, database_url, redis_url) -> None:
    from ohe.app import create_app
    from ohe.settings import Settings
    from tests.helpers import TEST_SECRET_KEY

    settings = Settings.from_env(
        {},
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=TEST_SECRET_KEY,
        webhook_secret_segment="s3cr3t-segment",
    )
    client = create_app(settings).test_client()
    form = {"userid": "999", "appli": "1"}
    assert client.post("/webhooks/withings/", data=form).status_code == 404
    assert client.post("/webhooks/withings/wrong/", data=form).status_code == 404
    assert client.post("/webhooks/withings/s3cr3t-segment/", data=form).status_code == 200
    assert client.head("/webhooks/withings/s3cr3t-segment/").status_code == 200
