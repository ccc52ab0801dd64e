"""deploy/kubernetes/ is valid Kubernetes and agrees with the gateway and its image.

Every document is checked against the Kubernetes API schemas that kubernetes-validate ships
(no network), in strict mode, which refuses fields the API does not have. The rest checks what
no schema can: the probes ask for routes the gateway serves, the ports agree, every variable
set is one the gateway reads, and the drain fits in the termination grace period.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gateway.config import Settings, custom_endpoint, load_settings
from gateway.drain import DRAIN_CLOSE_S
from gateway.metrics import PREFIX
from gateway.server import Gateway
from gateway.store.postgres import PostgresStore
from gateway.store.target import store_from_env
from tests.kustomize_render import Doc, load_documents, render

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("prometheus-adapter", "keda")  # each is base/ and one autoscaler
SECRET_EXAMPLE = KUBE / "base" / "secret.example.yaml"
# The oldest and newest Kubernetes minor versions checked against.
VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
# Custom resources: kubernetes-validate has schemas for the built-in kinds only, and KEDA's
# CRD schema is not vendored here, so a ScaledObject is checked field by field below
# (test_keda_scales_on_active_calls) instead.
CUSTOM_GROUPS = {"keda.sh"}


def _one(docs: list[Doc], kind: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return render(KUBE / "prometheus-adapter")


@pytest.fixture(scope="module")
def pod(docs: list[Doc]) -> dict[str, Any]:
    return dict(_one(docs, "Deployment")["spec"]["template"]["spec"])


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    [gateway] = pod["containers"]
    return dict(gateway)


@pytest.fixture(scope="module")
def config(docs: list[Doc]) -> dict[str, str]:
    return dict(_one(docs, "ConfigMap")["data"])


def _validate(doc: Doc, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_valid_kubernetes(overlay: str, version: str) -> None:
    docs = render(KUBE / overlay) + load_documents(SECRET_EXAMPLE)
    built_in = [d for d in docs if d["apiVersion"].split("/")[0] not in CUSTOM_GROUPS]
    assert {d["kind"] for d in docs} - {d["kind"] for d in built_in} <= {"ScaledObject"}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Ingress",
            "PodDisruptionBudget"} <= {d["kind"] for d in built_in}
    for doc in built_in:
        _validate(doc, version)


@pytest.mark.parametrize("breakage", ["misspelt field", "wrong type", "missing field"])
def test_a_broken_manifest_is_refused(docs: list[Doc], breakage: str) -> None:
    broken = copy.deepcopy(_one(docs, "Deployment"))
    _validate(broken, VERSIONS[-1])  # the intact copy passes
    gateway = broken["spec"]["template"]["spec"]["containers"][0]
    if breakage == "misspelt field":
        gateway["readinesProbe"] = gateway.pop("readinessProbe")
    elif breakage == "wrong type":
        gateway["ports"][0]["containerPort"] = "8080"
    else:
        del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken, VERSIONS[-1])


def test_an_unknown_kind_is_refused_not_passed() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        _validate({"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}},
                  VERSIONS[-1])


def test_the_probes_and_ports_agree_with_the_gateway(docs: list[Doc], pod: dict[str, Any],
                                                     container: dict[str, Any]) -> None:
    app = Gateway(Settings(endpoint=custom_endpoint("ws://127.0.0.1:9", "m"))).app()
    routes = {r.resource.canonical for r in app.router.routes()
              if r.resource is not None and r.method == "GET"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    template = _one(docs, "Deployment")["spec"]["template"]["metadata"]
    scrape = template["annotations"]
    assert {"/readyz", "/healthz", scrape["prometheus.io/path"]} <= routes
    [port] = container["ports"]
    args = container["args"]
    assert args[:1] == ["serve"] and args[args.index("--host") + 1] == "0.0.0.0"
    assert int(args[args.index("--port") + 1]) == port["containerPort"]
    assert int(scrape["prometheus.io/port"]) == port["containerPort"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {port['containerPort']}$", dockerfile, re.MULTILINE)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]
    # The Service reaches that port, and the Ingress that Service.
    service = _one(docs, "Service")
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert service["spec"]["selector"].items() <= template["labels"].items()
    backend = _one(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"] == {"name": service["metadata"]["name"],
                                  "port": {"name": service_port["name"]}}


def _names_in_source() -> set[str]:
    text = "\n".join(p.read_text() for folder in ("gateway", "voicegw_agents")
                     for p in (ROOT / folder).rglob("*.py"))
    return set(re.findall(r"""["']([A-Z][A-Z0-9_]{3,})["']""", text))


def test_every_variable_set_is_one_the_gateway_reads(config: dict[str, str]) -> None:
    [secret] = load_documents(SECRET_EXAMPLE)
    names = set(config) | set(secret["stringData"])
    assert names - _names_in_source() == set()


def test_the_settings_load_from_the_configmap_and_secret(config: dict[str, str]) -> None:
    [secret] = load_documents(SECRET_EXAMPLE)
    env = {**config, **secret["stringData"]}
    settings = load_settings(host="0.0.0.0", env=env)
    assert settings.public_url == config["VOICEGW_PUBLIC_URL"]
    assert settings.stream_secret is not None  # shared by every pod
    assert isinstance(store_from_env(env), PostgresStore)
    assert all("placeholder" in value for value in secret["stringData"].values())


def test_no_secret_is_applied() -> None:
    for overlay in OVERLAYS:
        assert not [d for d in render(KUBE / overlay) if d["kind"] == "Secret"]
    for path in KUBE.rglob("*.yaml"):
        if path != SECRET_EXAMPLE:
            assert "kind: Secret" not in path.read_text(), path


def test_the_pod_runs_as_the_image_user_read_only(pod: dict[str, Any],
                                                   container: dict[str, Any]) -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    uid = re.search(r"useradd .*--uid (\d+)", dockerfile)
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.MULTILINE)[-1]
    assert uid and pod["securityContext"]["runAsUser"] == int(uid[1])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Writable where the gateway writes: its working directory (recordings, SQLite) and /tmp.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {workdir, "/tmp"} <= mounts


def test_the_grace_period_covers_the_drain(docs: list[Doc], pod: dict[str, Any],
                                           container: dict[str, Any],
                                           config: dict[str, str]) -> None:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = int(command[1]) + float(config["VOICEGW_SHUTDOWN_GRACE_S"]) + 2 * DRAIN_CLOSE_S
    assert pod["terminationGracePeriodSeconds"] >= drain + 5
    # A rolling update starts a new pod before an old one drains.
    strategy = _one(docs, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0
    # The Ingress keeps a quiet socket open for longer than a call may drain.
    annotations = _one(docs, "Ingress")["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        timeout = float(annotations[f"nginx.ingress.kubernetes.io/{name}"])
        assert timeout > float(config["VOICEGW_SHUTDOWN_GRACE_S"])
    pdb = _one(docs, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= \
        _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()


def test_the_hpa_scales_on_active_calls_below_the_cap(docs: list[Doc],
                                                      config: dict[str, str]) -> None:
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == _one(docs, "Deployment")["metadata"]["name"]
    assert "replicas" not in _one(docs, "Deployment")["spec"]  # the HPA owns the count
    [metric] = hpa["metrics"]
    assert metric["pods"]["metric"]["name"] == PREFIX + "active_calls"
    target = float(metric["pods"]["target"]["averageValue"])
    assert target < int(config["VOICEGW_MAX_CALLS"])
    assert hpa["minReplicas"] >= 2
    # The adapter's rule serves the metric under that name.
    values = load_documents(KUBE / "prometheus-adapter" / "prometheus-adapter-values.yaml")
    [rule] = values[0]["rules"]["custom"]
    assert rule["name"]["as"] == PREFIX + "active_calls"
    assert rule["seriesQuery"].startswith(PREFIX + "active_calls{")


def test_keda_scales_on_active_calls(config: dict[str, str]) -> None:
    docs = render(KUBE / "keda")
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]  # KEDA makes it
    scaled = _one(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": _one(docs, "Deployment")["metadata"]["name"]}
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert PREFIX + "active_calls" in trigger["metadata"]["query"]
    assert float(trigger["metadata"]["threshold"]) < int(config["VOICEGW_MAX_CALLS"])
    assert spec["minReplicaCount"] >= 2
    # What KEDA passes on to the HPA it makes is valid HPA behaviour.
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "keda-hpa-voicegw"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "voicegw"},
                    "maxReplicas": spec["maxReplicaCount"], "behavior": behavior}}
    _validate(hpa, VERSIONS[-1])
