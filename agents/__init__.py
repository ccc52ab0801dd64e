"""Bundled agent plugins."""
