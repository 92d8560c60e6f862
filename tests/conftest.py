"""Test-session setup: import xrender first, so its OpenMP wait policy applies before torch loads."""

import xrender  # noqa: F401
