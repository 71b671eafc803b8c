"""A faithful simulator of the Withings Public Health Data API (provider-apis.md §1).

Run it: ``python -m ohe.sandbox.withings serve --port 8091``. The simulated app is registered
with client id ``ohe-sandbox-client`` and secret ``ohe-sandbox-secret`` (override with
``--client-id`` / ``--client-secret``). It serves, on one host, what Withings serves on two:
the consent page (``/oauth2_user/authorize2``, account.withings.com in production) and the API
(``/v2/oauth2``, ``/measure``, ``/v2/measure``, ``/v2/sleep``, ``/v2/heart``, ``/v2/user``,
``/notify``; wbsapi.withings.net), plus its own admin API under ``/_sandbox/``.

Where the OpenAPI transcription in ``shared/upstream/withings`` and provider-apis.md disagree,
provider-apis.md (the official developer guide) is followed; each such place says so.
Like every sandbox it imports nothing from the rest of ``ohe``.
"""

from .app import close_app, create_app, sandbox_of, serve
from .config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Clock, SandboxConfig

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "Clock",
    "SandboxConfig",
    "close_app",
    "create_app",
    "sandbox_of",
    "serve",
]
