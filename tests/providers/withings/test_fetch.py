"""Fetching every stream from the sandbox: paging, windows, incremental cursors, devices."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ohe.providers.base import FetchRequest, FetchResult
from ohe.samples import Modality, Sample, SampleStatus
from ohe.sandbox.withings.app import sandbox_of
from tests.providers.withings.conftest import Linked
from tests.providers.withings.payloads import check_vocabulary

HOUR = 3600


def run(linked: Linked, request: FetchRequest) -> tuple[list[FetchResult], list[Sample]]:
    """Follow ``next_request`` until done, as the orchestrator does; parse every page."""
    results, samples = [], []
    session = linked.session
    following: FetchRequest | None = request
    while following is not None:
        result = session.fetch(following)
        results.append(result)
        samples += linked.provider.parse(following, result.payload)
        following = result.next_request
        assert len(results) < 200, "paging does not terminate"
    check_vocabulary(samples)
    return results, samples


def stored(linked: Linked, sql: str) -> int:
    store = sandbox_of(linked.sb.app).store
    return store.one(sql, (linked.userid,))[0]


def test_a_year_of_every_stream_pages_through_completely(link: Callable[..., Linked]) -> None:
    linked = link(history_days=365, timezone="Europe/Paris", sandbox={"page_size": 25})
    provider = linked.provider
    now = datetime.now(UTC)
    start = now - timedelta(days=366)
    pages: dict[str, int] = {}
    found: dict[str, list[Sample]] = {}
    for name in provider.streams:
        results, samples = run(
            linked, provider.first_request(name, cursor=None, start=start, end=now)
        )
        pages[name] = len(results)
        found[name] = samples
        assert len({(s.data_type, s.source_id) for s in samples}) == len(samples), name
        assert results[0].next_cursor is not None, name

    groups = {s.source_id.split(":")[0] for s in found["measures"]}
    assert len(groups) == stored(linked, "SELECT COUNT(*) FROM measure_groups WHERE userid = ?")
    assert pages["measures"] > 10  # ~550 groups at 25 per page
    assert Counter(s.modality for s in found["measures"])[Modality.AMBIGUOUS] > 0
    assert any(s.data_type == "blood_pressure" for s in found["measures"])
    assert any(s.data_type == "height" for s in found["measures"])

    days = {s.source_id.split(":")[0] for s in found["activity"]}
    assert len(days) == stored(linked, "SELECT COUNT(*) FROM activity WHERE userid = ?")
    assert pages["activity"] > 10

    nights = {s.source_id for s in found["sleep"]}
    assert len(nights) == stored(linked, "SELECT COUNT(*) FROM sleep WHERE userid = ?")
    assert pages["sleep"] > 10

    ecgs = [s for s in found["ecg"] if s.data_type == "ecg"]
    recorded = "SELECT COUNT(*) FROM ecg WHERE userid = ? AND afib IS NOT NULL"
    assert len(ecgs) == stored(linked, recorded)  # every recording, failed ones skipped
    assert all(s.waveform and len(s.waveform.samples) in (9_000, 10_000) for s in ecgs)
    assert pages["ecg"] >= len(ecgs) / 10

    # intraday: at most a week, one call per 24 h, each UTC hour in exactly one page
    assert pages["intraday"] == 8
    hours = [s for s in found["intraday"] if s.data_type == "heart_rate_intraday"]
    assert 7 * 24 <= len(hours) <= 8 * 24
    assert all(s.series is not None and len(s.series.values) <= 6 for s in hours)

    calls = linked.sb.admin("GET", "/stats")["calls"]["by_action"]
    assert calls["/v2/measure getintradayactivity"] == 8
    assert calls["/v2/heart get"] == len(ecgs)


def test_incremental_measures_return_only_new_and_edited_groups(
    link: Callable[..., Linked],
) -> None:
    linked = link(history_days=30)
    sb, provider = linked.sb, linked.provider
    sb.advance(HOUR)  # let the generated history age past the cursor's overlap
    now = datetime.now(UTC)
    first, _ = run(
        linked,
        provider.first_request("measures", cursor=None, start=now - timedelta(days=40), end=now),
    )
    cursor = first[0].next_cursor
    assert cursor is not None

    sb.advance(HOUR)
    grpid = sb.admin("POST", f"/users/{linked.userid}/measures", {"weight_kg": 81.25})["grpid"]
    results, samples = run(
        linked, provider.first_request("measures", cursor=cursor, start=None, end=None)
    )
    assert [(s.source_id, str(s.value), s.status) for s in samples] == [
        (f"{grpid}:1", "81.25", SampleStatus.FINAL)
    ]
    assert results[0].next_cursor is not None and int(results[0].next_cursor) > int(cursor)

    sb.advance(HOUR)
    sb.admin("PATCH", f"/users/{linked.userid}/measures/{grpid}", {"weight_kg": 80.9})
    _, edited = run(
        linked,
        provider.first_request("measures", cursor=results[0].next_cursor, start=None, end=None),
    )
    assert [(s.source_id, str(s.value), s.status) for s in edited] == [
        (f"{grpid}:1", "80.9", SampleStatus.AMENDED)
    ]


def test_incremental_activity_and_sleep_pick_up_changed_rows(link: Callable[..., Linked]) -> None:
    linked = link(history_days=10, timezone="America/New_York")
    sb, provider, userid = linked.sb, linked.provider, linked.userid

    def now() -> datetime:  # plans use "now"; here that is the sandbox's (advanced) clock
        return datetime.fromtimestamp(sb.admin("GET", "/clock")["now"], UTC)

    sb.advance(HOUR)  # let the generated history age past the cursor's overlap
    cursors: dict[str, str | None] = {}
    for name in ("activity", "sleep"):
        results, _ = run(
            linked,
            provider.first_request(name, cursor=None, start=now() - timedelta(days=12), end=now()),
        )
        cursors[name] = results[0].next_cursor
    sb.advance(HOUR)
    day = "2026-01-15"
    sb.admin("POST", f"/users/{userid}/activity", {"date": day, "steps": 23456})
    night = sb.admin("POST", f"/users/{userid}/sleep", {})["id"]
    _, activity = run(
        linked,
        provider.first_request("activity", cursor=cursors["activity"], start=None, end=now()),
    )
    assert {s.source_id: str(s.value) for s in activity} == {f"{day}:steps": "23456"}
    _, nights = run(
        linked, provider.first_request("sleep", cursor=cursors["sleep"], start=None, end=now())
    )
    assert [s.source_id for s in nights] == [str(night)]


def test_a_notified_window_fetches_that_window(link: Callable[..., Linked]) -> None:
    linked = link(history_days=5)
    sb, provider = linked.sb, linked.provider
    when = int(datetime.now(UTC).timestamp()) - 10 * 86400  # before the generated history
    grpid = sb.admin(
        "POST", f"/users/{linked.userid}/measures", {"systolic": 141, "diastolic": 91, "date": when}
    )["grpid"]
    request = provider.first_request(
        "measures",
        cursor=None,
        start=datetime.fromtimestamp(when, UTC),
        end=datetime.fromtimestamp(when + 1, UTC),
    )
    results, samples = run(linked, request)
    assert [s.source_id for s in samples] == [f"{grpid}:bp"]
    assert results[0].next_cursor == str(when + 1)  # a window never leaps past its end


def test_devices(link: Callable[..., Linked]) -> None:
    linked = link(history_days=3)
    devices = linked.session.devices()
    store = sandbox_of(linked.sb.app).store
    rows = store.all("SELECT * FROM devices WHERE userid = ?", (linked.userid,))
    assert {d.device_id for d in devices} == {r["deviceid"] for r in rows}
    for d in devices:
        assert d.manufacturer == "Withings"
        assert d.model and d.model_number and d.kind
        assert d.battery in ("high", "medium", "low")
        assert d.active and d.first_seen is not None and d.first_seen.tzinfo is not None
