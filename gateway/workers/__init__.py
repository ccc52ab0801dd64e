"""``voicegw serve --workers N``: a supervisor and N gateway processes on one port."""
