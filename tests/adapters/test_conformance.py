"""Runs the conformance kit (tests/adapters/conformance.py) against all five TDSP adapters."""

from tests.adapters.conformance import *  # noqa: F403
