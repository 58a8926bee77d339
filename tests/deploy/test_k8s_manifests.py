"""deploy/k8s and deploy/kserve: valid objects, wired to each other, safe defaults.

Kubernetes objects are validated offline against the JSON schemas bundled in
`kubernetes-validate` (strict: unknown fields fail). The KServe InferenceService is a CRD with no
bundled schema: it is checked structurally. The ConfigMap's thrifty.yaml, its THRIFTY_* variables
and the KServe upstream snippet in deploy/README.md are loaded by thrifty's own Settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from thrifty.config import Settings

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
NOT_KUBERNETES = {"kustomization.yaml"}  # kustomize's own file, not an API object
SRC = Path(__file__).resolve().parents[2] / "src" / "thrifty"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name not in NOT_KUBERNETES
        for doc in documents(path)
    ]


def by_kind() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_objects()}


@pytest.mark.parametrize(
    "item",
    k8s_objects(),
    ids=lambda item: f"{item[0]}:{item[1]['kind']}/{item[1]['metadata']['name']}",
)
def test_objects_validate_against_kubernetes_schemas(item: tuple[str, dict[str, Any]]) -> None:
    _, doc = item
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_catches_mistakes() -> None:
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_object_file() -> None:
    (kustomization,) = documents(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - NOT_KUBERNETES - {"prometheus-adapter.yaml"}
    assert set(kustomization["resources"]) == files


def test_gateway_deployment() -> None:
    objects = by_kind()
    deployment = objects[("Deployment", "thrifty")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for c in [*pod["containers"], *pod["initContainers"]]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert "0.0.0.0" in container["args"]
    port = container["ports"][0]["containerPort"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(
        port
    )
    # env from the ConfigMap and the Secret that exist here
    refs = container["envFrom"]
    assert ("ConfigMap", refs[0]["configMapRef"]["name"]) in {(k, n) for k, n in objects}
    assert ("Secret", refs[1]["secretRef"]["name"]) in {(k, n) for k, n in objects}
    # the thrifty.yaml volume is the ConfigMap that THRIFTY_CONFIG points into
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = objects[("ConfigMap", "thrifty-env")]["data"]
    config_map = volumes["config"]["configMap"]["name"]
    key = Path(env["THRIFTY_CONFIG"]).name
    assert Path(env["THRIFTY_CONFIG"]).parent == Path(mounts["config"])
    assert key in objects[("ConfigMap", config_map)]["data"]
    assert mounts["data"] == env["THRIFTY_HOME"]


def test_selectors_match_pods() -> None:
    objects = by_kind()
    pods = {
        name: doc["spec"]["template"]["metadata"]["labels"]
        for (kind, name), doc in objects.items()
        if kind == "Deployment"
    }

    def selects(selector: dict[str, str], deployment: str) -> bool:
        return selector.items() <= pods[deployment].items()

    assert selects(objects[("Service", "thrifty")]["spec"]["selector"], "thrifty")
    assert not selects(objects[("Service", "thrifty")]["spec"]["selector"], "thrifty-redis")
    assert selects(objects[("Service", "thrifty-redis")]["spec"]["selector"], "thrifty-redis")
    pdb = objects[("PodDisruptionBudget", "thrifty")]["spec"]["selector"]["matchLabels"]
    assert selects(pdb, "thrifty") and not selects(pdb, "thrifty-redis")
    hpa = objects[("HorizontalPodAutoscaler", "thrifty")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "thrifty"
    assert hpa["minReplicas"] >= 2


def test_redis_urls_name_the_redis_service() -> None:
    objects = by_kind()
    env = objects[("ConfigMap", "thrifty-env")]["data"]
    port = objects[("Service", "thrifty-redis")]["spec"]["ports"][0]["port"]
    for name in ("THRIFTY_CACHE__REDIS_URL", "THRIFTY_LIMITS__REDIS_URL"):
        assert re.fullmatch(rf"redis://thrifty-redis:{port}/\d+", env[name])


def test_secret_is_a_template() -> None:
    secret = by_kind()[("Secret", "thrifty-secrets")]
    assert all(value == "" for value in secret["stringData"].values())
    assert "data" not in secret


def test_config_map_is_a_valid_thrifty_config(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = by_kind()
    config = yaml.safe_load(objects[("ConfigMap", "thrifty-config")]["data"]["thrifty.yaml"])
    env = objects[("ConfigMap", "thrifty-env")]["data"]
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    for name, value in env.items():
        if name != "THRIFTY_CONFIG":
            monkeypatch.setenv(name, value)
    settings = Settings(**config)
    assert settings.cache.redis_url == env["THRIFTY_CACHE__REDIS_URL"]
    assert settings.limits.redis_url == env["THRIFTY_LIMITS__REDIS_URL"]
    assert str(settings.home) == "/data"


def test_kserve_inference_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    (isvc,) = documents(DEPLOY / "kserve" / "vllm.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", isvc["metadata"]["name"])
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"].startswith("vllm/vllm-openai:")
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    assert args["model"] == "/mnt/models"
    assert container["ports"][0]["containerPort"] == int(args["port"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"].startswith("pvc://")  # no model hub at run time
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # the container part is a plain Kubernetes container: validate it as one, in a Pod
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "check"},
        "spec": {"containers": [container]},
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)

    # the README's upstream snippet points at the predictor's Service and loads as Settings
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## KServe", 1)[1]
    snippet = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    settings = Settings(local={"enabled": False}, **snippet)
    (upstream,) = settings.upstreams
    name = isvc["metadata"]["name"]
    assert upstream.base_url.startswith(f"http://{name}-predictor.")
    assert upstream.base_url.endswith("/v1")
    assert set(upstream.models.values()) == {args["served-model-name"]}
