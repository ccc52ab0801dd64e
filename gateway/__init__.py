"""Telephony voice-agent gateway: a carrier's media stream <-> Gemini Live API."""

__version__ = "0.1.0"
