"""Fixtures for observability tests."""

from tests.stack import make_stack  # noqa: F401
