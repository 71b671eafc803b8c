"""Withings sandbox: the data endpoints — paging, filters, encoding, windows, signals, devices."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.sandbox.withings_fixtures import SandboxServer, running_sandbox

DAY = 86400


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with running_sandbox() as server:
        yield server


@pytest.fixture(scope="module")
def year(sb: SandboxServer) -> tuple[int, str]:
    """A user with a year of history in New York, and an access token with every scope."""
    userid = sb.new_user(history_days=365, timezone="America/New_York")
    return userid, sb.token(userid)["access_token"]


def ok(envelope: dict[str, Any]) -> dict[str, Any]:
    assert envelope["status"] == 0, envelope
    return envelope["body"]


def real(measure: dict[str, int]) -> Decimal:
    return Decimal(measure["value"]).scaleb(measure["unit"])


def all_pages(sb: SandboxServer, path: str, token: str, key: str, **form: Any) -> list[Any]:
    """Follow ``more``/``offset``; checks the type of ``more`` on every page and that the
    result really needed several pages."""
    rows, offset, pages = [], 0, 0
    while True:
        body = ok(sb.call(path, token, offset=offset, **form))
        rows += body[key]
        pages += 1
        if path == "/measure":
            assert type(body["more"]) is int and body["more"] in (0, 1)
        else:
            assert type(body["more"]) is bool
        if not body["more"]:
            return rows if pages > 1 else pytest.fail(f"{path} {form} fit on one page")
        assert body["offset"] > offset
        offset = body["offset"]


def test_getmeas_pages_with_integer_more(sb: SandboxServer, year: tuple[int, str]) -> None:
    _, token = year
    groups = all_pages(sb, "/measure", token, "measuregrps", action="getmeas", category=1)
    grpids = [g["grpid"] for g in groups]
    assert len(grpids) == len(set(grpids)) > 300
    assert min(grpids) > 2**32  # int64 identifiers
    dates = [g["date"] for g in groups]
    assert dates == sorted(dates, reverse=True)
    first = ok(sb.call("/measure", token, action="getmeas", category=1))
    assert first["timezone"] == "America/New_York"
    assert abs(first["updatetime"] - time.time()) < 60
    assert {g["attrib"] for g in groups} >= {0, 1, 2, 4}  # device, ambiguous, manual, sign-up
    manual = next(g for g in groups if g["attrib"] == 2)
    assert "deviceid" not in manual and "hash_deviceid" not in manual
    scale = next(g for g in groups if any(m["type"] == 76 for m in g["measures"]))
    assert scale["deviceid"] == scale["hash_deviceid"] and scale["model_id"] in (5, 6)
    assert {m["type"] for m in scale["measures"]} >= {1, 5, 6, 8, 76, 77, 88}


def test_meastype_and_meastypes_filter_groups_and_measures(
    sb: SandboxServer, year: tuple[int, str]
) -> None:
    _, token = year
    bp = ok(sb.call("/measure", token, action="getmeas", meastypes="9,10", category=1))
    assert bp["measuregrps"]
    for group in bp["measuregrps"]:
        types = {m["type"] for m in group["measures"]}
        assert types and types <= {9, 10}
        values = {m["type"]: real(m) for m in group["measures"]}
        assert 40 <= values[9] < values[10] <= 220
    weight = ok(sb.call("/measure", token, action="getmeas", meastype=1, category=1))
    assert {m["type"] for g in weight["measuregrps"] for m in g["measures"]} == {1}
    assert all(20 <= real(g["measures"][0]) <= 250 for g in weight["measuregrps"])
    spo2 = ok(sb.call("/measure", token, action="getmeas", meastype=54, lastupdate=0))
    assert all(90 <= real(g["measures"][0]) <= 100 for g in spo2["measuregrps"])
    goals = ok(sb.call("/measure", token, action="getmeas", category=2))
    assert goals["measuregrps"] == []


def test_values_use_value_times_ten_to_the_unit(sb: SandboxServer) -> None:
    userid = sb.new_user()
    token = sb.token(userid)["access_token"]
    weight = sb.admin("POST", f"/users/{userid}/measures", {"weight_kg": 72.5})["grpid"]
    bp = sb.admin(
        "POST", f"/users/{userid}/measures", {"systolic": 121, "diastolic": 79, "pulse": 64}
    )["grpid"]
    temp = sb.admin(
        "POST", f"/users/{userid}/measures", {"meastype": 71, "value": 37.25, "attrib": 2}
    )["grpid"]
    body = ok(sb.call("/measure", token, action="getmeas", lastupdate=int(time.time()) - 5))
    groups = {g["grpid"]: g for g in body["measuregrps"]}
    assert set(groups) == {weight, bp, temp}
    (w,) = groups[weight]["measures"]
    assert (w["type"], real(w)) == (1, Decimal("72.5"))
    assert (w["value"], w["unit"]) == (725, -1)  # trailing zeros dropped, as Withings does
    assert {m["type"]: real(m) for m in groups[bp]["measures"]} == {9: 79, 10: 121, 11: 64}
    assert groups[bp]["model"] == "BPM Core" or groups[bp]["model_id"] in (45, None)
    assert real(groups[temp]["measures"][0]) == Decimal("37.25")
    assert groups[temp]["attrib"] == 2 and "deviceid" not in groups[temp]


def test_lastupdate_returns_edited_group_in_place_and_drops_deleted(sb: SandboxServer) -> None:
    userid = sb.new_user()
    token = sb.token(userid)["access_token"]
    old = ok(sb.call("/measure", token, action="getmeas", meastype=1, category=1))
    target = old["measuregrps"][5]
    cursor = old["updatetime"]
    sb.advance(10)
    assert (
        ok(sb.call("/measure", token, action="getmeas", lastupdate=cursor + 1))["measuregrps"] == []
    )
    sb.admin("PATCH", f"/users/{userid}/measures/{target['grpid']}", {"weight_kg": 99.9})
    changed = ok(sb.call("/measure", token, action="getmeas", lastupdate=cursor + 1))
    (edited,) = changed["measuregrps"]
    assert edited["grpid"] == target["grpid"]
    assert edited["date"] == target["date"] and edited["created"] == target["created"]
    assert edited["modified"] > target["modified"] and edited["modified"] > cursor
    weight = next(m for m in edited["measures"] if m["type"] == 1)
    assert real(weight) == Decimal("99.9")

    sb.admin("DELETE", f"/users/{userid}/measures/{target['grpid']}")
    window = {"startdate": target["date"] - 1, "enddate": target["date"] + 1}
    assert ok(sb.call("/measure", token, action="getmeas", **window))["measuregrps"] == []
    assert (
        ok(sb.call("/measure", token, action="getmeas", lastupdate=cursor + 1))["measuregrps"] == []
    )


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/measure", {"action": "getmeas", "meastypes": "1,x"}),
        ("/measure", {"action": "getmeas", "category": 3}),
        ("/measure", {"action": "getmeas", "offset": -1}),
        ("/measure", {"action": "nope"}),
        ("/v2/measure", {"action": "getactivity"}),
        (
            "/v2/measure",
            {
                "action": "getactivity",
                "lastupdate": 0,
                "startdateymd": "2026-01-01",
                "enddateymd": "2026-01-02",
            },
        ),
        (
            "/v2/measure",
            {"action": "getactivity", "startdateymd": "2026-13-01", "enddateymd": "2026-12-02"},
        ),
        ("/v2/sleep", {"action": "get", "enddate": 10}),
        ("/v2/heart", {"action": "get"}),
        ("/v2/heart", {"action": "get", "signalid": 1}),
        ("/notify", {"action": "subscribe", "callbackurl": "http://x.test/", "appli": 62}),
        ("/v2/oauth2", {"action": "getaccesstoken"}),
    ],
)
def test_bad_params_and_unknown_actions_are_503(
    sb: SandboxServer, year: tuple[int, str], path: str, form: dict[str, Any]
) -> None:
    envelope = sb.call(path, year[1], **form)
    assert envelope == {"status": 503, "body": {}, "error": "Invalid Params"}


def test_activity_and_sleep_summary_page_with_boolean_more(
    sb: SandboxServer, year: tuple[int, str]
) -> None:
    _, token = year
    today = datetime.now(ZoneInfo("America/New_York")).date()
    window = {
        "startdateymd": (today - timedelta(days=400)).isoformat(),
        "enddateymd": today.isoformat(),
    }
    days = all_pages(sb, "/v2/measure", token, "activities", action="getactivity", **window)
    dates = [d["date"] for d in days]
    assert dates == sorted(set(dates)) and len(dates) >= 360
    assert all(d["timezone"] == "America/New_York" and d["brand"] == 1 for d in days)
    assert all(d["steps"] > 0 and d["active"] == d["moderate"] + d["intense"] for d in days)
    slim = ok(sb.call("/v2/measure", token, action="getactivity", data_fields="steps", **window))
    assert {k for a in slim["activities"] for k in a} & {"distance", "calories"} == set()

    nights = all_pages(sb, "/v2/sleep", token, "series", action="getsummary", lastupdate=0)
    assert len(nights) > 300
    for night in nights[:50]:
        data = night["data"]
        assert night["model"] in (16, 32) and night["completed"] is True
        assert data["total_sleep_time"] == (
            data["lightsleepduration"] + data["deepsleepduration"] + data["remsleepduration"]
        )
        assert data["total_timeinbed"] == night["enddate"] - night["startdate"]
        assert 0 < data["sleep_efficiency"] <= 1
    by_date = ok(sb.call("/v2/sleep", token, action="getsummary", **window))
    assert by_date["series"] and all(window["startdateymd"] <= n["date"] for n in by_date["series"])


def test_intraday_returns_only_the_first_24_hours_and_matches_daily_steps(
    sb: SandboxServer, year: tuple[int, str]
) -> None:
    _, token = year
    tz = ZoneInfo("America/New_York")
    day = date.today() - timedelta(days=10)
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
    three_days = ok(
        sb.call(
            "/v2/measure",
            token,
            action="getintradayactivity",
            startdate=midnight,
            enddate=midnight + 3 * DAY,
        )
    )["series"]
    stamps = sorted(int(ts) for ts in three_days)
    assert stamps and midnight <= stamps[0] and stamps[-1] <= midnight + DAY
    steps = sum(s.get("steps", 0) for s in three_days.values())
    daily = ok(
        sb.call(
            "/v2/measure",
            token,
            action="getactivity",
            startdateymd=day.isoformat(),
            enddateymd=day.isoformat(),
        )
    )
    assert steps == daily["activities"][0]["steps"]
    hr_only = ok(
        sb.call(
            "/v2/measure",
            token,
            action="getintradayactivity",
            startdate=midnight,
            enddate=midnight + DAY - 1,
            data_fields="heart_rate",
        )
    )["series"]
    assert len(hr_only) == 144  # every 10 minutes
    sample = next(iter(hr_only.values()))
    assert set(sample) == {"deviceid", "model", "model_id", "heart_rate"}
    assert 35 <= sample["heart_rate"] <= 200


def test_sleep_get_is_capped_at_24_hours_and_matches_the_summary(
    sb: SandboxServer, year: tuple[int, str]
) -> None:
    _, token = year
    night = ok(sb.call("/v2/sleep", token, action="getsummary", lastupdate=0))["series"][20]
    start = night["startdate"] - 60
    body = ok(
        sb.call(
            "/v2/sleep",
            token,
            action="get",
            startdate=start,
            enddate=start + 5 * DAY,
            data_fields="hr,rr",
        )
    )
    assert body["model"] in (16, 32)
    segments = body["series"]
    assert segments and all(start <= s["startdate"] <= start + DAY for s in segments)
    in_night = [s for s in segments if night["startdate"] <= s["startdate"] < night["enddate"]]
    deep = sum(s["enddate"] - s["startdate"] for s in in_night if s["state"] == 2)
    assert deep == night["data"]["deepsleepduration"]
    assert {s["state"] for s in in_night} <= {0, 1, 2, 3}
    minutes = in_night[1]["hr"]
    assert minutes and all(start <= int(ts) < start + 2 * DAY for ts in minutes)
    assert all(30 <= v <= 150 for v in minutes.values())


def test_heart_list_and_full_length_signals() -> None:
    with running_sandbox(page_size=20) as sb:
        _heart_list_and_signals(sb)


def _heart_list_and_signals(sb: SandboxServer) -> None:
    expected = {44: (500, 10_000), 93: (300, 9_000), 94: (300, 9_000), 91: (300, 9_000)}
    seen: dict[int, int] = {}
    for _ in range(10):
        token = sb.token(sb.new_user(history_days=120))["access_token"]
        series = all_pages(sb, "/v2/heart", token, "series", action="list")
        stamps = [s["timestamp"] for s in series]
        assert stamps == sorted(stamps, reverse=True)
        record = next((s for s in series if "ecg" in s and s["model"] not in seen), None)
        if record is None:
            continue
        signal = ok(sb.call("/v2/heart", token, action="get", signalid=record["ecg"]["signalid"]))
        hz, samples = expected[record["model"]]
        assert (signal["sampling_frequency"], len(signal["signal"])) == (hz, samples)
        assert all(isinstance(v, int) for v in signal["signal"])
        assert signal["model"] == record["model"]
        assert signal["heart_rate"] == record["heart_rate"]
        # ECG-shaped: R peaks stand far above the baseline, about once per beat.
        peak = max(signal["signal"])
        beats = sum(
            1
            for a, b in zip(signal["signal"], signal["signal"][1:], strict=False)
            if a < peak * 0.5 <= b
        )
        assert peak > 400
        duration = samples / hz
        assert 0.6 < beats / (record["heart_rate"] * duration / 60) < 1.5
        assert (record["model"] == 44) == ("bloodpressure" in record)
        seen[record["model"]] = 1
        if 44 in seen and seen.keys() & {91, 93, 94}:
            return
    pytest.fail(f"did not see both a BPM Core and a watch ECG: {seen}")


def test_getdevice_lists_the_devices_behind_the_data(
    sb: SandboxServer, year: tuple[int, str]
) -> None:
    _, token = year
    devices = ok(sb.call("/v2/user", token, action="getdevice"))["devices"]
    assert 2 <= len(devices) <= 3
    for device in devices:
        assert set(device) >= {
            "type",
            "model",
            "model_id",
            "battery",
            "deviceid",
            "hash_deviceid",
            "timezone",
            "first_session_date",
            "last_session_date",
        }
        assert device["battery"] in ("high", "medium", "low")
        assert device["first_session_date"] < device["last_session_date"]
    ids = {d["deviceid"] for d in devices}
    groups = ok(sb.call("/measure", token, action="getmeas"))["measuregrps"]
    assert {g["deviceid"] for g in groups if "deviceid" in g} <= ids


def test_users_get_varied_time_zones_and_deterministic_data() -> None:
    with running_sandbox() as one, running_sandbox() as two:
        a = [one.new_user(history_days=20) for _ in range(3)]
        b = [two.new_user(history_days=20) for _ in range(3)]
        assert a == b
        zones = {u["timezone"] for u in one.admin("GET", "/users")["users"]}
        assert len(zones) == 3
        day = (date.today() - timedelta(days=5)).isoformat()
        rows = [
            ok(
                s.call(
                    "/v2/measure",
                    s.token(a[0])["access_token"],
                    action="getactivity",
                    startdateymd=day,
                    enddateymd=day,
                )
            )["activities"]
            for s in (one, two)
        ]
        assert rows[0] and rows[0][0]["steps"] == rows[1][0]["steps"]


def test_twenty_users_with_a_year_each_are_generated(sb: SandboxServer) -> None:
    userids = [sb.new_user(history_days=365) for _ in range(20)]
    assert len(set(userids)) == 20


def test_admin_activity_and_sleep_updates_show_up_through_lastupdate(sb: SandboxServer) -> None:
    userid = sb.new_user(timezone="Europe/Paris")
    token = sb.token(userid)["access_token"]
    cursor = int(time.time())
    sb.advance(5)
    day = (date.today() - timedelta(days=3)).isoformat()
    sb.admin("POST", f"/users/{userid}/activity", {"date": day, "steps": 23456})
    (row,) = ok(sb.call("/v2/measure", token, action="getactivity", lastupdate=cursor))[
        "activities"
    ]
    assert (row["date"], row["steps"]) == (day, 23456)
    assert row["distance"] > 0  # a running total: other fields of the day are kept

    night = sb.admin("POST", f"/users/{userid}/sleep", {})
    (summary,) = ok(sb.call("/v2/sleep", token, action="getsummary", lastupdate=cursor))["series"]
    assert summary["id"] == night["id"]
    assert summary["data"]["total_timeinbed"] == 8 * 3600
    bad = sb.http.post(f"{sb.url}/_sandbox/users/{userid}/activity", json={"nope": 1}, timeout=30)
    assert bad.status_code == 400
