"""A fake phone network for calls the gateway places (test and demo tooling): each carrier's
create-call API, its status callbacks, and the callee's side of the call's media stream."""
