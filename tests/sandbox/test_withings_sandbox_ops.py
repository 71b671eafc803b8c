"""Withings sandbox: rate limit, fault injection, stats, its own process (SIGTERM, restart), CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import Process, free_port, wait_for
from tests.sandbox.withings_fixtures import REDIRECT_URI, SandboxServer, running_sandbox

WINDOW = 1.5  # a scaled-down minute: long enough for 9 local calls, short to wait out


def test_rate_limit_is_application_wide_and_recovers_after_the_window() -> None:
    with running_sandbox(rate_limit=5, rate_window=WINDOW) as sb:
        users = [sb.new_user(), sb.new_user()]
        tokens = [sb.token(u)["access_token"] for u in users]  # 2 token calls count too
        spare_code = sb.code(users[0])
        time.sleep(WINDOW + 0.1)

        answers = [
            sb.call("/v2/user", tokens[i % 2], action="getdevice")["status"] for i in range(5)
        ]
        assert answers == [0, 0, 0, 0, 0]
        limited = [
            sb.call("/v2/user", tokens[0], action="getdevice"),
            sb.call("/measure", tokens[1], action="getmeas"),
            sb.exchange(spare_code),
            sb.call("/notify", tokens[1], action="list"),
        ]
        assert [e["status"] for e in limited] == [601] * 4
        assert all(e["body"] == {} and e["error"] for e in limited)

        time.sleep(WINDOW + 0.1)
        # The throttled exchange did no work: the code was not burnt.
        assert sb.exchange(spare_code)["status"] == 0
        assert sb.call("/measure", tokens[1], action="getmeas")["status"] == 0
        stats = sb.admin("GET", "/stats")
        assert stats["rate_limited"] == 4
        assert stats["max_calls_in_window"] == 9
        assert stats["calls"]["total"] == 2 + 5 + 2


def test_faults_hit_a_share_of_data_calls_and_outage_takes_everything_down() -> None:
    with running_sandbox() as sb:
        userid = sb.new_user()
        pair = sb.token(userid)
        sb.admin("POST", "/faults", {"status": 522, "rate": 0.5})
        statuses = [
            sb.call("/measure", pair["access_token"], action="getmeas")["status"] for _ in range(10)
        ]
        assert sorted(statuses) == [0] * 5 + [522] * 5
        assert sb.refresh(pair["refresh_token"])["status"] == 0  # token calls are not data calls
        assert sb.admin("GET", "/stats")["faults_injected"] == 5

        sb.admin("POST", "/faults", {"outage": True})
        assert sb.post("/measure", pair["access_token"], action="getmeas").status_code == 503
        assert sb.post("/v2/oauth2", action="requesttoken").status_code == 503
        sb.admin("DELETE", "/faults")
        fresh = sb.token(userid)["access_token"]
        assert [sb.call("/measure", fresh, action="getmeas")["status"] for _ in range(3)] == [0] * 3


def test_stats_count_calls_by_action_and_reset() -> None:
    with running_sandbox() as sb:
        pair = sb.token(sb.new_user())
        sb.call("/measure", pair["access_token"], action="getmeas")
        sb.call("/measure", pair["access_token"], action="getmeas")
        sb.refresh(pair["refresh_token"])
        stats = sb.admin("GET", "/stats")
        assert stats["calls"]["by_action"] == {"/v2/oauth2 requesttoken": 2, "/measure getmeas": 2}
        assert stats["token_requests"] == {
            "authorization_code": {"ok": 1, "failed": 0},
            "refresh_token": {"ok": 1, "failed": 0},
        }
        assert stats["rate_limit"] == {"limit": 120, "window": 60.0}
        sb.admin("POST", "/stats/reset")
        after = sb.admin("GET", "/stats")
        assert after["calls"]["total"] == 0 and after["max_calls_in_window"] == 0


@pytest.fixture
def process_args(tmp_path: Path) -> Iterator[list[str]]:
    port = free_port()
    yield [
        sys.executable,
        "-m",
        "ohe.sandbox.withings",
        "serve",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "sandbox-withings.db"),
        "--client-id",
        "cli-app",
        "--client-secret",
        "cli-secret",
    ]


def start(args: list[str], log: Path) -> tuple[Process, str]:
    process = Process(args, dict(os.environ), log)
    url = f"http://127.0.0.1:{args[args.index('--port') + 1]}"

    def healthy() -> bool:
        assert process.alive(), process.output()
        return requests.get(f"{url}/_sandbox/health", timeout=1).ok

    wait_for(healthy, timeout=20)
    return process, url


def test_state_survives_sigterm_and_restart(process_args: list[str], tmp_path: Path) -> None:
    process, url = start(process_args, tmp_path / "first.log")
    try:
        assert requests.get(f"{url}/_sandbox/health", timeout=5).json()["client_id"] == "cli-app"
        userid = requests.post(f"{url}/_sandbox/users", json={}, timeout=30).json()["userid"]
        code = requests.post(
            f"{url}/_sandbox/authorize",
            timeout=30,
            json={
                "userid": userid,
                "client_id": "cli-app",
                "redirect_uri": REDIRECT_URI,
                "scope": "user.metrics",
            },
        ).json()["code"]
        token = requests.post(
            f"{url}/v2/oauth2",
            timeout=30,
            data={
                "action": "requesttoken",
                "grant_type": "authorization_code",
                "client_id": "cli-app",
                "client_secret": "cli-secret",
                "code": code,
                "redirect_uri": REDIRECT_URI,
            },
        ).json()["body"]
        grpid = requests.post(
            f"{url}/_sandbox/users/{userid}/measures", timeout=30, json={"weight_kg": 66.6}
        ).json()["grpid"]
    finally:
        assert process.stop(signal.SIGTERM) == 0
    assert "stopping" in process.output()

    process, url = start(process_args, tmp_path / "second.log")
    try:
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        body = requests.post(
            f"{url}/measure", headers=headers, timeout=30, data={"action": "getmeas", "meastype": 1}
        ).json()
        assert body["status"] == 0
        assert grpid in {g["grpid"] for g in body["body"]["measuregrps"]}
        refreshed = requests.post(
            f"{url}/v2/oauth2",
            timeout=30,
            data={
                "action": "requesttoken",
                "grant_type": "refresh_token",
                "client_id": "cli-app",
                "client_secret": "cli-secret",
                "refresh_token": token["refresh_token"],
            },
        ).json()
        assert refreshed["status"] == 0 and refreshed["body"]["userid"] == userid
    finally:
        assert process.stop(signal.SIGTERM) == 0


def test_cli_lists_users_and_adds_a_measure(process_args: list[str], tmp_path: Path) -> None:
    process, url = start(process_args, tmp_path / "cli.log")
    cli = [sys.executable, "-m", "ohe.sandbox.withings"]
    try:
        created = subprocess.run(
            [*cli, "create-user", "--url", url, "--timezone", "Asia/Tokyo"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert '"userid"' in created.stdout
        listed = subprocess.run(
            [*cli, "users", "--url", url], capture_output=True, text=True, check=True, timeout=60
        )
        userid = int(listed.stdout.split()[0])
        assert "Asia/Tokyo" in listed.stdout
        added = subprocess.run(
            [*cli, "add-measure", "--url", url, "--user", str(userid), "--weight", "72.5"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert '"grpid"' in added.stdout
        bad = subprocess.run(
            [*cli, "add-measure", "--url", url, "--user", "1", "--weight", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1 and "404" in bad.stderr
    finally:
        process.stop(signal.SIGTERM)

    with running_sandbox(db_path=tmp_path / "sandbox-withings.db") as sb:
        assert_weight(sb, userid, "72.5")


def assert_weight(sb: SandboxServer, userid: int, kg: str) -> None:
    token = sb.token(userid, scope="user.metrics")["access_token"]
    groups = sb.call("/measure", token, action="getmeas", meastype=1)["body"]["measuregrps"]
    newest = groups[0]["measures"][0]
    assert f"{newest['value'] * 10 ** newest['unit']:.1f}" == kg
