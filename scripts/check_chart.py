#!/usr/bin/env python3
"""The Helm chart (deploy/helm/runs-replicator) through Helm itself and the Kubernetes schemas;
run by scripts/check-deploy.sh with the validation tools' python (helm-python-sdk: Helm v4's Go
SDK; kubernetes-validate: the Kubernetes OpenAPI schemas, offline) and PROMTOOL set.

For the default values and for each ci/*-values.yaml, prints one line per problem, exits 1 if any:
  * `helm lint --strict` finds nothing above "info";
  * the chart renders (`helm template`), and every manifest validates against the Kubernetes
    schemas (strict: no unknown field) for the oldest and the newest Kubernetes version checked;
  * the objects fit together: the Deployment's selector matches its pods, the Service and the
    PodDisruptionBudget select them, the Service's and ServiceMonitor's port is the container's,
    the probes ask /healthz and /readyz, every RUNS_REPLICATOR_* / RUN_REPLICATION_* variable is
    one the configuration accepts, the worker's own switch (RUNS_REPLICATOR_ENABLED) is set and
    the webapp's (RUN_REPLICATION_ENABLED) is not, and no password is written into a manifest but
    a Secret;
  * the PrometheusRule's groups pass `promtool check rules` and are config/prometheus/alerts.yml's;
    the dashboard ConfigMap is JSON with the dashboard's panels;
and the chart's generated copies (files/) are current (scripts/gen-helm-files.py --check), and
deploy/helm/trigger-values.yaml (for trigger.dev's chart) turns the webapp's replication off.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHART = "deploy/helm/runs-replicator"
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
# Values passwords never belong in: the rendered manifests are scanned for them.
PLANTED = "planted-secret-c8f3"

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def accepted_env():
    env_src, cli_src = read("src/config/env.rs"), read("src/cli.rs")
    names = set()
    keys = re.search(r"pub const KEYS: &\[&str\] = &\[(.*?)\];", env_src, re.S)
    aliases = re.search(r"const ALIASES: .*?= &\[(.*?)\n\];", env_src, re.S)
    for key in re.findall(r'"([a-z_]+(?:\.[a-z_]+)?)"', keys.group(1) if keys else ""):
        names.add("RUNS_REPLICATOR_" + key.upper().replace(".", "_"))
    names |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', aliases.group(1) if aliases else ""))
    names |= set(re.findall(r'env = "([A-Z][A-Z0-9_]+)"', cli_src))
    # trigger.dev's run-ops database (a second source): its URL constant and its companions.
    names |= set(re.findall(r'pub const [A-Z_]+: &str = "(RUN_REPLICATION_[A-Z0-9_]+)"', env_src))
    run_ops = re.search(r"const RUN_OPS_NAMES: &\[&str\] = &\[(.*?)\];", env_src, re.S)
    names |= set(re.findall(r'"(RUN_REPLICATION_[A-Z0-9_]+)"', run_ops.group(1) if run_ops else ""))
    return names


ACCEPTED = accepted_env()
# The chart's own helper variable: the Postgres password the kubelet substitutes into the URL.
CHART_ENV = {"RUNS_REPLICATOR_PG_PASSWORD"}


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def check_objects(where, objs):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o.get("kind"), []).append(o)
    deps = by_kind.get("Deployment", [])
    if len(deps) != 1:
        problem(where, f"{len(deps)} Deployments rendered, expected 1")
        return
    dep = deps[0]
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    if not subset(dep["spec"]["selector"].get("matchLabels"), pod_labels):
        problem(where, "the Deployment's selector does not match its pod labels")
    container = pod["spec"]["containers"][0]
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    for probe, path in PROBE_PATHS.items():
        p = container.get(probe)
        if p is None:
            if probe != "startupProbe":
                problem(where, f"no {probe}")
            continue
        got = (p.get("httpGet") or {}).get("path")
        if got != path or (p.get("httpGet") or {}).get("port") not in ports:
            problem(where, f"{probe} asks {got} on port {(p.get('httpGet') or {}).get('port')}, expected {path} on a container port")
    for e in container.get("env") or []:
        name = e.get("name", "")
        if re.match(r"^(RUNS_REPLICATOR_|RUN_REPLICATION_)", name) and name not in ACCEPTED | CHART_ENV:
            problem(where, f"{name} is not a variable the configuration accepts (src/config/env.rs)")
    env = {e.get("name"): e for e in container.get("env") or []}
    if "RUN_REPLICATION_ENABLED" in env:
        problem(where, "the worker sets RUN_REPLICATION_ENABLED: that is the webapp's switch (the worker never reads it); its own is RUNS_REPLICATOR_ENABLED")
    if "RUNS_REPLICATOR_ENABLED" not in env:
        problem(where, "the worker has no RUNS_REPLICATOR_ENABLED (config.enabled): its own switch")
    names = [e.get("name") for e in container.get("env") or []]
    if len(names) != len(set(names)):
        problem(where, f"an environment variable is set twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    for svc in by_kind.get("Service", []):
        if not subset(svc["spec"].get("selector"), pod_labels) or not svc["spec"].get("selector"):
            problem(where, f"Service {svc['metadata']['name']} does not select the pods")
        for p in svc["spec"].get("ports") or []:
            if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
                problem(where, f"Service port {p.get('name')} targets {p.get('targetPort')}, not a container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not subset(pdb["spec"]["selector"].get("matchLabels"), pod_labels):
            problem(where, "the PodDisruptionBudget does not select the pods")
        if pdb["spec"].get("minAvailable") == 1 and dep["spec"].get("replicas", 1) < 2:
            problem(where, "minAvailable 1 with one replica: no node could ever be drained")
    svc_names = {p.get("name") for s in by_kind.get("Service", []) for p in s["spec"].get("ports") or []}
    for sm in by_kind.get("ServiceMonitor", []):
        sel = sm["spec"]["selector"].get("matchLabels")
        if not any(subset(sel, s["metadata"].get("labels") or {}) for s in by_kind.get("Service", [])):
            problem(where, "the ServiceMonitor selects no Service of the chart")
        for ep in sm["spec"].get("endpoints") or []:
            if ep.get("port") not in svc_names or ep.get("path") != "/metrics":
                problem(where, f"the ServiceMonitor scrapes port {ep.get('port')} path {ep.get('path')}, not the Service's metrics port /metrics")
    for rule in by_kind.get("PrometheusRule", []):
        want = yaml.safe_load(read("config/prometheus/alerts.yml"))
        if rule.get("spec") != want:
            problem(where, "the PrometheusRule's groups are not config/prometheus/alerts.yml's")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(rule["spec"], f)
        promtool = os.environ.get("PROMTOOL", "promtool")
        out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True, check=False)
        os.unlink(f.name)
        if out.returncode != 0:
            problem(where, f"promtool check rules on the PrometheusRule: {' '.join(out.stdout.split()[-20:])} {out.stderr.strip()[-300:]}")
    for cm in by_kind.get("ConfigMap", []):
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".json"):
                try:
                    dash = json.loads(text)
                except json.JSONDecodeError as e:
                    problem(where, f"ConfigMap {cm['metadata']['name']} {key}: not JSON: {e}")
                    continue
                if not dash.get("panels"):
                    problem(where, f"ConfigMap {cm['metadata']['name']} {key}: a dashboard without panels")


def check_values(label, values):
    where = f"{CHART} ({label})"
    report = helm.lint(os.path.join(REPO, CHART), values, strict=True, kube_version="v" + KUBE_VERSIONS[-1])
    for m in report.get("messages") or []:
        if m.get("severity", 0) >= 2:
            problem(where, f"helm lint: {m.get('path')}: {' '.join(str(m.get('error')).split())}")
    try:
        with helm.Chart.load(os.path.join(REPO, CHART)) as chart:
            rendered = chart.render(values, name="runs-replicator", namespace="trigger", is_install=True)
    except helm.HelmError as e:
        problem(where, f"helm template fails: {' '.join(str(e).split())}")
        return
    objs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        if PLANTED in text and not re.search(r"^kind: Secret$", text, re.M):
            problem(where, f"{path}: a password from the values is written into it; only a Secret may hold one")
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            objs.append(doc)
            kind = (doc.get("apiVersion"), doc.get("kind"))
            if kind in CRDS:
                continue  # no schema in Kubernetes' own: checked by check_objects
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    loc = ".".join(str(p) for p in e.path)
                    problem(where, f"{path}: {doc.get('kind')} invalid for Kubernetes {version} at {loc or '(top)'}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    problem(where, f"{path}: {kind[1]} ({kind[0]}) has no schema in Kubernetes {version}")
    check_objects(where, objs)
    return objs


def main():
    variants = {"default values": None}
    for path in sorted(glob.glob(os.path.join(REPO, CHART, "ci", "*-values.yaml"))):
        with open(path, encoding="utf-8") as f:
            variants[os.path.relpath(path, REPO)] = yaml.safe_load(f)
    if len(variants) < 2:
        problem(CHART, "no ci/*-values.yaml (a production-like values file)")
    kinds_seen = set()
    for label, values in variants.items():
        objs = check_values(label, values) or []
        kinds_seen |= {o.get("kind") for o in objs}
    # Inline credentials go into the chart's Secret, and only there.
    objs = check_values(
        "inline passwords",
        {
            "postgres": {"auth": {"existingSecret": "", "password": PLANTED}},
            "clickhouse": {"auth": {"existingSecret": "", "password": PLANTED}},
        },
    ) or []
    if not any(o.get("kind") == "Secret" for o in objs):
        problem(CHART, "inline passwords render no Secret")
    for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "ConfigMap"):
        if kind not in kinds_seen:
            problem(CHART, f"no values file renders a {kind}")
    snippet = yaml.safe_load(read("deploy/helm/trigger-values.yaml")) or {}
    envs = {e.get("name"): e.get("value") for e in (snippet.get("webapp") or {}).get("extraEnvVars") or []}
    if envs.get("RUN_REPLICATION_ENABLED") != "0":
        problem("deploy/helm/trigger-values.yaml", "does not set the webapp's RUN_REPLICATION_ENABLED to \"0\"")
    gen = subprocess.run([sys.executable, os.path.join(REPO, "scripts/gen-helm-files.py"), "--check"], capture_output=True, text=True, check=False)
    for line in gen.stdout.splitlines():
        problem(CHART, line)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
