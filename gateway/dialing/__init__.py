"""Outbound calls: the request and its statuses (:mod:`.model`), what a carrier provides for
them (:mod:`.carrier`), and the service that places and follows them."""
