"""deploy/kubernetes/: every manifest validates, offline, against the Kubernetes API schemas
(kubernetes-validate bundles them; strict: no unknown field), the Prometheus Operator objects
against that operator's CRD models (cloudcoil-models-prometheus-operator, generated from its
CRDs' schemas), the PrometheusRule is the shipped alert rules, and the pieces agree with each
other and with the Containerfile."""

from __future__ import annotations

import copy
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tagwatch.config import load_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "kubernetes"
RULES = REPO / "tagwatch" / "ops" / "prometheus" / "tagwatch-alerts.yml"
CONTAINERFILE = REPO / "Containerfile"
# The oldest Kubernetes release still supported upstream when this was written, and the newest
# the package knows.
VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            out.append((path.name, doc))
    return out


def by_kind(kind: str) -> dict[str, Any]:
    [doc] = [d for _, d in documents() if d["kind"] == kind]
    return doc


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection can be opened: the schemas must come from the package itself."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("version", VERSIONS)
def test_core_objects_validate_against_the_kubernetes_schemas(version: str,
                                                              offline: None) -> None:
    checked = []
    for name, doc in documents():
        if doc["kind"] in OPERATOR_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(f"{name}:{doc['kind']}")
    assert sorted(checked) == [
        "configmap.yaml:ConfigMap", "deployment.yaml:Deployment",
        "namespace.yaml:Namespace", "persistentvolumeclaim.yaml:PersistentVolumeClaim",
        "rbac.yaml:ClusterRole", "rbac.yaml:ClusterRoleBinding",
        "secret.example.yaml:Secret", "service.yaml:Service",
        "serviceaccount.yaml:ServiceAccount"]


def test_validation_can_fail(offline: None) -> None:
    """The check above is real: a wrong type or an unknown field is refused."""
    deployment = by_kind("Deployment")
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9479"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, VERSIONS[-1], strict=True)
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, VERSIONS[-1], strict=True)


def _operator_model(kind: str) -> Any:
    from cloudcoil.models.prometheus_operator import v1

    return getattr(v1, kind)


@pytest.mark.parametrize("kind", sorted(OPERATOR_KINDS))
def test_operator_objects_validate_against_the_crd_models(kind: str, offline: None) -> None:
    doc = by_kind(kind)
    model = _operator_model(kind).model_validate(doc)
    # Strict: the models ignore unknown fields, so a field that does not survive the round
    # trip is one the CRD does not have.
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped == doc


def test_crd_model_check_can_fail() -> None:
    from pydantic import ValidationError

    doc = copy.deepcopy(by_kind("ServiceMonitor"))
    doc["spec"]["endpoints"][0]["interval"] = "one minute"
    with pytest.raises(ValidationError):
        _operator_model("ServiceMonitor").model_validate(doc)
    doc = copy.deepcopy(by_kind("ServiceMonitor"))
    doc["spec"]["endpoints"][0]["scrapeIntervall"] = "60s"
    dumped = _operator_model("ServiceMonitor").model_validate(doc).model_dump(
        by_alias=True, exclude_none=True, mode="json")
    assert dumped != doc


def test_prometheusrule_is_the_shipped_alert_rules() -> None:
    done = subprocess.run([sys.executable, str(DEPLOY / "build_prometheusrule.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rule = by_kind("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"secret.example.yaml"}
    assert kustomization["namespace"] == "tagwatch"
    assert {d["metadata"].get("namespace", "tagwatch") for _, d in documents()
            if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")} == {"tagwatch"}


def test_the_configmap_is_a_valid_configuration(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(by_kind("ConfigMap")["data"]["config.toml"])
    loaded = load_config(config, env={"STATE_DIRECTORY": "/var/lib/tagwatch"})
    [source] = loaded.sources
    assert source.kubernetes is not None and source.kubernetes.kubeconfig is None
    assert loaded.metrics_listen == ":9479"
    assert loaded.settings.database == "/var/lib/tagwatch/tagwatch.db"


def test_deployment_agrees_with_the_image_and_the_rbac() -> None:
    text = CONTAINERFILE.read_text()
    uid = re.search(r"useradd .*--uid (\d+)", text, re.S)
    assert uid is not None
    volume = re.search(r'VOLUME \["([^"]+)"\]', text)
    assert volume is not None
    assert "TAGWATCH_CONFIG=/etc/tagwatch/config.toml" in text
    assert 'HEALTHCHECK' in text and '"tagwatch", "healthcheck"' in text

    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/etc/tagwatch": "config", volume.group(1): "state", "/tmp": "tmp"}
    assert container["livenessProbe"]["exec"]["command"][:2] == ["tagwatch", "healthcheck"]
    assert by_kind("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert by_kind("Deployment")["spec"]["replicas"] == 1

    assert pod["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]
    role = by_kind("ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "list"]}]
    [subject] = by_kind("ClusterRoleBinding")["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                       "namespace": "tagwatch"}
    port = container["ports"][0]
    [service_port] = by_kind("Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert by_kind("ServiceMonitor")["spec"]["endpoints"][0]["port"] == service_port["name"]
