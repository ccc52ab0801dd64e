"""Telephony voice-agent gateway: Twilio Media Streams <-> Gemini Live API."""

__version__ = "0.1.0"
