"""Notify subscribe / list / revoke against the sandbox, and the rejected-callback path (293)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ohe.providers.base import Subscription
from ohe.resilience.errors import ValidationError
from tests.providers.withings.conftest import Linked
from tests.sandbox.withings_fixtures import Receiver, receiving

CATEGORIES = ("1", "4", "16", "44", "54")


def test_subscribe_list_and_unsubscribe(link: Callable[..., Linked]) -> None:
    linked = link(history_days=1)
    session = linked.session
    receiver = Receiver()
    with receiving(receiver) as url:
        assert session.subscribe(url, CATEGORIES, "ohe link 7") == list(CATEGORIES)
        assert receiver.heads == len(CATEGORIES)  # Withings checks the URL on every subscribe
        assert sorted(session.subscriptions(), key=lambda s: int(s.category)) == [
            Subscription(category, url, "ohe link 7") for category in CATEGORIES
        ]
        session.unsubscribe(url, ("1", "4"))
        assert [s.category for s in session.subscriptions()] == ["16", "44", "54"]
        session.unsubscribe(url, ("1", "16"))  # 1 is already gone: fine
        assert [s.category for s in session.subscriptions()] == ["44", "54"]
    calls = linked.sb.admin("GET", "/stats")["calls"]["by_action"]
    assert calls["/notify subscribe"] == len(CATEGORIES)
    assert calls["/notify revoke"] == 4


def test_a_callback_failing_the_head_check_is_a_clear_validation_error(
    link: Callable[..., Linked],
) -> None:
    linked = link(history_days=1)
    with receiving(Receiver(head_status=404)) as url, pytest.raises(ValidationError) as caught:
        linked.session.subscribe(url, ("1", "4"), "ohe")
    message = str(caught.value)
    assert "Withings rejected the callback URL (status 293)" in message
    assert "public HTTPS" in message and "443" in message and "HEAD" in message
    assert not caught.value.retryable
    assert linked.session.subscriptions() == []


def test_categories_must_be_integers(link: Callable[..., Linked]) -> None:
    linked = link(history_days=1)
    with pytest.raises(ValidationError, match="appli"):
        linked.session.subscribe("https://ohe.example/webhooks/withings/", ("weight",), "x")
