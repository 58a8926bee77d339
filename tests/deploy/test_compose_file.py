"""deploy/compose.yaml, deploy/Dockerfile and deploy/prometheus/prometheus.yml, checked offline.

Docker cannot run here, so these are static checks: the services and how they are wired, the
images and build, and that every THRIFTY_* variable set anywhere in the deployment names a real
settings field (or a variable the code reads by name), so a typo cannot silently do nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from thrifty.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SRC = ROOT / "src" / "thrifty"
GATEWAYS = ("thrifty-1", "thrifty-2")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def settings_field(env_name: str) -> bool:
    """Whether THRIFTY_A__B__C names a Settings field (a.b.c), as pydantic-settings reads it."""
    path = env_name.removeprefix("THRIFTY_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i == len(path) - 1:
            return True
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        model = annotation
    return False


def read_by_name(env_name: str) -> bool:
    """A THRIFTY_* variable that is not a setting but that the code or the build script reads."""
    if any(f'"{env_name}"' in p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")):
        return True
    script = (ROOT / "scripts" / "build-llama-server.sh").read_text(encoding="utf-8")
    return "${" + env_name + ":" in script


def check_env_name(name: str) -> None:
    if name.startswith("THRIFTY_"):
        assert settings_field(name) or read_by_name(name), f"{name} is read by nothing"


def test_settings_field_lookup() -> None:
    assert settings_field("THRIFTY_CACHE__REDIS_URL")
    assert settings_field("THRIFTY_HOME")
    assert not settings_field("THRIFTY_CACHE__REDIS")
    assert not settings_field("THRIFTY_CACHE_REDIS_URL")
    assert not settings_field("THRIFTY_HOME__X")


def test_services_and_wiring() -> None:
    services = compose()["services"]
    assert set(services) >= {*GATEWAYS, "postgres", "redis", "prometheus", "grafana", "keys"}
    for name in GATEWAYS:
        gateway = services[name]
        assert gateway["image"].startswith("thrifty:")
        assert gateway["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()
        env = gateway["environment"]
        assert env["THRIFTY_CACHE__REDIS_URL"].startswith("redis://redis:")
        assert env["THRIFTY_LIMITS__REDIS_URL"].startswith("redis://redis:")
        assert "0.0.0.0" in " ".join(gateway["command"])
        assert gateway["depends_on"]["keys"]["condition"] == "service_completed_successfully"
        assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert env["THRIFTY_DATABASE_URL"].startswith("postgresql://thrifty:")
        assert "@postgres:5432/thrifty" in env["THRIFTY_DATABASE_URL"]
    # one store for both (and for the key-making one-shot); each replica its own spool volume
    assert services["keys"]["environment"]["THRIFTY_DATABASE_URL"] == env["THRIFTY_DATABASE_URL"]
    data = [[v for v in services[n]["volumes"] if v.endswith(":/data")] for n in GATEWAYS]
    assert data[0] != data[1]
    assert "thrifty keys create" in " ".join(services["keys"]["command"])
    assert "healthcheck" in services["redis"] and "healthcheck" in services["postgres"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "thrifty"
    for service in services.values():
        assert "image" in service
    named = set(compose()["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
            else:
                assert source in named, source


def test_every_thrifty_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    names: set[str] = set()
    for service in compose()["services"].values():
        names.update(service.get("environment") or {})
    names.update(re.findall(r"\b(THRIFTY_[A-Z0-9_]+)=", (DEPLOY / "Dockerfile").read_text()))
    for path in (DEPLOY / "k8s").glob("*.yaml"):
        names.update(re.findall(r"\b(THRIFTY_[A-Z0-9_]+)\b", path.read_text(encoding="utf-8")))
    assert {"THRIFTY_HOME", "THRIFTY_CACHE__REDIS_URL", "THRIFTY_LIMITS__REDIS_URL"} <= names
    for name in sorted(names):
        check_env_name(name)
    # and the gateway environment loads as settings
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    for name, value in compose()["services"]["thrifty-1"]["environment"].items():
        if name.startswith("THRIFTY_"):
            monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert settings.cache.redis_url == "redis://redis:6379/0"
    assert settings.limits.redis_url == "redis://redis:6379/1"


def test_typo_in_a_variable_is_caught() -> None:
    with pytest.raises(AssertionError):
        check_env_name("THRIFTY_CACHE__REDIS_URI")


def test_prometheus_scrapes_both_replicas_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (rules,) = config["rule_files"]
    assert (DEPLOY / "prometheus" / rules).is_file()
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "thrifty")
    assert job["metrics_path"] == "/metrics"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:8000" for name in GATEWAYS}
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./prometheus/prometheus.yml:") for m in mounts)
    assert any(m.startswith(f"./prometheus/{rules}:") for m in mounts)


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    data = compose()
    grafana = data["services"]["grafana"]
    configs = {c["source"]: c["target"] for c in grafana["configs"]}
    datasource = yaml.safe_load(data["configs"]["grafana-datasource"]["content"])
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert datasource["datasources"][0]["uid"] == "prometheus"
    providers = yaml.safe_load(data["configs"]["grafana-dashboards"]["content"])
    folder = providers["providers"][0]["options"]["path"]
    mount = next(v for v in grafana["volumes"] if v.startswith("./grafana/thrifty.json:"))
    assert Path(mount.split(":")[1]).parent == Path(folder)
    assert all(t.startswith("/etc/grafana/provisioning/") for t in configs.values())


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    build, runtime = re.split(r"^FROM .* AS runtime$", text, flags=re.M)
    assert "scripts/build-llama-server.sh" in build
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER (?!0\b|root\b)\S+", runtime, re.M)
    assert "THRIFTY_HOME=/data" in runtime
    assert re.search(r"^EXPOSE 8000$", runtime, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", runtime, re.M)
    assert 'CMD ["thrifty", "serve", "--host", "0.0.0.0"]' in runtime
    # every path the build copies exists in the repository
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), source


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


@needs_promtool
def test_promtool_accepts_the_prometheus_config() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "config", "prometheus.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, Grafana's variables filled in, parses as a recording rule's expr."""
    assert PROMTOOL is not None
    dashboard = json.loads((DEPLOY / "grafana" / "thrifty.json").read_text(encoding="utf-8"))
    grafana_vars = {"$__rate_interval": "5m", "$__range": "1h", "$instance": ".*"}
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in grafana_vars.items():
                expr = expr.replace(var, value)
            rules.append({"record": f"dashboard:panel{panel['id']}{target['refId']}", "expr": expr})
    assert len(rules) >= 20
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
