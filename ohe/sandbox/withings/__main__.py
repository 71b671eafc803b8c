"""Command line: ``serve`` the sandbox, or drive a running one (``users``, ``create-user``,
``add-measure``) through its admin API.

    python -m ohe.sandbox.withings serve --port 8091 --db var/sandbox-withings.db
    python -m ohe.sandbox.withings users --url http://127.0.0.1:8091
    python -m ohe.sandbox.withings add-measure --url http://127.0.0.1:8091 --user 10000001 \\
        --weight 72.5
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import orjson
import requests

from .app import serve
from .config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PORT, SandboxConfig

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

# add-measure flag -> admin API field (real units)
MEASURE_FLAGS = {
    "weight": "weight_kg",
    "fat_ratio": "fat_ratio",
    "systolic": "systolic",
    "diastolic": "diastolic",
    "pulse": "pulse",
    "spo2": "spo2",
    "temperature": "body_temperature",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ohe.sandbox.withings")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the sandbox HTTP server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--db", type=Path, default=Path("var/sandbox-withings.db"))
    s.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    s.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    s.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="registered callback URL (repeatable); none registered = any http(s) URL",
    )
    s.add_argument("--rate-limit", type=int, default=120, help="calls per window, whole app")
    s.add_argument("--rate-window", type=float, default=60.0, help="window length, seconds")
    s.add_argument("--access-ttl", type=int, default=10800, help="access token lifetime, s")
    s.add_argument("--code-ttl", type=int, default=30, help="authorization code lifetime, s")
    s.add_argument("--delivery-speed", type=float, default=1.0, help="webhook retry speed-up")
    s.add_argument("--page-size", type=int, default=100, help="rows per page of paged calls")
    s.add_argument("--history-days", type=int, default=30, help="history of consent users")
    s.add_argument("--log-level", default="INFO")

    u = sub.add_parser("users", help="list the users of a running sandbox")
    u.add_argument("--url", default=DEFAULT_URL)

    c = sub.add_parser("create-user", help="create a user with generated history")
    c.add_argument("--url", default=DEFAULT_URL)
    c.add_argument("--history-days", type=int, default=30)
    c.add_argument("--timezone")

    m = sub.add_parser("add-measure", help="add a measure group (notifies subscribers)")
    m.add_argument("--url", default=DEFAULT_URL)
    m.add_argument("--user", type=int, required=True)
    for flag in MEASURE_FLAGS:
        m.add_argument(f"--{flag.replace('_', '-')}", type=float)
    m.add_argument("--meastype", type=int, help="with --value: any meastype")
    m.add_argument("--value", type=float)
    m.add_argument("--date", type=int, help="unix time of the measurement (default: now)")
    m.add_argument("--attrib", type=int, help="0 device (default), 2 manual entry, ...")
    return parser


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    response = requests.request(method, url, json=body, timeout=30)
    if response.status_code >= 400:
        sys.stderr.write(f"{response.status_code}: {response.text}\n")
        raise SystemExit(1)
    return response.json()


def _out(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
        config = SandboxConfig(
            db_path=args.db,
            client_id=args.client_id,
            client_secret=args.client_secret,
            redirect_uris=tuple(u for arg in args.redirect_uri for u in arg.split(",") if u),
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
            access_ttl=args.access_ttl,
            code_ttl=args.code_ttl,
            delivery_speed=args.delivery_speed,
            page_size=args.page_size,
            consent_history_days=args.history_days,
        )
        serve(config, args.host, args.port)
    elif args.command == "users":
        for user in _call("GET", f"{args.url}/_sandbox/users")["users"]:
            sys.stdout.write(f"{user['userid']}\t{user['timezone']}\t{user['history_days']} d\n")
    elif args.command == "create-user":
        body = {"history_days": args.history_days, "timezone": args.timezone}
        _out(_call("POST", f"{args.url}/_sandbox/users", body))
    elif args.command == "add-measure":
        body = {api: getattr(args, flag) for flag, api in MEASURE_FLAGS.items()}
        body |= {"meastype": args.meastype, "value": args.value}
        body |= {"date": args.date, "attrib": args.attrib}
        body = {k: v for k, v in body.items() if v is not None}
        _out(_call("POST", f"{args.url}/_sandbox/users/{args.user}/measures", body))


if __name__ == "__main__":
    main()
