"""Withings: Public Health Data API provider (OAuth2, getmeas, activity, intraday, sleep, ECG,
devices, notify webhooks). Facts: docs/provider-apis.md §1; registered in ``ohe.providers``."""

from ohe.providers.withings.provider import WithingsProvider

__all__ = ["WithingsProvider"]
