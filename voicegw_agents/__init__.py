"""Bundled agent plugins: every module here with a module-level ``agent = Agent(...)`` is
discovered by :mod:`gateway.registry`. Each is one file importing only :mod:`gateway.agent`,
written to be copied as the start of your own agent."""
