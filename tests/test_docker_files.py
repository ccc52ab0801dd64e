"""The docker/ files agree with each other and with the gateway.

No Docker on CI, so the image is never built here; these checks catch the mistakes that would
only show at deploy time: a port changed in one place, a scrape target naming the wrong
service, a COPY of a path that moved, a stop timeout shorter than the drain.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import Settings, custom_endpoint
from gateway.drain import DRAIN_CLOSE_S
from gateway.server import Gateway

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per line, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"exec form expected (PID 1 must get SIGTERM): {args}"
    return list(yaml.safe_load(args))


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions(DOCKER / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def _one(dockerfile: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in dockerfile if w == word]
    assert len(found) == 1, (word, found)
    return found[0]


def _port(dockerfile: list[tuple[str, str]]) -> int:
    return int(_one(dockerfile, "EXPOSE").split("/")[0])


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def test_the_image_is_slim_non_root_and_checked(dockerfile: list[tuple[str, str]]) -> None:
    stages = [args for w, args in dockerfile if w == "FROM"]
    final = stages[-1].split()[0]
    assert final.startswith("python:") and final.endswith("-slim")
    user = _one(dockerfile, "USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert _one(dockerfile, "STOPSIGNAL") == "SIGTERM"
    port = _port(dockerfile)
    healthcheck = _one(dockerfile, "HEALTHCHECK")
    assert f"127.0.0.1:{port}/healthz" in healthcheck
    command = _exec_form(_one(dockerfile, "ENTRYPOINT")) + _exec_form(_one(dockerfile, "CMD"))
    assert command[:2] == ["voicegw", "serve"]
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_every_copied_path_exists_and_reaches_the_build(
        dockerfile: list[tuple[str, str]]) -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert "*" in ignore  # a whitelist: nothing else (.venv, .env files) goes to the daemon
    copies = [shlex.split(args) for w, args in dockerfile if w == "COPY"]
    sources = [src for args in copies if not args[0].startswith("--from=")
               for src in args[:-1]]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert src.rstrip("/") in allowed, f"{src} is excluded by Dockerfile.dockerignore"


def test_compose_services(compose: dict[str, Any], dockerfile: list[tuple[str, str]]) -> None:
    services = compose["services"]
    assert set(services) == {"gateway", "postgres", "prometheus"}
    gw = services["gateway"]
    context = (DOCKER / gw["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / gw["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert gw["env_file"] == ".env"
    example = (DOCKER / ".env.example").read_text()
    for name in ("GEMINI_API_KEY", "VOICEGW_SECRET", "VOICEGW_PUBLIC_URL", "TWILIO_AUTH_TOKEN",
                 "SIGNALWIRE_SIGNING_KEY", "TELNYX_PUBLIC_KEY", "PLIVO_AUTH_TOKEN",
                 "VONAGE_SIGNATURE_SECRET", "ASTERISK_WS_USER", "ASTERISK_WS_PASSWORD"):
        assert re.search(rf"^{name}=", example, re.MULTILINE), name
    port = _port(dockerfile)
    assert f"8080:{port}" in gw["ports"]

    # Call records in the postgres service, which must be up (healthy) first.
    url = gw["environment"]["DATABASE_URL"]
    assert re.fullmatch(r"postgresql://voicegw:voicegw@postgres:5432/voicegw", url)
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert pg["environment"]["POSTGRES_DB"] == "voicegw"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "ports" not in pg  # the database stays on the compose network
    assert gw["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_the_stop_timeout_covers_the_drain(compose: dict[str, Any]) -> None:
    gw = compose["services"]["gateway"]
    grace = float(gw["environment"]["VOICEGW_SHUTDOWN_GRACE_S"])
    assert _seconds(gw["stop_grace_period"]) >= grace + DRAIN_CLOSE_S + 5


def test_prometheus_scrapes_the_gateway(compose: dict[str, Any],
                                        dockerfile: list[tuple[str, str]]) -> None:
    prom = compose["services"]["prometheus"]
    mount = next(v for v in prom["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((DOCKER / mount.split(":")[0]).read_text())
    [job] = config["scrape_configs"]
    [static] = job["static_configs"]
    assert static["targets"] == [f"gateway:{_port(dockerfile)}"]
    assert "gateway" in compose["services"]
    # The path Prometheus asks for is a route the gateway serves.
    path = job.get("metrics_path", "/metrics")
    gateway = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9", "m")))
    routes = {r.resource.canonical for r in gateway.app().router.routes()
              if r.resource is not None and r.method == "GET"}
    assert path in routes
