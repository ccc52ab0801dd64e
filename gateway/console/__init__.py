"""The web console: operators sign in, talk to agents, watch live calls and replay recorded
ones. Off unless enabled (``VOICEGW_CONSOLE`` or ``voicegw serve --console``); see
:mod:`gateway.console.settings` for how it is configured and :mod:`gateway.console.auth` for
who may use it."""
