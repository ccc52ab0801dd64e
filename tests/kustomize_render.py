"""Renders deploy/kubernetes/ the way `kubectl kustomize` does, for the few features used.

CI has no kubectl, so the manifests' tests read the kustomizations themselves: `resources`
(files, or folders with a kustomization.yaml of their own), `namespace` and `images`. Any
other field is refused rather than ignored, so a kustomization that grows a patch or a
generator fails here until this learns it, instead of being checked half-rendered.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "namespace", "resources", "images"}
# Kinds without a namespace, among those the manifests use.
CLUSTER_SCOPED = {"Namespace"}

Doc = dict[str, Any]


def load_documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render(folder: Path) -> list[Doc]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise ValueError(f"{folder}: this renderer does not know {sorted(unknown)}")
    assert kustomization["kind"] == "Kustomization"
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        docs += render(path) if path.is_dir() else load_documents(path)
    docs = copy.deepcopy(docs)
    namespace = kustomization.get("namespace")
    for doc in docs:
        if namespace and doc["kind"] not in CLUSTER_SCOPED:
            doc.setdefault("metadata", {})["namespace"] = namespace
        for image in kustomization.get("images", []):
            _set_image(doc, image)
    return docs


def _set_image(doc: Doc, image: dict[str, str]) -> None:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = (f"{image.get('newName', name)}:"
                                  f"{image.get('newTag', tag or 'latest')}")
