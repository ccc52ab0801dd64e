"""Shared test configuration."""

from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

# Shared, noisy machines: generation speed and per-example time are not what these property
# tests check, so neither may fail a run.
settings.register_profile("default", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # Commands run in a test (cli.main) point structlog at that test's captured stderr, which
    # pytest closes afterwards; later tests must not log into it.
    before = structlog.get_config()
    yield
    structlog.configure(**before)
