#!/usr/bin/env python3
"""Renders charts/troupe WITH the real NATS subchart (helm-python-sdk, offline, like
check_chart.py) and checks that the NATS authorization wiring is consistent end to end:

  (a) the NATS ConfigMap's nats.conf has an `authorization` block with the users and
      permissions of values.yaml (nats.config.merge.authorization), each password an unquoted
      `$VAR` env reference (the chart's `<< $VAR >>` syntax resolved), never a literal;
  (b) the NATS StatefulSet's `nats` container gets every such $VAR from the Secret that
      templates/nats-auth-secret.yaml makes (same Secret name, a key that Secret has);
  (c) the Troupe APP and WORKER workloads connect to the bundled NATS Service as a user of
      nats.conf, with AP_NATS_PASSWORD from the same Secret key the NATS server reads for
      that user's password;
  (d) every rendered manifest validates with kubernetes-validate (as check_chart.py does).

Usage: check_nats_subchart.py <troupe chart dir> <nats chart dir, or a dir holding nats/>

The nats chart is not fetched here (no network needed): e.g. extract helm/charts/nats of
github.com/nats-io/k8s at a nats-1.3.x tag. Exits 1 on any mismatch."""

import base64
import json
import os
import re
import shutil
import sys
import tempfile

import yaml
from helm_python import Chart

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_chart import K8S_VERSION, dig, env_of, manifests, problems  # noqa: E402

RELEASE, NAMESPACE = "rel", "troupe"
# values on top of the chart's defaults: the bundled NATS with auth (the defaults already, but
# spelled out so that a change of default does not silently skip these checks)
VALUES = {"nats": {"enabled": True}, "natsAuth": {"enabled": True}}
VAR_REF = re.compile(r"^<<\s+\$([A-Za-z_][A-Za-z0-9_]*)\s+>>$")  # what nats.formatConfig unwraps
ENV_MARK = "@@nats-env-ref@@"


def fail(errors):
    print(f"FAILED: {len(errors)} problem(s)")
    for e in errors:
        print(f"  - {e}")
    sys.exit(1)


def nats_chart_dir(path):
    for cand in (path, os.path.join(path, "nats")):
        meta = os.path.join(cand, "Chart.yaml")
        if os.path.isfile(meta) and yaml.safe_load(open(meta)).get("name") == "nats":
            return cand
    sys.exit(f"no nats chart (Chart.yaml with name: nats) in {path} or {path}/nats")


def version_matches(version, constraint):
    """Enough of semver constraints for what Chart.yaml uses here: `1.3.x`, `1.3.*`, exact."""
    want = constraint.strip().lstrip("=v").split(".")
    have = version.split("-")[0].split(".")
    return all(w in ("x", "X", "*") or w == h for w, h in zip(want, have))


def parse_nats_conf(text):
    """nats.conf as written by the nats chart is JSON plus unquoted `$VAR` references and
    units (8MB, 10Gi). Quote those (env refs get a marker) and parse it as JSON."""
    if re.search(r"^\s*include\s", text, re.M):
        raise ValueError("nats.conf has include directives; this checker does not follow them")
    text = re.sub(r'(:\s*|^\s*)\$([A-Za-z_][A-Za-z0-9_]*)(\s*,?\s*)$',
                  lambda m: f'{m.group(1)}"{ENV_MARK}{m.group(2)}"{m.group(3)}', text, flags=re.M)
    text = re.sub(r'(:\s*|^\s*)(\d+(?:\.\d+)?[A-Za-z]+)(\s*,?\s*)$',
                  lambda m: f'{m.group(1)}"{m.group(2)}"{m.group(3)}', text, flags=re.M)
    return json.loads(text)


def env_ref(value):
    return value[len(ENV_MARK):] if isinstance(value, str) and value.startswith(ENV_MARK) else None


def secret_ref(env_entry):
    ref = dig(env_entry or {}, "valueFrom.secretKeyRef")
    return (ref.get("name"), ref.get("key")) if isinstance(ref, dict) else None


def render(troupe_dir, nats_dir, tmp):
    chart_dir = os.path.join(tmp, os.path.basename(os.path.normpath(troupe_dir)))
    shutil.copytree(troupe_dir, chart_dir, ignore=shutil.ignore_patterns("charts"))
    os.makedirs(os.path.join(chart_dir, "charts"))
    shutil.copytree(nats_dir, os.path.join(chart_dir, "charts", "nats"))
    return Chart.load(chart_dir).render(VALUES, name=RELEASE, namespace=NAMESPACE)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    troupe_dir, nats_dir = sys.argv[1], nats_chart_dir(sys.argv[2])
    errors, done = [], []
    troupe_meta = yaml.safe_load(open(os.path.join(troupe_dir, "Chart.yaml")))
    nats_meta = yaml.safe_load(open(os.path.join(nats_dir, "Chart.yaml")))
    values = yaml.safe_load(open(os.path.join(troupe_dir, "values.yaml")))
    dep = next((d for d in troupe_meta.get("dependencies", []) if d["name"] == "nats"), None)
    if not dep:
        fail(["charts/troupe/Chart.yaml has no `nats` dependency"])
    if not version_matches(nats_meta["version"], dep["version"]):
        errors.append(f"nats chart {nats_meta['version']} does not satisfy the dependency "
                      f"constraint {dep['version']!r}")
    print(f"nats chart {nats_meta['version']} (appVersion {nats_meta.get('appVersion')}) "
          f"for dependency {dep['version']!r}")

    with tempfile.TemporaryDirectory(prefix="troupe-nats-") as tmp:
        rendered = render(troupe_dir, nats_dir, tmp)
    objects = manifests(rendered)
    sub = [p for p, _ in objects if "/charts/nats/" in p]
    if not sub:
        fail([f"the nats subchart rendered nothing (templates: {sorted(rendered)})"])
    by_kind = {(o["kind"], o["metadata"]["name"]): (p, o) for p, o in objects}

    # (d) every manifest is a valid Kubernetes object
    invalid = 0
    for path, obj in objects:
        found = problems(path, obj)
        invalid += bool(found)
        errors.extend(found)
    done.append(f"(d) {len(objects)} manifests ({len(sub)} from the nats subchart) validated "
                f"against Kubernetes {K8S_VERSION} (strict): {invalid} invalid")

    # the Secret made by nats-auth-secret.yaml
    secret_name = values["natsAuth"]["secretName"]
    secret = by_kind.get(("Secret", secret_name), (None, None))[1]
    if not secret:
        fail(errors + [f"no Secret {secret_name!r} (natsAuth.secretName) rendered"])
    secret_keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    for k, v in (secret.get("data") or {}).items():
        if not base64.b64decode(v):
            errors.append(f"Secret {secret_name} key {k} is empty")

    # (a) nats.conf authorization == values.yaml's, passwords as env references
    want_users = dig(values, "nats.config.merge.authorization.users") or []
    cm = by_kind.get(("ConfigMap", f"{RELEASE}-nats-config"), (None, None))[1]
    if not cm or "nats.conf" not in (cm.get("data") or {}):
        fail(errors + [f"no ConfigMap {RELEASE}-nats-config with nats.conf"])
    conf_text = cm["data"]["nats.conf"]
    if "<<" in conf_text:
        errors.append("nats.conf still holds a `<< ... >>` the nats chart did not unwrap "
                      "(it needs `<< $VAR >>` with spaces inside)")
    try:
        conf = parse_nats_conf(conf_text)
    except ValueError as e:
        fail(errors + [f"cannot parse the rendered nats.conf: {e}\n{conf_text}"])
    got_users = {u.get("user"): u for u in dig(conf, "authorization.users") or []}
    if not got_users:
        errors.append("nats.conf has no authorization.users (is the merge key `config.merge`?)")
    if not want_users:
        errors.append("values.yaml has no nats.config.merge.authorization.users")
    user_var = {}  # NATS user -> env var holding its password
    for want in want_users:
        name = want.get("user")
        got = got_users.get(name)
        if not got:
            errors.append(f"nats.conf: user {name!r} missing (has {sorted(got_users)})")
            continue
        m = VAR_REF.match(str(want.get("password", "")))
        if not m:
            errors.append(f"values.yaml: user {name}: password {want.get('password')!r} is not "
                          f"`<< $VAR >>`")
        var = env_ref(got.get("password"))
        if not var:
            errors.append(f"nats.conf: user {name}: password is a literal "
                          f"({type(got.get('password')).__name__}), not an unquoted $VAR reference")
        elif m and var != m.group(1):
            errors.append(f"nats.conf: user {name}: password ${var}, values.yaml says ${m.group(1)}")
        else:
            user_var[name] = var
        if got.get("permissions") != want.get("permissions"):
            errors.append(f"nats.conf: user {name}: permissions {got.get('permissions')} != "
                          f"values.yaml {want.get('permissions')}")
    extra = set(got_users) - {u.get("user") for u in want_users}
    if extra:
        errors.append(f"nats.conf: users not in values.yaml: {sorted(extra)}")
    n_perm = sum(1 for u in want_users if u.get("permissions"))
    done.append(f"(a) ConfigMap {RELEASE}-nats-config: authorization.users = "
                f"{sorted(got_users)}, {n_perm} with publish permissions as in values.yaml, "
                f"passwords = " + ", ".join(f"${v}" for v in user_var.values()))

    # (b) the NATS server container reads each $VAR from the Secret
    sts = by_kind.get(("StatefulSet", f"{RELEASE}-nats"), (None, None))[1]
    if not sts:
        fail(errors + [f"no StatefulSet {RELEASE}-nats from the nats subchart"])
    containers = {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}
    nats_env = env_of(containers.get("nats", {}))
    var_source = {}  # env var -> (secret, key)
    for name, var in user_var.items():
        ref = secret_ref(nats_env.get(var))
        if var not in nats_env:
            errors.append(f"StatefulSet {RELEASE}-nats: container nats has no env {var} "
                          f"(user {name}); set nats.container.env.{var}")
        elif not ref:
            errors.append(f"StatefulSet {RELEASE}-nats: env {var} is not a secretKeyRef")
        elif ref[0] != secret_name:
            errors.append(f"StatefulSet {RELEASE}-nats: env {var} reads Secret {ref[0]!r}, "
                          f"the chart makes {secret_name!r} (natsAuth.secretName)")
        elif ref[1] not in secret_keys:
            errors.append(f"StatefulSet {RELEASE}-nats: env {var} reads key {ref[1]!r}, Secret "
                          f"{secret_name} has {sorted(secret_keys)}")
        else:
            var_source[var] = ref
    done.append(f"(b) StatefulSet {RELEASE}-nats, container nats: " + ", ".join(
        f"{v} <- {s}/{k}" for v, (s, k) in var_source.items()))

    # (c) Troupe's workloads: a user of nats.conf, its password from the same Secret key
    nats_url = f"nats://{RELEASE}-nats:{dig(conf, 'port') or 4222}"
    if ("Service", f"{RELEASE}-nats") not in by_kind:
        errors.append(f"no Service {RELEASE}-nats for Troupe's AP_NATS_URL")
    workloads = [(p, o) for p, o in objects if o["kind"] in ("Deployment", "StatefulSet")
                 and "/charts/nats/" not in p]
    seen = []
    for path, obj in workloads:
        for c in obj["spec"]["template"]["spec"]["containers"]:
            env = env_of(c)
            if "AP_NATS_USER" not in env:
                continue
            where = f"{obj['kind']} {obj['metadata']['name']}"
            user = env["AP_NATS_USER"].get("value")
            ref = secret_ref(env.get("AP_NATS_PASSWORD"))
            url = env.get("AP_NATS_URL", {}).get("value")
            if url != nats_url:
                errors.append(f"{where}: AP_NATS_URL {url!r}, the bundled NATS is {nats_url!r}")
            if user not in user_var:
                errors.append(f"{where}: AP_NATS_USER {user!r} is not a user of nats.conf "
                              f"{sorted(got_users)}")
                continue
            if not ref:
                errors.append(f"{where}: AP_NATS_PASSWORD is not a secretKeyRef")
                continue
            server_side = var_source.get(user_var[user])
            if ref != server_side:
                errors.append(f"{where}: AP_NATS_PASSWORD <- {ref[0]}/{ref[1]}, but NATS checks "
                              f"{user}'s password against ${user_var[user]} <- "
                              f"{server_side and '/'.join(server_side)}")
                continue
            seen.append(f"{where} as {user} <- {ref[0]}/{ref[1]}")
    if len(seen) < 2:
        errors.append(f"expected the APP Deployment and the WORKER StatefulSet to connect with a "
                      f"NATS user, found {seen}")
    done.append("(c) " + "; ".join(seen) + f"; AP_NATS_URL {nats_url}")

    print("\n".join(done))
    if errors:
        fail(errors)
    print("OK: NATS authorization renders consistently through the nats subchart")


if __name__ == "__main__":
    main()
