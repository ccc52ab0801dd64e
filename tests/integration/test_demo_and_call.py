"""The operator's first commands through a carrier other than Twilio: ``voicegw demo
--carrier`` in process, and ``voicegw call --carrier`` as a subprocess against a gateway that
checks the carrier's signatures, over real loopback sockets."""

from __future__ import annotations

import asyncio
import sys
import wave
from pathlib import Path

import pytest

from gateway.audiosocket_server import AudioSocketConfig
from gateway.carrier_setup import all_setups
from gateway.carriers.core import Carrier
from gateway.config import Settings, custom_endpoint
from gateway.ending import EndKind
from gateway.rig.demo import run_demo
from gateway.rig.peers import registry
from gateway.rig.simulator import Scenario, SimulatorServer
from gateway.rig.simulator.speech import speech_dir
from gateway.server import Gateway, running

SPEED = 8.0


@pytest.mark.parametrize("carrier", [Carrier.VONAGE, Carrier.JAMBONZ, Carrier.BROWSER],
                         ids=lambda c: c.value)
async def test_the_demo_through_a_binary_carrier_hears_every_reply_and_the_barge_in(
        carrier: Carrier) -> None:
    report = await run_demo(speed=SPEED, carrier=carrier)
    figures = report.figures()
    assert figures["carrier"] == carrier.value
    assert report.summary.end.kind is EndKind.CALLER_HUNG_UP
    assert figures["clears"] == 1 and len(figures["barge_in_ms_at_phone"]) == 1
    assert len(figures["response_latency_ms_at_phone"]) == 4
    assert figures["caller_frames_forwarded_by_gateway"] == figures["caller_frames_sent"]
    # Each confirms its marks (Vonage's notify): what the caller heard goes on the record.
    assert 0 < figures["marks_echoed_by_phone"] <= figures["marks_sent_by_gateway"]


@pytest.mark.parametrize("carrier", [Carrier.TELNYX, Carrier.JAMBONZ], ids=lambda c: c.value)
async def test_voicegw_call_through_a_signed_answer(tmp_path: Path, carrier: Carrier) -> None:
    env, secret = registry.test_credentials(carrier)
    out = tmp_path / "reply.wav"
    async with SimulatorServer(Scenario(speed=SPEED)) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          carriers={carrier: all_setups(env)[carrier]})
        async with running(gateway) as port:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "call",
                str(speech_dir() / "caller_book_table.wav"), "--url",
                f"http://127.0.0.1:{port}", "--carrier", carrier.value, "--secret", secret,
                "--speed", str(SPEED), "--out", str(out),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stdout, stderr = await proc.communicate()
            await gateway.wait_idle()
    assert proc.returncode == 0, stderr.decode()
    assert "response latency [" in stdout.decode()
    [summary] = gateway.finished
    assert summary.carrier == carrier.value and summary.end.kind is EndKind.CALLER_HUNG_UP
    assert summary.stats.media_out > 0
    with wave.open(str(out)) as wav:  # the caller's side and what came back, at 16 kHz
        assert (wav.getnchannels(), wav.getframerate()) == (2, 16000)
        assert wav.getnframes() > 16000


async def test_the_demo_and_voicegw_call_through_exotel(tmp_path: Path) -> None:
    """Exotel's Basic credentials (``--secret user:password``) on the dynamic URL and the
    upgrade; the demo plays its part with fresh ones."""
    report = await run_demo(speed=SPEED, carrier=Carrier.EXOTEL)
    figures = report.figures()
    assert figures["carrier"] == "exotel" and figures["clears"] == 1
    assert report.summary.end.kind is EndKind.CALLER_HUNG_UP
    assert 0 < figures["marks_echoed_by_phone"] <= figures["marks_sent_by_gateway"]
    env, secret = registry.test_credentials(Carrier.EXOTEL)
    out = tmp_path / "reply.wav"
    async with SimulatorServer(Scenario(speed=SPEED)) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          carriers={Carrier.EXOTEL: all_setups(env)[Carrier.EXOTEL]})
        async with running(gateway) as port:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "call",
                str(speech_dir() / "caller_book_table.wav"), "--url",
                f"http://127.0.0.1:{port}", "--carrier", "exotel", "--secret", secret,
                "--speed", str(SPEED), "--out", str(out),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, stderr = await proc.communicate()
            await gateway.wait_idle()
    assert proc.returncode == 0, stderr.decode()
    [summary] = gateway.finished
    assert summary.carrier == "exotel" and summary.end.kind is EndKind.CALLER_HUNG_UP
    assert summary.stats.media_out > 0


async def test_the_demo_through_asterisk_hears_every_reply_and_hangs_up_on_the_socket() -> None:
    report = await run_demo(speed=SPEED, carrier=Carrier.ASTERISK)
    figures = report.figures()
    assert figures["carrier"] == "asterisk"
    assert report.summary.end.kind is EndKind.CALLER_HUNG_UP
    assert figures["clears"] == 1 and len(figures["barge_in_ms_at_phone"]) == 1
    assert len(figures["response_latency_ms_at_phone"]) == 4
    assert figures["caller_frames_forwarded_by_gateway"] == figures["caller_frames_sent"]
    # Asterisk confirms each MARK_MEDIA: what the caller heard goes on the record.
    assert 0 < figures["marks_echoed_by_phone"] <= figures["marks_sent_by_gateway"]


async def test_voicegw_call_dials_a_gateway_that_checks_asterisks_credentials(
        tmp_path: Path) -> None:
    env, secret = registry.test_credentials(Carrier.ASTERISK)
    out = tmp_path / "reply.wav"
    async with SimulatorServer(Scenario(speed=SPEED)) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          carriers={Carrier.ASTERISK: all_setups(env)[Carrier.ASTERISK]})
        async with running(gateway) as port:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "call",
                str(speech_dir() / "caller_book_table.wav"), "--url",
                f"http://127.0.0.1:{port}", "--carrier", "asterisk", "--secret", secret,
                "--param", "agent=assistant", "--speed", str(SPEED), "--out", str(out),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stdout, stderr = await proc.communicate()
            await gateway.wait_idle()
    assert proc.returncode == 0, stderr.decode()
    assert "response latency [" in stdout.decode()
    [summary] = gateway.finished
    assert summary.carrier == "asterisk" and summary.end.kind is EndKind.CALLER_HUNG_UP
    assert summary.custom_parameters == {"agent": "assistant"}  # the dial string's v()
    assert summary.stats.media_out > 0
    with wave.open(str(out)) as wav:  # mu-law at 8 kHz, the peer's default
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)


async def test_the_demo_and_voicegw_call_through_audiosocket(tmp_path: Path) -> None:
    """Over TCP: the demo registers its call as the dialplan would and barges in once (there
    is no clear: the record shows it); ``voicegw call`` dials the AudioSocket port itself."""
    report = await run_demo(speed=SPEED, carrier=Carrier.AUDIOSOCKET)
    figures = report.figures()
    assert figures["carrier"] == "audiosocket" and figures["clears"] == 0
    assert report.summary.stats.interruptions == 1
    assert report.summary.end.kind is EndKind.CALLER_HUNG_UP
    assert figures["caller_frames_forwarded_by_gateway"] == figures["caller_frames_sent"]
    out = tmp_path / "reply.wav"
    async with SimulatorServer(Scenario(speed=1.0)) as sim:
        gateway = Gateway(Settings(endpoint=custom_endpoint(sim.url, "test-model")),
                          carriers={}, audiosocket=AudioSocketConfig("127.0.0.1", 0))
        async with running(gateway):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "call",
                str(speech_dir() / "caller_goodbye.wav"), "--url",
                f"tcp://127.0.0.1:{gateway.audiosocket_port}", "--carrier", "audiosocket",
                "--wait", "5", "--out", str(out),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, stderr = await proc.communicate()
            await gateway.wait_idle()
    assert proc.returncode == 0, stderr.decode()
    [summary] = gateway.finished
    assert summary.carrier == "audiosocket" and summary.end.kind is EndKind.CALLER_HUNG_UP
    assert summary.stats.media_out > 0
