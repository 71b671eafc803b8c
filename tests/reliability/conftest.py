"""The e2e stack fixture (see tests/stack.py)."""

from tests.stack import make_stack  # noqa: F401
