"""The carriers' REST APIs for call control (hang up, transfer): one thin client per provider
over one HTTP transport (:mod:`gateway.rest.http`), all behind
:class:`gateway.callctl.CallControlApi`."""
