"""infra/k8s: every object valid offline, and the objects agree with each other.

No cluster runs here. Core objects are validated with kubernetes-validate
(Kubernetes' own JSON schemas, bundled in the package, strict: unknown fields
fail) at two Kubernetes versions; KEDA's ScaledObject and the Prometheus
Operator's ServiceMonitor against the schemas in infra/k8s/schemas (their HPA
behavior against Kubernetes' HorizontalPodAutoscaler schema). Then the
cross-references: names of ConfigMaps, Secrets and their keys, ports and
probes, labels and selectors, KEDA's target and partition cap, settings.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pipeline.cli import SUBCOMMANDS
from pipeline.settings import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
SCHEMAS = K8S / "schemas"
# The oldest Kubernetes minor still commonly supported, and the newest the
# bundled schemas know.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CUSTOM = {
    "ScaledObject": "keda-scaledobject.schema.json",
    "ServiceMonitor": "servicemonitor.schema.json",
}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def load_all(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert docs, path
    return docs


def kustomize_resources(directory: Path) -> Iterator[Path]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    for res in k.get("resources", []):
        yield directory / res


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(k, dict)
    return k


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k infra/k8s` creates, plus the optional component."""
    out: list[dict[str, Any]] = []
    for path in kustomize_resources(K8S):
        out += load_all(path)
    for path in kustomize_resources(K8S / "components" / "servicemonitor"):
        out += load_all(path)
    return out


@pytest.fixture(scope="module")
def secrets() -> dict[str, dict[str, Any]]:
    return {s["metadata"]["name"]: s for s in load_all(K8S / "secrets.example.yaml")}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in {"Deployment", "Job"}:
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def container_env(container: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    """The container's environment: envFrom ConfigMaps, then env (which wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "only ConfigMaps are expected in envFrom"
        env.update(config)
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']}: plain values only (secrets are files)"
        env[item["name"]] = str(item["value"])
    return env


@pytest.fixture(scope="module")
def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    data = find(objects, "ConfigMap", "access-watch-config")["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    return {str(k): str(v) for k, v in data.items()}


# -- schema validation -----------------------------------------------------


def test_kustomization_lists_existing_files_and_no_secret(kustomization: dict[str, Any]) -> None:
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert "namespace" not in kustomization  # namespace-agnostic: kubectl -n / an overlay
    for path in kustomize_resources(K8S):
        assert path.is_file(), path
        assert all(d["kind"] != "Secret" for d in load_all(path)), f"{path}: no Secrets in git"
    listed = {p.name for p in kustomize_resources(K8S)}
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert listed == on_disk, "every manifest is listed (and only those)"
    component = yaml.safe_load(
        (K8S / "components" / "servicemonitor" / "kustomization.yaml").read_text(encoding="utf-8")
    )
    assert component["kind"] == "Component"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_match_the_kubernetes_schemas(
    objects: list[dict[str, Any]], secrets: dict[str, dict[str, Any]], version: str
) -> None:
    core = [o for o in objects if o["kind"] not in CUSTOM] + list(secrets.values())
    assert {o["kind"] for o in core} >= {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Job",
        "Ingress",
        "NetworkPolicy",
        "Secret",
    }
    for obj in core:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {version}: {exc.message}")


def test_schema_validation_catches_mistakes(objects: list[dict[str, Any]]) -> None:
    bad = json.loads(json.dumps(find(objects, "Deployment", "access-watch-worker")))
    bad["spec"]["template"]["spec"]["containers"][0]["startupprobe"] = {}  # typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
    scaled = json.loads(json.dumps(find(objects, "ScaledObject", "access-watch-worker")))
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    schema = json.loads((SCHEMAS / CUSTOM["ScaledObject"]).read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, schema)


def test_custom_resources_match_their_schemas(objects: list[dict[str, Any]]) -> None:
    for kind, schema_file in CUSTOM.items():
        schema = json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        found = [o for o in objects if o["kind"] == kind]
        assert found, kind
        for obj in found:
            jsonschema.validate(obj, schema, cls=jsonschema.Draft202012Validator)
    # KEDA hands the behavior to the HorizontalPodAutoscaler it creates.
    scaled = find(objects, "ScaledObject", "access-watch-worker")
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-access-watch-worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "minReplicas": scaled["spec"]["minReplicaCount"],
            "maxReplicas": scaled["spec"]["maxReplicaCount"],
            "behavior": scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(hpa, version, strict=True)


# -- cross-references ------------------------------------------------------


def test_configmaps_and_secrets_referenced_exist_with_their_keys(
    objects: list[dict[str, Any]], secrets: dict[str, dict[str, Any]]
) -> None:
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    used_secrets: set[str] = set()
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps, where
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                used_secrets.add(name)
                assert name in secrets, f"{where}: Secret {name} is not in secrets.example.yaml"
                keys = set(secrets[name]["stringData"])
                for item in volume["secret"]["items"]:
                    assert item["key"] in keys, f"{where}: {name} has no key {item['key']}"
    assert used_secrets == set(secrets), "secrets.example.yaml holds exactly the Secrets used"


def _file_env(
    spec: dict[str, Any], container: dict[str, Any], config: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(settings env without *_FILE, {var: file path}) of a container."""
    env = container_env(container, config)
    files = {k: v for k, v in env.items() if k.endswith("_FILE")}
    plain = {k: v for k, v in env.items() if not k.endswith("_FILE")}
    return plain, files


def test_every_variable_is_a_setting_and_the_values_parse(
    objects: list[dict[str, Any]], config: dict[str, str]
) -> None:
    fields = {f"PIPELINE_{name.upper()}" for name in Settings.model_fields}
    file_vars = {f"PIPELINE_{name.upper()}_FILE" for name in SECRET_FIELDS}
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            plain, files = _file_env(spec, container, config)
            for var in plain:
                assert var in fields, f"{where}: {var} is not a setting"
            for var in files:
                assert var in file_vars, f"{where}: {var} is not a secret's _FILE variable"
                assert var.removesuffix("_FILE") not in plain, f"{where}: {var} and its twin"
            Settings.from_env(plain)  # raises SettingsError naming a bad value


def test_secret_files_are_mounted_where_the_variables_point(
    objects: list[dict[str, Any]], config: dict[str, str]
) -> None:
    for where, spec in pod_specs(objects):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            mounted: set[PurePosixPath] = set()
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "secret" in volume:
                    assert mount.get("readOnly") is True, where
                    base = PurePosixPath(mount["mountPath"])
                    mounted |= {base / item["path"] for item in volume["secret"]["items"]}
            _, files = _file_env(spec, container, config)
            assert files, f"{where}: secrets come as files"
            for var, path in files.items():
                assert PurePosixPath(path) in mounted, f"{where}: {var}={path} is not mounted"


def test_worker_probes_ports_and_bind(
    objects: list[dict[str, Any]], config: dict[str, str]
) -> None:
    deployment = find(objects, "Deployment", "access-watch-worker")
    spec = deployment["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    env = container_env(worker, config)
    assert worker["command"] == ["pipeline", "worker"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports == {"http": int(env["PIPELINE_WEB_PORT"])} == {"http": 6066}
    assert env["PIPELINE_WEB_BIND"] == "0.0.0.0"
    probes = {k: worker[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    for name, probe in probes.items():
        want = "/live" if name == "livenessProbe" else "/health"
        assert probe["httpGet"]["path"] == want, name
        port = probe["httpGet"]["port"]
        assert port in ports or port in ports.values(), name  # the container's named port
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60, "bootstrap time"
    live = probes["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 120, "rides out a rebalance"
    ready = probes["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 60, "leaves rotation quickly"
    # HPA/KEDA owns the replica count; an apply must not reset it.
    assert "replicas" not in deployment["spec"]


def test_pods_run_as_the_image_user_with_a_read_only_root(
    objects: list[dict[str, Any]], config: dict[str, str]
) -> None:
    found = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert found is not None
    uid = int(found.group(1))
    for where, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsUser"] == uid, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec.get("automountServiceAccountToken") is False, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "memory" in container["resources"]["limits"], where
            writable = {
                m["mountPath"]: volumes[m["name"]]
                for m in container.get("volumeMounts", [])
                if not m.get("readOnly")
            }
            assert "/tmp" in writable and "emptyDir" in writable["/tmp"], where
            env = container_env(container, config)
            if container["name"] == "worker":
                assert "emptyDir" in writable[env["PIPELINE_DATA_DIR"]], "state dir is an emptyDir"


def test_images_are_the_project_image_at_its_version(
    objects: list[dict[str, Any]], kustomization: dict[str, Any]
) -> None:
    (image,) = kustomization["images"]
    assert image["newTag"] == PROJECT["version"]
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            assert container["image"] == image["name"], where


def test_commands_are_pipeline_subcommands(objects: list[dict[str, Any]]) -> None:
    commands = {
        where: c["command"] for where, spec in pod_specs(objects) for c in spec["containers"]
    }
    assert commands == {
        "Deployment/access-watch-worker": ["pipeline", "worker"],
        "Deployment/access-watch-console": ["pipeline", "console"],
        "Job/access-watch-migrate": ["pipeline", "migrate"],
    }
    assert {"worker", "migrate"} <= set(SUBCOMMANDS)
    # `pipeline console` is the console's subcommand (its own branch adds it to the CLI).


def test_migrate_job_uses_the_owner_dsn(
    objects: list[dict[str, Any]], config: dict[str, str]
) -> None:
    job = find(objects, "Job", "access-watch-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = container_env(container, config)
    assert "PIPELINE_MIGRATE_DATABASE_URL_FILE" in env
    assert "PIPELINE_DATABASE_URL_FILE" not in env
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # re-created on the next apply
    # Workers cannot create tables; they leave it to the Job.
    assert config["PIPELINE_MIGRATE_ON_START"] == "false"


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_labels_and_selectors_agree(objects: list[dict[str, Any]]) -> None:
    templates = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] == "Deployment"
    }
    for o in objects:
        if o["kind"] == "Deployment":
            assert _matches(o["spec"]["selector"]["matchLabels"], templates[o["metadata"]["name"]])
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    for name, target in (
        ("access-watch-worker", "access-watch-worker"),
        ("access-watch-console", "access-watch-console"),
    ):
        service = services[name]
        selected = [
            d for d, labels in templates.items() if _matches(service["spec"]["selector"], labels)
        ]
        assert selected == [target], name
        deployment = find(objects, "Deployment", target)
        port_names = {
            p["name"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, name
    pdb = find(objects, "PodDisruptionBudget", "access-watch-worker")
    assert [
        d
        for d, labels in templates.items()
        if _matches(pdb["spec"]["selector"]["matchLabels"], labels)
    ] == ["access-watch-worker"]
    monitor = find(objects, "ServiceMonitor", "access-watch-worker")
    scraped = [
        n
        for n, s in services.items()
        if _matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert scraped == ["access-watch-worker"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in services["access-watch-worker"]["spec"]["ports"]
    }
    # The alert rules and the dashboard select job="access-watch-worker": the Service's name.
    assert 'job="access-watch-worker"' in (ROOT / "infra/prometheus/alerts.yml").read_text()
    policy = find(objects, "NetworkPolicy", "access-watch-console")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], templates["access-watch-console"])
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} == {8080}
    ingress = find(objects, "Ingress", "access-watch-console")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] in services
            assert backend["port"]["name"] in {
                p["name"] for p in services[backend["name"]]["spec"]["ports"]
            }


def test_keda_scales_the_worker_on_its_group_lag_up_to_the_partitions(
    objects: list[dict[str, Any]], config: dict[str, str]
) -> None:
    scaled = find(objects, "ScaledObject", "access-watch-worker")["spec"]
    deployment = find(objects, "Deployment", "access-watch-worker")
    assert scaled["scaleTargetRef"]["kind"] == "Deployment"
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    source = containers[scaled["scaleTargetRef"]["envSourceContainerName"]]
    env = container_env(source, config)
    settings = Settings.from_env({k: v for k, v in env.items() if not k.endswith("_FILE")})
    assert scaled["maxReplicaCount"] == settings.partitions == int(config["PIPELINE_PARTITIONS"])
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert scaled["fallback"]["replicas"] <= scaled["maxReplicaCount"]
    assert "idleReplicaCount" not in scaled  # never to zero
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["topic"] == settings.access_topic
    group = meta.get("consumerGroup") or env[meta["consumerGroupFromEnv"]]
    assert group == settings.app_id  # Faust's consumer group is the app id
    brokers = meta.get("bootstrapServers") or env[meta["bootstrapServersFromEnv"]]
    assert brokers == settings.kafka_bootstrap
    assert meta.get("allowIdleConsumers", "false") == "false"
    assert meta["offsetResetPolicy"] == "earliest"  # as the worker's consumers start
    # The PDB leaves all but one worker up, whatever KEDA chose.
    pdb = find(objects, "PodDisruptionBudget", "access-watch-worker")
    assert pdb["spec"]["maxUnavailable"] == 1
