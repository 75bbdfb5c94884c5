#!/usr/bin/env python3
"""Consistency checks of the deployment files; run by scripts/check-deploy.sh (needs PyYAML).

Prints one line per problem to stdout and exits 1 when there is any, 0 otherwise:
  * every path docker-compose.yml bind-mounts, builds from or reads (env_file, configs, secrets)
    exists and is not ignored by git (so a clean clone has it);
  * every path the Dockerfile COPYs/ADDs from the build context exists and is not excluded by
    .dockerignore;
  * every runs_replicator_* metric the Grafana dashboards and the Prometheus rules use is a name
    in src/metrics.rs (a _bucket/_sum/_count suffix only on a histogram);
  * every label they select on, group by, or show in a legend or an annotation is one the metric
    carries (its counter!/gauge!/histogram! calls in src/, plus job and instance) and survives
    the expression's aggregation; every dashboard query of a per-stream metric (one with a
    `source` label) follows the dashboard's $source variable;
  * every RUNS_REPLICATOR_* / RUN_REPLICATION_* variable docker-compose.yml, the worker's services
    in docker-compose.trigger.yml or the Dockerfile set is one the configuration accepts
    (src/config/env.rs, src/cli.rs: the flags);
  * the dashboards are JSON with schemaVersion >= 39 and use only provisioned datasource uids;
    the dashboard provider's path, Prometheus' rule files and its scrape target line up with what
    docker-compose.yml mounts and runs.
"""

import fnmatch
import json
import os
import re
import subprocess
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
COMPOSE = "docker-compose.yml"
ADDON = "docker-compose.trigger.yml"
DOCKERFILE = "Dockerfile"
METRICS_RS = "src/metrics.rs"
ENV_RS = "src/config/env.rs"
CLI_RS = "src/cli.rs"
DASHBOARDS = "config/grafana/dashboards"
DATASOURCES = "config/grafana/provisioning/datasources"
PROVIDERS = "config/grafana/provisioning/dashboards"
PROMETHEUS = "config/prometheus"

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def rel(path):
    return os.path.relpath(path, REPO)


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def load_yaml(path):
    try:
        return yaml.safe_load(read(path)) or {}
    except (OSError, yaml.YAMLError) as e:
        problem(path, f"cannot read YAML: {str(e).splitlines()[0]}")
        return {}


def git_ignored(paths):
    """The subset of repo-relative paths git ignores (empty when this is not a git checkout)."""
    if not paths:
        return set()
    try:
        out = subprocess.run(
            ["git", "-C", REPO, "check-ignore", "--no-index", "--stdin"],
            input="\n".join(paths) + "\n", capture_output=True, text=True, check=False,
        )
    except OSError:
        return set()
    if out.returncode not in (0, 1):
        return set()
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


# ---------------------------------------------------------------------------------------------
# docker-compose.yml

compose = load_yaml(COMPOSE)
services = compose.get("services") or {}
compose_dir = REPO
# (service, container path) -> host path, for the cross-file checks below
binds = {}
needed = []  # (where, repo-relative path)


def want(where, host_path):
    path = os.path.normpath(os.path.join(compose_dir, os.path.expandvars(host_path)))
    if not path.startswith(REPO + os.sep) and path != REPO:
        problem(where, f"{host_path} is outside the repository")
        return None
    needed.append((where, rel(path)))
    return path


for name, svc in services.items():
    svc = svc or {}
    where = f"{COMPOSE}: service {name}"
    build = svc.get("build")
    if build is not None:
        ctx = build if isinstance(build, str) else build.get("context", ".")
        ctx_path = want(f"{where} build context", ctx)
        dockerfile = None if isinstance(build, str) else build.get("dockerfile")
        if ctx_path:
            want(f"{where} build dockerfile", os.path.join(rel(ctx_path), dockerfile or "Dockerfile"))
    for vol in svc.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            source, target = parts[0], (parts[1] if len(parts) > 1 else None)
            bind = source.startswith((".", "/", "~"))
        else:
            source, target = vol.get("source", ""), vol.get("target")
            bind = vol.get("type") == "bind"
        if bind and source:
            host = want(f"{where} mount", source)
            if host and target:
                binds[(name, target.rstrip("/"))] = host
    env_files = svc.get("env_file") or []
    for ef in [env_files] if isinstance(env_files, str) else env_files:
        want(f"{where} env_file", ef if isinstance(ef, str) else ef.get("path", ""))
for kind in ("configs", "secrets"):
    for name, item in (compose.get(kind) or {}).items():
        if isinstance(item, dict) and item.get("file"):
            want(f"{COMPOSE}: {kind[:-1]} {name}", item["file"])


def in_container(service, path):
    """The host path behind a container path of a service, via its bind mounts (or None)."""
    path = path.rstrip("/")
    best = None
    for (svc, target), host in binds.items():
        if svc == service and (path == target or path.startswith(target + "/")):
            if best is None or len(target) > len(best[0]):
                best = (target, host)
    if best is None:
        return None
    return os.path.normpath(best[1] + path[len(best[0]):])


# ---------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text):
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        lines.append(cur.strip())
        cur = ""
    if cur.strip():
        lines.append(cur.strip())
    return lines


def dockerignore_patterns(ctx):
    path = os.path.join(ctx, ".dockerignore")
    if not os.path.exists(path):
        return []
    pats = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            neg = s.startswith("!")
            s = s[1:] if neg else s
            s = os.path.normpath(s.lstrip("/"))
            pats.append((neg, s))
    return pats


def excluded(path, pats):
    """Docker's .dockerignore semantics, close enough: a pattern excludes the path or a parent."""
    candidates = []
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        candidates.append("/".join(parts[:i]))
    result = False
    for neg, pat in pats:
        rx = re.escape(pat).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(rx, c) for c in candidates):
            result = not neg
    return result


build_ctx = REPO
worker_build = None
for name, svc in services.items():
    b = (svc or {}).get("build")
    if b is not None:
        worker_build = name
        ctx = b if isinstance(b, str) else b.get("context", ".")
        build_ctx = os.path.normpath(os.path.join(compose_dir, ctx))
        break

docker_env = {}
try:
    instructions = dockerfile_instructions(read(DOCKERFILE))
except OSError as e:
    problem(DOCKERFILE, f"cannot read: {e}")
    instructions = []
pats = dockerignore_patterns(build_ctx)
for ins in instructions:
    word, _, rest = ins.partition(" ")
    word = word.upper()
    if word in ("COPY", "ADD"):
        args = rest.strip()
        flags = []
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            flags.append(flag)
            args = args.strip()
        if any(f.startswith("--from") for f in flags):
            continue
        if args.startswith("["):
            try:
                items = json.loads(args)
            except json.JSONDecodeError:
                problem(DOCKERFILE, f"cannot parse {word} {args}")
                continue
        else:
            items = args.split()
        for src in items[:-1]:
            if re.match(r"^[a-z]+://", src):
                continue
            rel_src = os.path.normpath(src.lstrip("/"))
            full = os.path.join(build_ctx, rel_src)
            where = f"{DOCKERFILE}: {word} {src}"
            if any(ch in rel_src for ch in "*?["):
                import glob

                if not glob.glob(full):
                    problem(where, "matches nothing in the build context")
                continue
            needed.append((where, rel(full)))
            if excluded(rel_src, pats):
                problem(where, f"is excluded by {rel(os.path.join(build_ctx, '.dockerignore'))}")
    elif word == "ENV":
        body = rest.strip()
        for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=", body):
            docker_env[m.group(1)] = True
        if "=" not in body.split(" ")[0]:
            docker_env[body.split(" ")[0]] = True

# The image: bases pinned by digest, its version and license labels those of Cargo.toml.
cargo_toml = read("Cargo.toml")
cargo_version = re.search(r'^version = "([^"]+)"', cargo_toml, re.M)
cargo_license = re.search(r'^license = "([^"]+)"', cargo_toml, re.M)
stages = set()
labels = {}
for ins in instructions:
    word, _, rest = ins.partition(" ")
    if word.upper() == "FROM":
        parts = rest.split()
        image = next((p for p in parts if not p.startswith("--")), "")
        if len(parts) >= 3 and parts[-2].upper() == "AS":
            stages.add(parts[-1])
        if image != "scratch" and image not in stages and "@sha256:" not in image:
            problem(DOCKERFILE, f"FROM {image} is not pinned by digest (image@sha256:...)")
    elif word.upper() == "ARG" and rest.startswith("VERSION="):
        if cargo_version and rest.split("=", 1)[1].strip('"') != cargo_version.group(1):
            problem(DOCKERFILE, f"ARG {rest}: Cargo.toml's version is {cargo_version.group(1)}")
    elif word.upper() == "LABEL":
        labels.update(dict(re.findall(r'([\w.]+)="([^"]*)"', rest)))
for key in ("title", "description", "version", "revision", "created", "licenses", "base.name", "base.digest"):
    if f"org.opencontainers.image.{key}" not in labels:
        problem(DOCKERFILE, f"no OCI label org.opencontainers.image.{key}")
if cargo_license and labels.get("org.opencontainers.image.licenses") != cargo_license.group(1):
    problem(DOCKERFILE, f"org.opencontainers.image.licenses is not Cargo.toml's {cargo_license.group(1)!r}")

ignored = git_ignored([p for _, p in needed])
for where, path in needed:
    if not os.path.exists(os.path.join(REPO, path)):
        problem(where, f"{path} does not exist")
    elif path in ignored:
        problem(where, f"{path} is ignored by git, so a clean clone lacks it")

# ---------------------------------------------------------------------------------------------
# Metric names

metrics_src = read(METRICS_RS)
consts = dict(re.findall(r'pub const ([A-Z_0-9]+): &str = "(runs_replicator_[a-z0-9_]+)"', metrics_src))
known_metrics = set(consts.values()) | set(re.findall(r'"(runs_replicator_[a-z0-9_]+)"', metrics_src))
histograms = {consts[c] for c in re.findall(r"describe_histogram!\(\s*([A-Z_0-9]+)", metrics_src) if c in consts}
if not known_metrics:
    problem(METRICS_RS, "no runs_replicator_* names found (did the file move?)")


def check_metrics(path, text):
    # A trailing colon is prose ("runs_replicator_x: ..."), not part of a (recording rule) name.
    for name in sorted({n.rstrip(":") for n in re.findall(r"runs_replicator_[a-zA-Z0-9_:]+", text)}):
        if name in known_metrics:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != name and base in histograms:
            continue
        if base != name and base in known_metrics:
            problem(path, f"{name}: {base} is not a histogram in {METRICS_RS}")
        else:
            problem(path, f"metric {name} is not defined in {METRICS_RS}")


dash_files = sorted(
    os.path.join(DASHBOARDS, f) for f in os.listdir(os.path.join(REPO, DASHBOARDS)) if f.endswith(".json")
) if os.path.isdir(os.path.join(REPO, DASHBOARDS)) else []
if not dash_files:
    problem(DASHBOARDS, "no dashboard (*.json)")
dashboards = {}
for path in dash_files:
    text = read(path)
    check_metrics(path, text)
    try:
        dashboards[path] = json.loads(text)
    except json.JSONDecodeError as e:
        problem(path, f"not valid JSON: {e}")

rule_paths = []
prom_cfg = load_yaml(os.path.join(PROMETHEUS, "prometheus.yml"))
for rf in prom_cfg.get("rule_files") or []:
    # Relative rule files are relative to prometheus.yml; absolute ones are container paths.
    if os.path.isabs(rf):
        host = in_container("prometheus", rf)
        if host is None:
            problem(f"{PROMETHEUS}/prometheus.yml", f"rule file {rf} is not under a path docker-compose.yml mounts into prometheus")
            continue
        rule_paths.append(rel(host))
    else:
        rule_paths.append(os.path.normpath(os.path.join(PROMETHEUS, rf)))
rules_by_file = {}
for path in rule_paths:
    if not os.path.exists(os.path.join(REPO, path)):
        problem(f"{PROMETHEUS}/prometheus.yml", f"rule file {path} does not exist")
        continue
    text = read(path)
    rules = load_yaml(path)
    rule_list = [r for g in rules.get("groups") or [] for r in g.get("rules") or []]
    exprs = [r.get("expr", "") for r in rule_list]
    if not exprs:
        problem(path, "no rules")
    check_metrics(path, "\n".join(str(e) for e in exprs))
    rules_by_file[path] = rule_list

# ---------------------------------------------------------------------------------------------
# Metric labels. A selector that filters on a label its metric does not have matches nothing, and
# an aggregation by one, or a legend or annotation naming one, shows it empty: the panel or the
# alert goes quiet instead of failing. The labels each metric carries are read from the
# `counter!` / `gauge!` / `histogram!` calls in src/ (tests aside).

SCRAPE_LABELS = {"job", "instance"}


def macro_args(text, start):
    """The text from `start` (just after an opening parenthesis) to its closing parenthesis."""
    depth, i = 1, start
    while i < len(text) and depth:
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == '"':
            i = text.index('"', i + 1)
        i += 1
    return text[start:i - 1]


metric_labels = {}
for root, dirs, files in os.walk(os.path.join(REPO, "src")):
    dirs[:] = sorted(d for d in dirs if d not in ("tests", "testing"))
    for f in sorted(files):
        if not f.endswith(".rs") or f == "tests.rs":
            continue
        path = os.path.join(root, f)
        with open(path, encoding="utf-8") as fh:
            src = re.sub(r"(?m)^\s*//.*$", "", fh.read())
        for call in re.finditer(r"\b(?:counter|gauge|histogram)!\(", src):
            args = macro_args(src, call.end())
            first = re.sub(r"^(?:crate::metrics::|m::)", "", args.split(",", 1)[0].strip())
            if first in consts:
                names = [consts[first]]
            else:
                # A variable: the constants of the `for <var> in [...]` loop it comes from.
                loops = re.findall(r"for\s+" + re.escape(first) + r"\s+in\s+\[([^\]]*)\]", src[:call.start()])
                names = [consts[c] for c in re.findall(r"[A-Z_0-9]+", loops[-1]) if c in consts] if loops else []
            if not names:
                problem(rel(path), f"a metric macro names {first!r}: cannot tell which metric (use a {METRICS_RS} constant, or a `for x in [CONSTANTS]` loop)")
                continue
            for name in names:
                metric_labels.setdefault(name, set()).update(re.findall(r'"([a-zA-Z_][a-zA-Z0-9_]*)"\s*=>', args))
if not metric_labels:
    problem("src", "no counter!/gauge!/histogram! calls found (did the metrics move?)")

SELECTOR = re.compile(r"(runs_replicator_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")
SOURCE_FILTER = 'source=~"$source"'


def labels_of(name):
    """The labels a series of `name` can have, or None for a name this check does not know."""
    base, extra = name, set(SCRAPE_LABELS)
    m = re.match(r"(.*)_(bucket|sum|count)$", name)
    if m and m.group(1) in histograms:
        base = m.group(1)
        if m.group(2) == "bucket":
            extra.add("le")
    if base not in metric_labels:
        return None
    return metric_labels[base] | extra


def check_labels(where, expr, shown=(), per_stream_filter=False):
    """`shown`: labels a legend or annotation prints from the result of `expr`."""
    present = set(SCRAPE_LABELS)
    for sel in SELECTOR.finditer(expr):
        name, braces = sel.group(1), sel.group(2) or ""
        have = labels_of(name)
        if have is None:
            continue  # check_metrics reports unknown names
        present |= have
        for label in MATCHER.findall(braces):
            if label not in have:
                problem(where, f"{name} has no label {label!r} (it has {', '.join(sorted(have))})")
        if per_stream_filter and "source" in have and SOURCE_FILTER not in braces:
            problem(where, f"{name} is per stream: select it with {SOURCE_FILTER}")
    for lv in re.finditer(r"label_values\(\s*(runs_replicator_[a-zA-Z0-9_]+)[^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", expr):
        have = labels_of(lv.group(1))
        if have is not None and lv.group(2) not in have:
            problem(where, f"{lv.group(1)} has no label {lv.group(2)!r}")
    kept = set()
    for kind, labels in GROUPING.findall(expr):
        for label in (x.strip() for x in labels.split(",") if x.strip()):
            if label not in present:
                problem(where, f"{kind} ({label}): no series of this expression has that label")
            if kind == "by":
                kept.add(label)
    # After an aggregation only its `by` labels are left; without one, the series' own.
    available = kept if re.search(r"\bby\s*\(", expr) else present
    for label in shown:
        if label not in available:
            problem(where, f"shows {label!r}, which the result of its expression does not have ({', '.join(sorted(available)) or 'no labels'})")

for path, rule_list in rules_by_file.items():
    for r in rule_list:
        shown = set()
        for text in (r.get("annotations") or {}).values():
            shown |= set(re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", str(text)))
        check_labels(f"{path}: {r.get('alert') or r.get('record')}", str(r.get("expr", "")), shown)


def panels_of(node):
    for panel in node.get("panels") or []:
        yield panel
        yield from panels_of(panel)


# The dashboard's $source variable picks streams: every panel of a per-stream metric follows it.
for path, dash in dashboards.items():
    for var in (dash.get("templating") or {}).get("list") or []:
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        check_labels(f"{path}: variable {var.get('name')}", query)
    for panel in panels_of(dash):
        for target in panel.get("targets") or []:
            shown = re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", target.get("legendFormat") or "")
            where = f"{path}: panel {panel.get('title')!r} query {target.get('refId')}"
            check_labels(where, target.get("expr") or "", shown, per_stream_filter=True)

# ---------------------------------------------------------------------------------------------
# Grafana: datasource uids, schemaVersion, provider path

ds_uids = set()
if os.path.isdir(os.path.join(REPO, DATASOURCES)):
    for f in sorted(os.listdir(os.path.join(REPO, DATASOURCES))):
        if f.endswith((".yml", ".yaml")):
            for ds in load_yaml(os.path.join(DATASOURCES, f)).get("datasources") or []:
                if ds.get("uid"):
                    ds_uids.add(ds["uid"])
if not ds_uids:
    problem(DATASOURCES, "no provisioned datasource with a uid")


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


for path, dash in dashboards.items():
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 39:
        problem(path, f"schemaVersion {dash.get('schemaVersion')!r} (want >= 39)")
    for node in walk(dash):
        ds = node.get("datasource")
        if isinstance(ds, dict) and ds.get("uid") and ds.get("type") != "grafana":
            if ds["uid"] not in ds_uids:
                problem(path, f"datasource uid {ds['uid']!r} is not provisioned in {DATASOURCES} ({', '.join(sorted(ds_uids))})")
                break
        elif isinstance(ds, str) and ds.startswith("$"):
            problem(path, f"datasource {ds} is a variable; use uid {', '.join(sorted(ds_uids))}")
            break

if os.path.isdir(os.path.join(REPO, PROVIDERS)) and "grafana" in services:
    for f in sorted(os.listdir(os.path.join(REPO, PROVIDERS))):
        if not f.endswith((".yml", ".yaml")):
            continue
        for prov in load_yaml(os.path.join(PROVIDERS, f)).get("providers") or []:
            p = (prov.get("options") or {}).get("path")
            if not p:
                continue
            host = in_container("grafana", p)
            where = f"{PROVIDERS}/{f}"
            if host is None:
                problem(where, f"dashboard path {p} is not mounted into the grafana service")
            elif not any(os.path.normpath(os.path.join(REPO, d)).startswith(host) for d in dash_files):
                problem(where, f"dashboard path {p} ({rel(host)}) holds none of {', '.join(dash_files)}")

# ---------------------------------------------------------------------------------------------
# Prometheus scrape target -> compose service and its port

for sc in prom_cfg.get("scrape_configs") or []:
    for st in sc.get("static_configs") or []:
        for t in st.get("targets") or []:
            host, _, port = t.rpartition(":")
            if host in ("localhost", "127.0.0.1"):
                continue
            if host not in services:
                problem(f"{PROMETHEUS}/prometheus.yml", f"scrape target {t}: no service {host!r} in {COMPOSE}")

# ---------------------------------------------------------------------------------------------
# Environment variable names

env_src = read(ENV_RS)
keys_block = re.search(r"pub const KEYS: &\[&str\] = &\[(.*?)\];", env_src, re.S)
aliases_block = re.search(r"const ALIASES: .*?= &\[(.*?)\n\];", env_src, re.S)
accepted = set()
if keys_block:
    for key in re.findall(r'"([a-z_]+(?:\.[a-z_]+)?)"', keys_block.group(1)):
        accepted.add("RUNS_REPLICATOR_" + key.upper().replace(".", "_"))
if aliases_block:
    accepted |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', aliases_block.group(1)))
accepted |= set(re.findall(r'env = "([A-Z][A-Z0-9_]+)"', read(CLI_RS)))
if not keys_block or not aliases_block:
    problem(ENV_RS, "cannot find the KEYS / ALIASES lists (did they move?)")


def check_env(where, names):
    for n in names:
        if re.match(r"^(RUNS_REPLICATOR_|RUN_REPLICATION_)", n) and n not in accepted:
            problem(where, f"{n} is not a variable the configuration accepts ({ENV_RS})")


for name, svc in services.items():
    env = (svc or {}).get("environment") or {}
    names = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
    check_env(f"{COMPOSE}: service {name}", names)
check_env(DOCKERFILE, docker_env)
# The add-on's webapp entry sets trigger.dev's own variables on trigger.dev's webapp.
for name, svc in (load_yaml(ADDON).get("services") or {}).items():
    if name == "webapp":
        continue
    env = (svc or {}).get("environment") or {}
    names = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
    check_env(f"{ADDON}: service {name}", names)

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
