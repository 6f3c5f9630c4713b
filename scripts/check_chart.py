#!/usr/bin/env python3
"""Renders charts/troupe with Helm (v4, through helm-python-sdk: no helm binary needed) under
several sets of values, and validates every manifest as a Kubernetes object against the
bundled OpenAPI schemas of kubernetes-validate (strict: unknown fields are errors). Also checks
what the chart promises: APP and WORKER roles, a volume for the workers' sled, the two secrets,
and an environment variable for every AP_* setting Troupe reads.

Usage: check_chart.py <chart dir> <store/src/config.rs>"""

import re
import sys

import kubernetes_validate
import yaml
from helm_python import Chart

K8S_VERSION = "1.31.0"
# Custom resources kubernetes-validate has no schema for, with the fields we check by hand.
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector.matchLabels", "spec.endpoints"]}

VALUE_SETS = {
    "defaults": {},
    "external NATS, existing secret, no volumes": {
        "nats": {"enabled": False},
        "natsUrl": "nats://nats.example:4222",
        "existingSecret": "my-troupe-keys",
        "worker": {"persistence": {"enabled": False}},
    },
    "everything on": {
        "app": {
            "autoscaling": {"enabled": True},
            "ingress": {"enabled": True, "className": "nginx", "tls": [{"hosts": ["troupe.example.com"], "secretName": "t"}]},
            "tls": {"secretName": "troupe-tls"},
            "podAnnotations": {"a": "b"},
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "secrets": {"apiKey": "sk-given", "encryptionKey": "ab" * 32},
        "config": {"frontendUrl": "https://troupe.example.com", "extraEnv": {"EXTRA": "1"}},
    },
}


def dig(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def manifests(rendered):
    """The rendered chart's manifests, as (template path, object), NOTES.txt left out."""
    return [
        (path, doc)
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def problems(path, obj):
    """What is wrong with one rendered manifest: the fields a CRD needs, or the Kubernetes
    schema's complaint (strict)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRDS:
        return [f"{path}: {key[1]} lacks {field}" for field in CRDS[key] if not dig(obj, field)]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{path}: {obj.get('kind')} {dig(obj, 'metadata.name')}: {e.message} at {list(e.path)}"]
    except Exception as e:  # a kind without a schema, a malformed object
        return [f"{path}: {obj.get('kind')}: {e}"]
    return []


def settings_read_by_troupe(config_rs):
    names = set(re.findall(r'"(AP_[A-Z_]+)"', open(config_rs).read()))
    # Activepieces' names read as alternatives to settings the chart sets under Troupe's
    aliases = {"AP_SANDBOX_MEMORY_LIMIT", "AP_DEFAULT_CONCURRENT_JOBS_LIMIT", "AP_WORKER_CONCURRENCY",
               "AP_FLOW_WORKER_CONCURRENCY"}
    return names - aliases


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check(name, values, chart, ap_settings):
    errors = []
    rendered = chart.render(values, name="rel", namespace="troupe")
    objects = manifests(rendered)
    for path, obj in objects:
        errors.extend(problems(path, obj))
    kinds = {(o["kind"], o["metadata"]["name"]): o for _, o in objects}
    app = kinds.get(("Deployment", "rel-troupe-app"))
    worker = kinds.get(("StatefulSet", "rel-troupe-worker"))
    if not app or not worker:
        errors.append(f"missing the APP Deployment or the WORKER StatefulSet: {sorted(kinds)}")
        return errors, len(objects)
    for obj, role in [(app, "APP"), (worker, "WORKER")]:
        env = env_of(obj["spec"]["template"]["spec"]["containers"][0])
        if env.get("AP_CONTAINER_TYPE", {}).get("value") != role:
            errors.append(f"{obj['kind']} does not run as {role}")
        for secret in ["AP_API_KEY", "AP_ENCRYPTION_KEY"]:
            if "secretKeyRef" not in env.get(secret, {}).get("valueFrom", {}):
                errors.append(f"{obj['kind']}: {secret} does not come from a Secret")
        missing = sorted(ap_settings - set(env) - {"AP_TLS_CERT", "AP_TLS_KEY"})
        if missing:
            errors.append(f"{obj['kind']}: no value for {missing}")
    if values.get("worker", {}).get("persistence", {}).get("enabled", True):
        if not worker["spec"].get("volumeClaimTemplates"):
            errors.append("workers have no volume for sled")
    if not values.get("existingSecret") and ("Secret", "rel-troupe-secrets") not in kinds:
        errors.append("no Secret with AP_API_KEY and AP_ENCRYPTION_KEY")
    if values.get("app", {}).get("tls", {}).get("secretName"):
        env = env_of(app["spec"]["template"]["spec"]["containers"][0])
        if "AP_TLS_CERT" not in env or "AP_TLS_KEY" not in env:
            errors.append("TLS secret given but AP_TLS_CERT/AP_TLS_KEY not set")
    if values.get("serviceMonitor", {}).get("enabled") and not any(k[0] == "ServiceMonitor" for k in kinds):
        errors.append("serviceMonitor.enabled but no ServiceMonitor")
    return errors, len(objects)


def main():
    chart_dir, config_rs = sys.argv[1], sys.argv[2]
    chart = Chart.load(chart_dir)
    ap_settings = settings_read_by_troupe(config_rs)
    failed = False
    for name, values in VALUE_SETS.items():
        errors, n = check(name, values, chart, ap_settings)
        print(f"{name}: {n} objects, {len(errors)} problems")
        for e in errors:
            print(f"  {e}")
        failed |= bool(errors)
    # values that must be refused
    try:
        chart.render({"nats": {"enabled": False}}, name="rel", namespace="troupe")
        print("nats.enabled=false without natsUrl rendered; it must be refused")
        failed = True
    except Exception as e:
        print(f"refused as expected: {str(e).splitlines()[0][:120]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
