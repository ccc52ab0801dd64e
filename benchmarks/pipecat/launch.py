"""Run the Pipecat baseline (``bot.py``) from our own venv: stdlib only, no Pipecat imports.

Pipecat and its dependencies live in a venv of their own (``benchmarks/.venv-pipecat``), so
they never mix with the gateway's. The harness does::

    from benchmarks.pipecat.launch import ensure_venv, start_bot, wait_ready

    ensure_venv()
    bot = start_bot(port, "https://127.0.0.1:%d" % sim_port, ca_pem, cpu=0, log=log_path)
    wait_ready(port, 60, proc=bot)
    ...
    bot.terminate(); bot.wait()
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
REPO: Final = HERE.parent.parent
DEFAULT_VENV: Final = REPO / "benchmarks" / ".venv-pipecat"
REQUIREMENTS: Final = HERE / "requirements.txt"
BOT: Final = HERE / "bot.py"
# Written into the venv after a successful install: the hash of what was installed.
STAMP_NAME: Final = ".requirements.sha256"


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _wanted_stamp() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    return f"{digest} python{sys.version_info.major}.{sys.version_info.minor}\n"


def ensure_venv(path: Path = DEFAULT_VENV) -> Path:
    """Make ``path`` a venv with ``requirements.txt`` installed; returns its python.

    Creates it with this interpreter (``sys.executable -m venv``) when missing, and
    (re)installs the requirements when they changed since the last install. Idempotent
    and cheap when up to date. Raises ``subprocess.CalledProcessError`` if pip fails.
    """
    path = Path(path)
    python = _python(path)
    stamp = path / STAMP_NAME
    wanted = _wanted_stamp()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return python


def start_bot(port: int, live_url: str, ca_file: Path, *, cpu: int | None, log: Path,
              uvloop: bool = False, venv: Path = DEFAULT_VENV) -> subprocess.Popen[bytes]:
    """Start ``bot.py`` on 127.0.0.1:``port`` (``taskset -c cpu`` when ``cpu`` is given).

    ``live_url`` is the (simulated) Live server as ``https://HOST:PORT``; ``ca_file`` the
    PEM CA it is trusted with. stdout and stderr go to ``log``. Call :func:`wait_ready`
    before sending calls.
    """
    python = ensure_venv(venv)
    cmd = [str(python), str(BOT), "--port", str(port), "--live-url", live_url,
           "--ca-file", str(ca_file)]
    if uvloop:
        cmd.append("--uvloop")
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(HERE))


def wait_ready(port: int, timeout: float, *, host: str = "127.0.0.1",
               proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections (uvicorn listens once started).

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``RuntimeError`` at once if
    ``proc`` (the bot) exits first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Pipecat bot exited with {proc.returncode} at startup")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the Pipecat bot did not listen on {host}:{port} "
                                   f"within {timeout:g} s") from None
            time.sleep(0.1)
