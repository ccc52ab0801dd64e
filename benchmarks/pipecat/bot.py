"""Pipecat 1.14 baseline for the benchmarks: Twilio Media Streams <-> Gemini Live.

Runs in its own venv (``benchmarks/.venv-pipecat``, see ``launch.py``), never in ours. It is
the pipeline a Pipecat user would deploy for a phone line served by a Live model, the shape
of Pipecat's own Twilio + Gemini Live examples:

    transport.input() -> user context aggregator -> GeminiLiveLLMService
        -> transport.output() -> assistant context aggregator

* FastAPI + uvicorn serve the Twilio WebSocket at ``/media``; the first two Twilio messages
  (``connected``, ``start``) are read with Pipecat's own ``parse_telephony_websocket``.
* ``TwilioFrameSerializer`` with ``auto_hang_up=False``: it never calls Twilio's REST API.
* No local VAD (no Silero), no STT, no TTS: the Live model hears, detects turns server-side
  (automatic activity detection, barge-in via ``serverContent.interrupted``) and speaks.
* Pipecat's default sample rates and resampling (``PipelineParams`` defaults: 16 kHz into
  the pipeline, 24 kHz out of it), so the serializer resamples Twilio's 8 kHz to 16 kHz for
  the model and the model's 24 kHz to 8 kHz for the caller, with Pipecat's stream resampler.
* The context aggregators are there because Pipecat's Gemini Live service only starts
  sending audio once it has an ``LLMContext`` (``LLMRunFrame`` on connect). With
  ``inference_on_context_initialization=False`` and no messages the model does not speak
  first, like our gateway's default agent (a system instruction and no greeting).

Pointed at the simulated Live server: ``--live-url https://127.0.0.1:PORT`` becomes the
SDK's ``HttpOptions.base_url`` and ``--ca-file`` is trusted through
``async_client_args={"ssl": ctx}`` (Google's SDK refuses plain ``ws://`` with an API key).

    python bot.py --port 8765 --live-url https://127.0.0.1:8766 --ca-file ca.pem [--uvloop]
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys

import uvicorn
from fastapi import FastAPI, WebSocket
from google.genai.types import HttpOptions
from loguru import logger

from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.google.gemini_live.llm import GeminiLiveLLMService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

# The same model id and instructions as our gateway's default agent, so both send the
# simulator the same kind of session.
MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
INSTRUCTIONS = ("You are a friendly, concise phone agent. Callers hear you over a telephone "
                "line, so keep replies short and speak naturally.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--live-url", required=True,
                   help="https://HOST:PORT of the (simulated) Live server: the SDK's base_url")
    p.add_argument("--ca-file", default=None,
                   help="PEM CA bundle to trust for --live-url (the simulator's CA)")
    p.add_argument("--api-key", default="simulated-api-key",
                   help="any string for the simulator")
    p.add_argument("--model", default=MODEL)
    p.add_argument("--uvloop", action="store_true",
                   help="run on uvloop, as our gateway does by default")
    return p.parse_args(argv)


def quiet_logging() -> None:
    # WARNING and above only, so logging does not dominate the CPU we measure: the same
    # courtesy our gateway gets in the benchmarks (`voicegw --log-level warning`).
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logging.basicConfig(level=logging.WARNING)


def http_options(live_url: str, ca_file: str | None) -> HttpOptions:
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None
    return HttpOptions(base_url=live_url.rstrip("/"), api_version="v1beta",
                       async_client_args={"ssl": ctx} if ctx is not None else None)


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    options = http_options(args.live_url, args.ca_file)

    @app.websocket("/media")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        # Reads Twilio's `connected` and `start` messages (stream and call sids).
        _, call_data = await parse_telephony_websocket(websocket)
        await run_call(websocket, call_data["stream_id"], call_data["call_id"], args, options)

    return app


async def run_call(websocket: WebSocket, stream_sid: str, call_sid: str | None,
                   args: argparse.Namespace, options: HttpOptions) -> None:
    serializer = TwilioFrameSerializer(
        stream_sid=stream_sid, call_sid=call_sid,
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
            serializer=serializer))
    llm = GeminiLiveLLMService(
        api_key=args.api_key,
        http_options=options,
        # Server-side VAD (the default: no `vad` settings) and barge-in.
        settings=GeminiLiveLLMService.Settings(model=args.model, voice="Charon",
                                               system_instruction=INSTRUCTIONS),
        inference_on_context_initialization=False,  # the caller speaks first
    )
    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(context)
    pipeline = Pipeline([transport.input(), user_aggregator, llm, transport.output(),
                         assistant_aggregator])
    # PipelineWorker/WorkerRunner: 1.14's names for the deprecated PipelineTask/PipelineRunner.
    # Default PipelineParams (16 kHz in, 24 kHz out, no metrics). RTVI off: it talks to a
    # Pipecat web/mobile client, and a phone line has none (Pipecat's Twilio examples say to
    # drop it for phone use); TwilioFrameSerializer would discard its messages anyway.
    worker = PipelineWorker(pipeline, params=PipelineParams(), enable_rtvi=False)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: object, _client: object) -> None:
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: object, _client: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_logging()
    config = uvicorn.Config(build_app(args), host=args.host, port=args.port,
                            loop="uvloop" if args.uvloop else "asyncio",
                            log_level="warning", access_log=False)
    uvicorn.Server(config).run()  # sets up the loop config.loop names, then serves


if __name__ == "__main__":
    main()
