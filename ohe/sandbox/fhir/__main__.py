"""Run the sandbox FHIR server: ``python -m ohe.sandbox.fhir --port 8090 --db var/sandbox-fhir.db``.

A threaded werkzeug server is enough: writes are serialized by the store anyway, and reads are
cheap. SIGTERM and SIGINT stop it cleanly — no new connections, in-flight requests finish, the
database is closed — which is what process managers (honcho, the tests' ``Process``) send.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import WSGIRequestHandler, make_server

from ohe.sandbox.fhir.app import create_app
from ohe.sandbox.fhir.auth import DEFAULT_TOKEN_TTL
from ohe.sandbox.fhir.faults import FaultConfig
from ohe.sandbox.fhir.store import StoreError


class QuietHandler(WSGIRequestHandler):
    """No access log line per request (``--access-log`` turns it back on)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ohe.sandbox.fhir", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="0 picks a free port (printed)")
    p.add_argument("--db", default="var/sandbox-fhir.db", help="SQLite file (created if absent)")
    p.add_argument("--fhir-version", choices=("R5", "R4"), default="R5")
    p.add_argument("--bearer-token", help="require Authorization: Bearer TOKEN on /fhir")
    p.add_argument("--oauth-client", metavar="ID:SECRET", help="enable POST /oauth/token")
    p.add_argument("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL, help="seconds")
    faults = p.add_argument_group("faults (also settable at POST /_sandbox/faults)")
    faults.add_argument("--latency-ms", type=int, default=0)
    faults.add_argument("--error-rate", type=float, default=0.0)
    faults.add_argument("--error-status", type=int, default=503)
    faults.add_argument("--rate-limit-rate", type=float, default=0.0)
    faults.add_argument("--retry-after", type=int, default=1)
    faults.add_argument("--outage", action="store_true")
    faults.add_argument("--seed", type=int, help="seed for random faults (reproducible runs)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log = logging.getLogger("ohe.sandbox.fhir")
    try:
        faults = FaultConfig(
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            error_status=args.error_status,
            rate_limit_rate=args.rate_limit_rate,
            retry_after=args.retry_after,
            outage=args.outage,
        )
        app = create_app(
            args.db,
            args.fhir_version,
            bearer_token=args.bearer_token,
            oauth_client=args.oauth_client,
            token_ttl=args.token_ttl,
            faults=faults,
            seed=args.seed,
        )
    except (ValueError, StoreError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    handler = WSGIRequestHandler if args.access_log else QuietHandler
    server = make_server(args.host, args.port, app, threaded=True, request_handler=handler)
    server.daemon_threads = False  # so server_close() waits for requests in flight

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    url = f"http://{args.host}:{server.server_port}/fhir"
    log.info("sandbox FHIR server (%s) listening on %s, db %s", args.fhir_version, url, args.db)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        app.extensions["ohe_sandbox_fhir"].store.close()
        log.info("sandbox FHIR server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
