"""Sandbox FHIR server: a spec-following stand-in for a hospital FHIR server (R5, or R4).

Why it exists: no R5-conformant server is installable from the registries we can reach
(platform-notes §5), and OHE's idempotency, breakers and retries need a server that really
implements atomic transactions, conditional create/update, versioning and search — and that
can be made slow, flaky or unavailable on demand. Run it with ``python -m ohe.sandbox.fhir``;
embed it with :func:`create_app`.

Layout: ``app`` (HTTP) → ``interactions`` / ``bundles`` (FHIR semantics) → ``search``,
``validation``, ``store`` (SQLite); ``catalog`` is the table of types and search parameters
everything else reads. Like every sandbox it imports nothing from the rest of ``ohe``.
"""

from ohe.sandbox.fhir.app import create_app

__all__ = ["create_app"]
