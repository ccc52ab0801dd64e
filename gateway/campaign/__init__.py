"""Campaigns: a list of contacts called through the gateway's ``/v1/calls`` API, politely
(a window in each contact's time zone, a rate, a concurrency cap, retries, a do-not-call list)
and resumably (its state lives in the call-record database). See the README's "Campaigns"."""
