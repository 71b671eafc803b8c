"""The README's commands, run the way a new user and an operator run them.

- The README opens with the run command and the test command.
- ``make run`` (the real one, in a subprocess, on free ports and a temporary data directory)
  answers healthy within 60 s, and the "Try it" commands link the demo patient (the browser
  step in headless Chromium), add a weight in the Withings sandbox and find its Observation in
  the sandbox FHIR server; SIGTERM stops everything within 30 s.
- The production setup: the export block is complete (the settings accept it as is), and with
  the database, Redis and FHIR server pointed at this machine the migration and API-key
  commands work.
- Every process of the ``Procfile`` runs with that production environment and stops cleanly.

Nothing is mocked. The README's commands read ``OHE_WEB_PORT``, ``OHE_SANDBOX_FHIR_PORT``,
``OHE_SANDBOX_WITHINGS_PORT`` and ``OHE_DATA_DIR`` with the defaults ``make run`` uses, so the
test substitutes its own ports and directory through the environment and the README stays
copy-pasteable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa
from celery import Celery

from ohe.settings import Settings, SettingsError
from tests.conftest import PG_URL, REDIS_DB, REDIS_URL
from tests.helpers import ROOT, Process, free_port, wait_for
from tests.sandbox.conftest import ThreadedServer

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
DRIVER = ROOT / "tests" / "browser" / "link_flow.mjs"
VENV_BIN = ROOT / ".venv" / "bin"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")
PRODUCTION_DB = "ohe_test_readme"
PRODUCTION_REDIS_DB = (REDIS_DB + 2) % 16  # next to the app fixture's and the providers'
REDBEAT_LOCK = "ohe:redbeat::lock"  # redbeat_key_prefix (ohe/tasks/base.py) + ":lock"

# Every name the settings read (and their aliases): scrubbed from the children's environment so
# that the developer's own variables cannot leak into "a new user's" shell.
SETTING_NAMES = {
    name
    for f in dataclasses.fields(Settings)
    for name in (f.metadata["env"], *f.metadata["aliases"])
}


# --- reading the README --------------------------------------------------------------------------


def sh_blocks(text: str) -> list[str]:
    return [code for lang, code in FENCE.findall(text) if lang == "sh"]


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


# --- environments and processes ------------------------------------------------------------------


def user_env(**extra: str) -> dict[str, str]:
    """A fresh shell's environment: no OHE settings, the project's venv not on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SETTING_NAMES
        and not k.startswith(("OHE_", "FLOWER_"))
        and k not in {"PORT", "VIRTUAL_ENV", "PYTHONPATH"}
    }
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if Path(p) != VENV_BIN]
    env["PATH"] = os.pathsep.join(path)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def installed_env(**extra: str) -> dict[str, str]:
    """An operator's shell where the package is installed: ``ohe``, ``flask``, ``celery``."""
    env = user_env(**extra)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    return env


def bash(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ran(result: subprocess.CompletedProcess, code: str) -> str:
    assert result.returncode == 0, (
        f"failed ({result.returncode}):\n{code}\n--- stdout ---\n{result.stdout[-2000:]}"
        f"\n--- stderr ---\n{result.stderr[-3000:]}"
    )
    return result.stdout


def processes_with(variable: str, value: str) -> list[int]:
    """Processes whose environment has ``variable=value`` (the whole tree of one ``make run``,
    including the ones honcho put in sessions of their own)."""
    needle = f"\0{variable}={value}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ:
            found.append(int(entry.name))
    return found


def wait_until(predicate, timeout: float, what: str, *logs: Process, interval: float = 0.25):
    """``wait_for`` whose failure shows what was awaited and the processes' last output."""
    try:
        return wait_for(predicate, timeout, interval)
    except AssertionError as exc:
        tails = "".join(f"\n--- {p.log_path.name} ---\n{p.output()[-3000:]}" for p in logs)
        raise AssertionError(f"{what}: {exc}{tails}") from None


def get_json(url: str, **kwargs) -> tuple[int, dict]:
    response = requests.get(url, timeout=10, **kwargs)
    return response.status_code, response.json()


# --- a. the two commands ---------------------------------------------------------------------------


def test_the_readme_opens_with_the_run_and_the_test_command_then_try_it() -> None:
    text = README.read_text()
    assert [b.strip() for b in sh_blocks(text)[:2]] == ["make run", "make test"]
    assert text.index("\n## ") > text.index("make test")
    assert re.findall(r"^## (.+)$", text, re.M)[0] == "Try it"


def test_the_try_it_commands_default_to_what_make_run_uses() -> None:
    defaults = dict(DEFAULT.findall(section("Try it")))
    settings = Settings.from_env({})
    run_script = (ROOT / "scripts" / "run").read_text()
    assert defaults == {
        "OHE_WEB_PORT": re.search(r"OHE_WEB_PORT:-(\d+)", run_script).group(1),
        "OHE_DATA_DIR": str(settings.data_dir),
        "OHE_SANDBOX_FHIR_PORT": str(settings.sandbox_fhir_port),
        "OHE_SANDBOX_WITHINGS_PORT": str(settings.sandbox_withings_port),
    }


# --- b. make run, then "Try it" --------------------------------------------------------------------


def _healthy(url: str, run: Process) -> dict | None:
    if not run.alive():
        raise AssertionError("make run exited")
    try:
        _, body = get_json(url)
    except (requests.RequestException, ValueError):
        return None
    checks = body.get("checks", {})
    wanted = ("database", "celery_broker", "celery_workers")
    ok = body.get("status") == "healthy" and all(
        checks.get(name, {}).get("status") == "healthy" for name in wanted
    )
    return body if ok else None


def _browse(url: str) -> dict:
    assert shutil.which("node"), "node is required (scripts/test-tools installs Debian nodejs)"
    assert (DRIVER.parent / "node_modules" / "playwright-core").exists(), (
        "playwright-core is missing: run `npm ci --prefix tests/browser` (scripts/test does)"
    )
    result = subprocess.run(
        ["node", str(DRIVER), url, "allow"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_make_run_is_healthy_within_60_s_and_the_try_it_steps_reach_fhir(tmp_path: Path) -> None:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    web_port, fhir_port, withings_port = sorted(ports)
    data_dir = str(tmp_path / "var")
    places = {
        "OHE_DATA_DIR": data_dir,
        "OHE_WEB_PORT": str(web_port),
        "OHE_SANDBOX_FHIR_PORT": str(fhir_port),
        "OHE_SANDBOX_WITHINGS_PORT": str(withings_port),
    }
    web = f"http://localhost:{web_port}"
    started = time.monotonic()
    run = Process(["make", "-C", str(ROOT), "run"], user_env(**places), tmp_path / "make-run.log")
    try:
        # --- healthy within 60 s of starting: database, broker and a worker that answers
        wait_until(
            lambda: _healthy(f"{web}/api/metrics/health/", run), 60, "make run: healthy", run
        )
        to_healthy = time.monotonic() - started
        print(f"make run: healthy {to_healthy:.1f} s after starting")
        assert to_healthy < 60

        banner = run.output()
        for url in (
            f"{web}/api/base/",
            f"{web}/api/metrics/health/",
            f"{web}/api/metrics/metrics/",
            f"http://127.0.0.1:{fhir_port}/fhir",
            f"http://127.0.0.1:{withings_port}",
            f"{data_dir}/demo-api-key",
        ):
            assert url in banner, f"{url} not in the banner:\n{banner[-3000:]}"

        # --- Try it, as written, in a fresh shell with the same variables as make run
        link_block, status_block, measure_block, find_block = sh_blocks(section("Try it"))
        assert "/api/base/link/withings/" in link_block
        assert "/api/base/sync/status/" in status_block
        assert "add-measure" in measure_block
        assert "/fhir/Observation?" in find_block
        env = user_env(**places)

        def step(code: str) -> str:
            return ran(bash(code, env), code)

        # 1. a link URL for the demo patient (the EHR backend's call)
        link_url = step(link_block).strip().splitlines()[-1]
        assert link_url.startswith(f"{web}/link/"), link_url

        # 2. the browser: consent page, "Allow", back on OHE's success page
        page = _browse(link_url)
        assert page["consentUrl"].startswith(
            f"http://127.0.0.1:{withings_port}/oauth2_user/authorize2"
        ), page
        assert page["status"] == "success", page
        status = wait_until(
            lambda: (s := step(status_block).split()) and s[0] == "completed" and s,
            60,
            "the first sync completes",
            run,
        )
        assert int(status[1]) > 0

        # 3. a weight on the sandbox scale; the sandbox notifies OHE's webhook
        weight = float(re.search(r"--weight\s+([\d.]+)", measure_block).group(1))
        measured = json.loads(step(measure_block))
        assert measured["grpid"] and measured["notifications"], measured
        added = time.monotonic()

        # 4. the Observation in the sandbox FHIR server, within seconds
        def newest_is_ours() -> list[str] | None:
            value, unit, effective = step(find_block).split()
            when = datetime.fromisoformat(effective)
            recent = abs((datetime.now(UTC) - when).total_seconds()) < 300
            return [value, unit] if float(value) == weight and recent else None

        found = wait_until(newest_is_ours, 20, f"an Observation of {weight} kg", run, interval=0.5)
        print(f"make run: the weight was in FHIR {time.monotonic() - added:.1f} s after adding it")
        assert found[1] == "kg"
    finally:
        # --- SIGTERM to the process group: make, honcho and everything honcho started stop
        stopping = time.monotonic()
        if run.alive():
            os.killpg(run.popen.pid, signal.SIGTERM)
        try:
            run.popen.wait(30)
            wait_for(
                lambda: not processes_with("OHE_DATA_DIR", data_dir),
                max(1.0, 30 - (time.monotonic() - stopping)),
            )
            stopped = time.monotonic() - stopping
        finally:
            for pid in processes_with("OHE_DATA_DIR", data_dir):
                os.kill(pid, signal.SIGKILL)
            run.stop(signal.SIGKILL)
    print(f"make run: everything stopped {stopped:.1f} s after SIGTERM")
    assert stopped < 30


# --- c. the production setup -------------------------------------------------------------------------


@dataclass
class Production:
    database_url: str
    redis_url: str
    fhir_base_url: str
    tmp: Path

    def overrides(self) -> str:
        """What must point at this machine, exported right after the README's exports."""
        return (
            f"export DATABASE_URL={self.database_url}\n"
            f"export REDIS_URL={self.redis_url}\n"
            f"export OHE_FHIR_BASE_URL={self.fhir_base_url}\n"
        )

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment the README's exports (plus the overrides) give every process."""
        exports = production_blocks()[0]
        code = f"{exports}\n{self.overrides()}env -0\n"
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            env=installed_env(),
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
        env.update(PYTHONUNBUFFERED="1", **extra)
        return env

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.database_url)


def production_blocks() -> tuple[str, str]:
    exports, commands = sh_blocks(section("Production setup"))[:2]
    assert exports.lstrip().startswith("export OHE_ENV=production")
    assert "db upgrade" in commands and "api-key create" in commands
    return exports, commands


def _admin() -> sa.Engine:
    url = sa.engine.make_url(PG_URL).set(database="postgres")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Production]:
    """A fresh PostgreSQL database, its own Redis db flushed, and a sandbox FHIR server."""
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PRODUCTION_DB}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{PRODUCTION_DB}"'))
    redis_url = f"{REDIS_URL}/{PRODUCTION_REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    fhir = ThreadedServer.start(tmp_path / "fhir.db")
    database_url = sa.engine.make_url(PG_URL).set(database=PRODUCTION_DB)
    try:
        yield Production(
            database_url.render_as_string(hide_password=False),
            redis_url,
            fhir.fhir.base,
            tmp_path,
        )
    finally:
        fhir.stop()
        redis.Redis.from_url(redis_url).flushdb()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PRODUCTION_DB}" WITH (FORCE)'))
        admin.dispose()


def _migration_head() -> str:
    from alembic.script import ScriptDirectory

    from ohe.app import MIGRATIONS_DIR

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def test_the_production_exports_are_complete() -> None:
    """The export block alone satisfies every production rule of the settings."""
    exports, _ = production_blocks()
    out = bash(f"{exports}\nenv -0\n", installed_env()).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        raise AssertionError(f"the README's production exports are incomplete: {exc}") from None
    assert settings.production and not settings.sandbox
    assert settings.redis_url and settings.fhir_base_url and settings.flower_basic_auth


def test_the_production_setup_migrates_and_prints_an_api_key(production: Production) -> None:
    exports, commands = production_blocks()
    code = f"{exports}\n{production.overrides()}{commands}"
    out = ran(bash(code, installed_env()), code)

    key = out.strip().splitlines()[-1]
    assert re.fullmatch(r"ohe_[\w-]{20,}", key), out
    assert "Created API key" in out
    engine = production.engine()
    with engine.connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        keys = conn.execute(sa.text("SELECT name, prefix FROM api_key")).all()
    engine.dispose()
    assert revision == _migration_head()
    assert [name for name, _ in keys] == ["ehr-backend"]
    assert key.startswith(keys[0].prefix)


# --- d. the Procfile ---------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def test_the_readme_procfile_table_shows_the_procfile() -> None:
    text = section("Production setup")
    for name, command in procfile().items():
        assert f"| `{name}` | `{command}` |" in text, f"{name}: {command}"


def _start(name: str, command: str, env: dict[str, str], tmp: Path) -> Process:
    # Like Heroku, through bash: a one-command line is exec'd, so SIGTERM reaches the program
    # and its exit status is the program's own.
    return Process(["bash", "-c", command], env, tmp / f"{name}.log")


def _stop(process: Process, timeout: float = 30) -> tuple[int, float]:
    started = time.monotonic()
    code = process.stop(signal.SIGTERM, timeout=timeout)
    return code, time.monotonic() - started


def test_every_procfile_process_runs_in_production_and_stops_cleanly(
    production: Production,
) -> None:
    commands = procfile()
    assert set(commands) == {"release", "web", "worker", "beat", "flower"}
    web_port, flower_port = free_port(), free_port()
    metrics_dir = production.tmp / "prometheus"
    metrics_dir.mkdir()
    env = production.environment(
        PORT=str(web_port), FLOWER_PORT=str(flower_port), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    tmp = production.tmp
    web_url = f"http://127.0.0.1:{web_port}"
    user, password = env["OHE_FLOWER_BASIC_AUTH"].split(":", 1)
    running: list[Process] = []

    def start(name: str, log: str | None = None) -> Process:
        running.append(_start(log or name, commands[name], env, tmp))
        return running[-1]

    try:
        # release: the migrations, exit 0
        release = subprocess.run(
            ["bash", "-c", commands["release"]], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert release.returncode == 0, release.stderr[-3000:]

        # web: alive at once; unhealthy until a worker answers
        web = start("web")
        wait_until(
            lambda: get_json(f"{web_url}/api/metrics/live/")[1]["alive"], 30, "web live", web
        )
        status, body = get_json(f"{web_url}/api/metrics/health/")
        assert status == 503 and body["checks"]["celery_workers"]["status"] == "unhealthy", body

        # worker: answers a Celery ping; then web's health is healthy
        worker = start("worker")
        control = Celery("readme-test", broker=production.redis_url)

        def pong() -> list[str]:
            replies = control.control.ping(timeout=1.0)
            return [name for reply in replies for name in reply if name.startswith("worker@")]

        wait_until(pong, 60, "the worker answers a ping", worker)
        health = wait_until(
            lambda: (r := get_json(f"{web_url}/api/metrics/health/"))[0] == 200 and r[1],
            30,
            "web healthy with the worker up",
            web,
            worker,
        )
        assert health["status"] == "healthy"
        assert health["checks"]["redis"]["backend"] == "redis"
        assert health["checks"]["celery_broker"]["transport"] == "redis"

        # beat: RedBeat's lock in Redis. A second beat waits for the lock instead of running the
        # schedules too (it would take over within beat's max interval, 5 minutes, after the
        # first released the lock: too long to wait for here).
        store = redis.Redis.from_url(production.redis_url)
        beat = start("beat")
        wait_until(lambda: store.exists(REDBEAT_LOCK), 30, "RedBeat's lock", beat)
        wait_until(lambda: "Acquired lock" in beat.output(), 10, "beat has the lock", beat)
        holder = store.get(REDBEAT_LOCK)
        second = start("beat", "beat-2")
        wait_until(lambda: "beat: Starting" in second.output(), 30, "beat 2 starts", second)
        time.sleep(2)
        assert second.alive(), second.output()[-3000:]
        assert "Acquired lock" not in second.output()
        assert store.get(REDBEAT_LOCK) == holder
        for process in (second, beat):
            code, took = _stop(process)
            assert code == 0 and took < 30, (
                process.log_path.name, code, took, process.output()[-3000:]
            )  # fmt: skip
        assert not store.exists(REDBEAT_LOCK), "beat did not release its lock on SIGTERM"

        # flower: its health check, and its API only with basic auth
        flower = start("flower")
        flower_url = f"http://127.0.0.1:{flower_port}"
        wait_until(
            lambda: requests.get(f"{flower_url}/healthcheck", timeout=5).status_code == 200,
            30,
            "flower /healthcheck",
            flower,
        )
        assert requests.get(f"{flower_url}/api/workers", timeout=10).status_code == 401
        wrong = requests.get(f"{flower_url}/api/workers", auth=(user, "wrong"), timeout=10)
        assert wrong.status_code == 401
        workers = requests.get(f"{flower_url}/api/workers", auth=(user, password), timeout=30)
        assert workers.status_code == 200, workers.text
        assert isinstance(workers.json(), dict)

        # `ohe flower` refuses to start in production without basic auth: one clear line
        refused = subprocess.run(
            ["bash", "-c", commands["flower"]],
            env={k: v for k, v in env.items() if k != "OHE_FLOWER_BASIC_AUTH"},
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert refused.returncode == 1, refused
        assert len(lines) == 1 and "OHE_FLOWER_BASIC_AUTH" in lines[0], refused.stderr

        # every process stops cleanly on SIGTERM
        for process in (flower, worker, web):
            code, took = _stop(process)
            assert code == 0 and took < 30, (
                process.log_path.name, code, took, process.output()[-3000:]
            )  # fmt: skip
    finally:
        for process in running:
            process.stop(signal.SIGKILL)
