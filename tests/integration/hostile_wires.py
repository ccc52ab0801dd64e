"""Every carrier's wire for the hostile-input tests, by carrier."""

from __future__ import annotations

from gateway.carriers.core import Carrier
from tests.integration.hostile_wire import (
    ExotelWire,
    PlivoWire,
    SignalWireWire,
    TelnyxWire,
    TwilioWire,
    Wire,
)
from tests.integration.hostile_wire_binary import AsteriskWire, JambonzWire, VonageWire
from tests.integration.hostile_wire_browser import BrowserWire

WIRES: dict[Carrier, type[Wire]] = {
    w.carrier: w for w in (TwilioWire, SignalWireWire, TelnyxWire, PlivoWire, VonageWire,
                           JambonzWire, ExotelWire, AsteriskWire, BrowserWire)
}
