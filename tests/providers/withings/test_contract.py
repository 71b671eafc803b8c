"""The pure parts of the contract: import boundary, stream and status tables, webhooks, plans."""

from __future__ import annotations

import ast
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ohe.fhir.codes import SAMPLE_TYPES
from ohe.providers.base import FetchRequest
from ohe.providers.withings import WithingsProvider, paging, statuses
from ohe.providers.withings.streams import APPLI_STREAMS
from ohe.resilience.errors import ErrorClass, ValidationError

PROVIDERS = Path(__file__).resolve().parents[3] / "ohe" / "providers"
NOW = datetime(2026, 3, 16, 12, 30, 15, tzinfo=UTC)
HOUR = 3600


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    package = ".".join(path.relative_to(PROVIDERS.parent.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_providers_never_import_the_fhir_layer() -> None:
    files = sorted(PROVIDERS.rglob("*.py"))
    assert any(f.parent.name == "withings" for f in files)
    offenders = {
        str(f.relative_to(PROVIDERS)): sorted(
            m for m in _imports(f) if m.split(".")[:2] == ["ohe", "fhir"]
        )
        for f in files
    }
    assert {f: m for f, m in offenders.items() if m} == {}


def test_streams_and_capabilities_only_name_sample_types(
    offline_provider: WithingsProvider,
) -> None:
    streams = WithingsProvider.streams
    assert list(streams) == ["measures", "activity", "intraday", "sleep", "ecg"]
    for stream in streams.values():
        assert stream.data_types <= SAMPLE_TYPES, stream.name
        assert stream.scope in ("user.metrics", "user.activity")
    assert streams["intraday"].max_backfill_days == 7
    caps = offline_provider.capabilities()
    assert set(caps.data_types) <= SAMPLE_TYPES
    assert caps.streams == tuple(streams)
    assert caps.webhooks is True
    assert caps.categories["16"] == ("activity", "intraday")
    assert offline_provider.streams_for(("blood_pressure",)) == ("measures", "ecg")
    assert offline_provider.streams_for(("sleep",)) == ("sleep",)
    for names in APPLI_STREAMS.values():
        assert set(names) <= set(streams)


@pytest.mark.parametrize(
    ("status", "error_class", "retry_after"),
    [
        (100, ErrorClass.AUTH, None),
        (401, ErrorClass.AUTH, None),
        (214, ErrorClass.VALIDATION, None),
        (277, ErrorClass.VALIDATION, None),
        (2554, ErrorClass.VALIDATION, None),
        (293, ErrorClass.VALIDATION, None),
        (503, ErrorClass.VALIDATION, None),
        (3018, ErrorClass.VALIDATION, None),
        (522, ErrorClass.API, None),
        (524, ErrorClass.API, None),
        (601, ErrorClass.RATE_LIMIT, 60.0),
        (215, ErrorClass.API, None),
        (2556, ErrorClass.API, None),
        (10000, ErrorClass.API, None),
        (4242, ErrorClass.API, None),  # in no group: transient, logged
    ],
)
def test_status_groups(status: int, error_class: ErrorClass, retry_after: float | None) -> None:
    group = statuses.group_of(status)
    assert (group.error_class, group.retry_after) == (error_class, retry_after)


def test_status_groups_do_not_overlap() -> None:
    assert statuses.overlapping() == set()
    assert statuses.group_of(4242) is statuses.UNKNOWN
    # the exact lists of python_withings_api (STATUS_INVALID_PARAMS, STATUS_ERROR_OCCURRED)
    assert (len(statuses.INVALID_PARAMS), len(statuses.ERROR_OCCURRED)) == (120, 111)


# --- webhooks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("appli", "streams"),
    [
        ("1", ("measures",)),
        ("2", ("measures",)),
        ("4", ("measures",)),
        ("16", ("activity", "intraday")),
        ("44", ("sleep",)),
        ("54", ("ecg",)),
        ("50", ()),
        ("51", ()),
        ("52", ()),
        ("55", ()),
        ("58", ()),
        ("77", ()),  # a category we do not know: nothing to fetch, not an error
    ],
)
def test_notification_categories_map_to_streams(
    offline_provider: WithingsProvider, appli: str, streams: tuple[str, ...]
) -> None:
    form = {"userid": "10000001", "appli": appli, "startdate": "1773651600",
            "enddate": "1773655200", "foo": "bar"}  # fmt: skip
    notification = offline_provider.parse_notification(form)
    assert notification.external_user_id == "10000001"
    assert notification.category == appli
    assert notification.streams == streams
    assert notification.start == datetime(2026, 3, 16, 9, tzinfo=UTC)
    assert notification.end == datetime(2026, 3, 16, 10, tzinfo=UTC)
    assert notification.action is None


def test_user_action_notification(offline_provider: WithingsProvider) -> None:
    form = {"userid": "10000001", "appli": "46", "action": "unlink"}
    notification = offline_provider.parse_notification(form)
    assert (notification.streams, notification.action) == ((), "unlink")
    assert notification.start is None and notification.end is None


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"appli": "1"}, "userid is missing"),
        ({"userid": " ", "appli": "1"}, "userid is missing"),
        ({"userid": "12a", "appli": "1"}, "userid must be the Withings user id (digits only)"),
        ({"userid": "1"}, "appli is missing"),
        ({"userid": "1", "appli": "weight"}, "appli must be an integer notification category"),
        ({"userid": "1", "appli": "1", "startdate": "yesterday"}, "startdate must be unix seconds"),
        ({"userid": "1", "appli": "1", "enddate": "-5"}, "enddate must be unix seconds"),
        (
            {"userid": "1", "appli": "1", "startdate": "20", "enddate": "10"},
            "enddate must not be before startdate",
        ),
        ({"userid": "1", "appli": "46", "action": "explode"}, "action must be one of"),
    ],
)
def test_malformed_notifications_say_which_field(
    offline_provider: WithingsProvider, form: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        offline_provider.parse_notification(form)
    assert str(caught.value).startswith(message)


# --- OAuth URL and first requests ------------------------------------------------------------


def test_authorize_url(offline_provider: WithingsProvider) -> None:
    url = offline_provider.authorize_url("st4te", "https://ohe.example/cb", code_challenge="x")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}".endswith("/oauth2_user/authorize2")
    assert "scope=user.info,user.metrics,user.activity" in parts.query  # commas, not spaces
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "response_type": "code",
        "client_id": "ohe-sandbox-client",
        "state": "st4te",
        "scope": "user.info,user.metrics,user.activity",
        "redirect_uri": "https://ohe.example/cb",
    }


def test_first_requests_are_incremental_from_a_cursor_else_a_window(
    offline_provider: WithingsProvider,
) -> None:
    start, end = NOW - timedelta(days=30), NOW
    first = offline_provider.first_request
    assert first("measures", cursor="1773600000", start=None, end=end).cursor == "1773600000"
    window = first("measures", cursor=None, start=start, end=end)
    assert (window.cursor, window.start, window.end) == (
        None,
        int(start.timestamp()),
        int(end.timestamp()),
    )
    assert first("sleep", cursor="1773600000", start=None, end=end).end == int(end.timestamp())
    ecg = first("ecg", cursor="1773600000", start=None, end=end)
    assert (ecg.start, ecg.end) == (1773600000 - HOUR, int(end.timestamp()))
    with pytest.raises(ValueError, match="cursor or a window start"):
        first("measures", cursor=None, start=None, end=end)
    with pytest.raises(ValueError, match="no stream"):
        first("workouts", cursor="1", start=None, end=end)
    with pytest.raises(ValueError, match="timezone-aware"):
        first("measures", cursor=None, start=start.replace(tzinfo=None), end=end)


def test_intraday_windows_start_on_an_hour_and_reach_back_at_most_a_week(
    offline_provider: WithingsProvider,
) -> None:
    first = offline_provider.first_request
    end = int(NOW.timestamp())
    incremental = first("intraday", cursor=str(end - 5000), start=None, end=NOW)
    assert incremental.start == (end - 5000 - HOUR) // HOUR * HOUR  # one hour of overlap
    assert incremental.end == end and incremental.cursor == str(end - 5000)
    stale = first("intraday", cursor=str(end - 30 * 86400), start=None, end=NOW)
    assert stale.start == (end - 7 * 86400) // HOUR * HOUR
    window = first("intraday", cursor=None, start=NOW - timedelta(days=60), end=NOW)
    assert window.start == stale.start and window.cursor is None


def test_cursor_rules() -> None:
    """Incremental cursors never go back; window cursors never pass the window's end or now."""
    future = int(time.time()) + 86400  # an activity webhook's window ends at next midnight
    window = FetchRequest("activity", start=future - 2 * 86400, end=future)
    assert int(paging.next_cursor(window, future) or 0) <= time.time()
    assert paging.next_cursor(FetchRequest("measures", start=0, end=100), 5000) == "100"
    assert paging.next_cursor(FetchRequest("measures", start=0, end=100), None) is None
    assert paging.next_cursor(FetchRequest("measures", cursor="500"), 400) == "500"
    assert paging.next_cursor(FetchRequest("measures", cursor="500"), 900) == "900"
    assert paging.next_cursor(FetchRequest("sleep", cursor="500"), None) == "500"
