"""The one exception type a user can cause; the CLI prints its message and exits 1."""

from __future__ import annotations


class FraudtuneError(Exception):
    """A mistake in the user's input, config or environment, with a one-line message naming file, field and fix."""
