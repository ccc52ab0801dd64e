"""Shared test configuration."""

from hypothesis import HealthCheck, settings

# Shared, noisy machines: generation speed and per-example time are not what these property
# tests check, so neither may fail a run.
settings.register_profile("default", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")
