"""The production deployment (deploy/docker, deploy/compose, deploy/k8s) cannot run here,
so it is checked statically: each file by the linter or schema its format has, and
the parts that tie them together (mounted files, setting names, secrets, ports) by hand.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARDS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "catalogflow.yml"
BIN = Path(sys.executable).parent
#: Variables catalogflow reads that are not settings fields.
EXTRA_VARIABLES = {f"{ENV_PREFIX}CONFIG", Settings().api_token_env}
#: Environment keys that hold secrets: their values never appear in a committed file.
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|SIGNING|READ_MODEL_URL")
#: A value taken from the environment at deploy time (compose interpolation), or empty.
INTERPOLATED = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$|^$")
SETTING_NAMES = {f"{ENV_PREFIX}{f.name.upper()}" for f in dataclasses.fields(Settings)}


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in documents(path):
                yield path, doc


def kind(name: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == name]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = spec["containers"]
    return found


# ---- the Dockerfile -------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = run(BIN / "hadolint", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    result = run(BIN / "hadolint", bad)
    assert result.returncode != 0 and "DL3006" in result.stdout


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_runs_catalogflow_as_a_non_root_user() -> None:
    steps = instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("ENTRYPOINT", '["catalogflow"]') in steps
    assert ("CMD", '["worker"]') in steps


def test_image_copies_every_package_folder() -> None:
    """A package folder left out of the COPY lines would break `pip wheel .` in the build."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = {
        arg.split()[0]
        for op, arg in instructions()
        if op == "COPY" and not arg.startswith("--from")
    }
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    missing = {f for f in folders if not any(f == c or f.startswith(f"{c}/") for c in copied)}
    assert not missing, f"Dockerfile does not copy {sorted(missing)}"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not (copied & ignored), f".dockerignore hides {sorted(copied & ignored)}"


def test_image_environment_names_real_settings() -> None:
    for op, arg in instructions():
        if op == "ENV":
            for name in re.findall(r"(CATALOGFLOW_[A-Z0-9_]+)=", arg):
                assert name in SETTING_NAMES, f"Dockerfile sets {name}, which is no setting"


# ---- docker compose -------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    result = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_catches_a_wrong_key(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("hostname: worker-0", "hostnme: worker-0"))
    result = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", bad)
    assert result.returncode != 0 and "hostnme" in result.stdout


def test_compose_stack_has_every_part() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name, command in {
        "worker-0": "worker",
        "worker-1": "worker",
        "projector": "projector",
        "api": "api",
        "topics": "topics",
    }.items():
        assert services[name]["command"] == [command], name
    for worker in ("worker-0", "worker-1"):
        assert services[worker]["environment"]["CATALOGFLOW_WORKER_ID"] == worker
    for name in ("worker-0", "projector", "api"):
        url = services[name]["environment"]["CATALOGFLOW_READ_MODEL_URL"]
        assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE.parent / source).resolve(), target))
    return mounts


def test_compose_mounts_and_builds_files_that_exist() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert source.exists(), f"service {name} mounts {source}, which does not exist"
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_prometheus_in_compose_reads_the_rules_next_to_its_config() -> None:
    mounts = {target: source for source, target in bind_mounts(compose()["services"]["prometheus"])}
    config_target = "/etc/prometheus/prometheus.yml"
    assert mounts[config_target] == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for rule_file in config["rule_files"]:
        target = str(Path(config_target).parent / rule_file)
        assert target in mounts and mounts[target].exists(), f"{rule_file} is not mounted"


def test_prometheus_scrapes_every_catalogflow_service_on_its_port() -> None:
    services = compose()["services"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    defaults = Settings()
    expected = {
        f"worker-0:{defaults.web_port}",
        f"worker-1:{defaults.web_port}",
        f"projector:{defaults.projector_port}",
        f"api:{defaults.api_port}",
    }
    assert targets == expected
    assert {t.split(":")[0] for t in targets} <= set(services)


def test_grafana_in_compose_loads_the_provisioned_dashboards() -> None:
    mounts = {target: source for source, target in bind_mounts(compose()["services"]["grafana"])}
    provider = yaml.safe_load(GRAFANA_DASHBOARDS.read_text())["providers"][0]
    dashboards = mounts[provider["options"]["path"]]
    assert list(dashboards.glob("*.json")), "no dashboard JSON where the provider looks"
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_DASHBOARDS.parents[1]


def compose_environments() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in compose()["services"].items():
        yield name, service.get("environment", {})


def test_compose_environment_names_real_settings_and_holds_no_secret() -> None:
    for name, environment in compose_environments():
        for key, value in environment.items():
            if key.startswith(ENV_PREFIX):
                assert key in SETTING_NAMES | EXTRA_VARIABLES, f"{name}: {key} is no setting"
            if SECRET_KEY.search(key) and key != "CATALOGFLOW_READ_MODEL_URL":
                assert INTERPOLATED.match(str(value)), f"{name}: {key} has a literal value"
            if key == "CATALOGFLOW_READ_MODEL_URL":
                password = str(value).split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
                assert INTERPOLATED.match(password), f"{name}: the read-model password is literal"


# ---- Kubernetes -----------------------------------------------------------------------


def test_manifests_pass_kubernetes_validate() -> None:
    files = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    result = run(BIN / "kubernetes-validate", "--strict", "--quiet", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_catches_a_wrong_field(tmp_path: Path) -> None:
    bad = tmp_path / "worker.yaml"
    bad.write_text((K8S / "worker.yaml").read_text().replace("serviceName:", "serviceNme:"))
    result = run(BIN / "kubernetes-validate", "--strict", "--quiet", bad)
    assert result.returncode != 0 and "serviceNme" in result.stdout + result.stderr


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == present


def test_workers_are_a_stateful_set_named_by_pod() -> None:
    (workers,) = kind("StatefulSet")
    (worker,) = containers(workers)
    env = {e["name"]: e for e in worker.get("env", [])}
    assert env["CATALOGFLOW_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    claims = {c["metadata"]["name"] for c in workers["spec"]["volumeClaimTemplates"]}
    data_dir = Settings.load(environ=configmap()).data_dir
    mounts = {m["name"]: Path(m["mountPath"]) for m in worker["volumeMounts"]}
    assert any(name in claims and data_dir.is_relative_to(path) for name, path in mounts.items())
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health/"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/health/ready/"
    grace = workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > Settings.load(environ=configmap()).shutdown_timeout


def test_every_disruption_budget_selects_pods_and_one_guards_the_workers() -> None:
    pods = {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"].items()
        for doc in kind("StatefulSet") + kind("Deployment")
    }
    selectors = [b["spec"]["selector"]["matchLabels"].items() for b in kind("PodDisruptionBudget")]
    assert all(any(s <= labels for labels in pods.values()) for s in selectors)
    (workers,) = kind("StatefulSet")
    assert any(s <= pods[workers["metadata"]["name"]] for s in selectors)


def test_every_container_has_requests_probes_and_runs_as_non_root() -> None:
    for doc in kind("StatefulSet") + kind("Deployment") + kind("Job"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            if doc["kind"] != "Job":
                assert "livenessProbe" in container and "readinessProbe" in container


def configmap() -> dict[str, str]:
    (found,) = kind("ConfigMap")
    data: dict[str, str] = found["data"]
    return data


def test_configmap_is_valid_settings_for_a_real_cluster() -> None:
    settings = Settings.load(environ=configmap())
    assert settings.replication_factor == 3
    assert settings.security_protocol == "SASL_SSL"
    assert set(configmap()) <= SETTING_NAMES


def test_secrets_come_from_the_secret_object_and_none_is_committed() -> None:
    (secret,) = kind("Secret")
    assert secret["metadata"]["name"] == "catalogflow"
    assert all(value == "" for value in secret["stringData"].values())
    for key in secret["stringData"]:
        assert not key.startswith(ENV_PREFIX) or key in SETTING_NAMES, key
    assert not [key for key in configmap() if SECRET_KEY.search(key)], "a secret in the ConfigMap"
    defaults = Settings()
    assert {defaults.llm_api_key_env, defaults.magento_token_env} <= set(secret["stringData"])
    for doc in kind("StatefulSet") + kind("Deployment") + kind("Job"):
        for container in containers(doc):
            sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
            assert sources == {"catalogflow"}, doc["metadata"]["name"]
            kinds = {next(iter(ref)) for ref in container["envFrom"]}
            assert kinds == {"configMapRef", "secretRef"}


@pytest.mark.parametrize("component", ["worker", "projector", "api"])
def test_each_service_reaches_the_metrics_port(component: str) -> None:
    port = {
        "worker": Settings().web_port,
        "projector": Settings().projector_port,
        "api": Settings().api_port,
    }[component]
    services = [
        s
        for s in kind("Service")
        if s["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    (service,) = services
    assert service["spec"]["ports"][0]["port"] == port
