#!/usr/bin/env python3
"""The Compose files through Docker Compose v2 itself (compose-go, the compose-spec reference
implementation); run by scripts/check-deploy.sh with DOCKER_COMPOSE set to the binary.

Prints one line per problem and exits 1 when there is any:
  * docker-compose.yml is valid, and its Postgres and ClickHouse are the images trigger.dev's stack
    runs by default, with trigger.dev's database name (`main`) in the worker's URL;
  * docker-compose.trigger.yml, merged onto trigger.dev's own file (FIXTURE, a copy with its
    commit), is valid, and in the merged project:
      - the worker is on trigger.dev's `webapp` network, with the webapp's logging and restart
        settings, also when LOGGING_* and RESTART_POLICY are set (it follows the variables);
      - it waits for the webapp to be healthy (its migrations ran), and for the one-shot setup;
      - the webapp's RUN_REPLICATION_ENABLED is 0 and the worker's environment has none;
      - the worker reaches the Postgres database and ClickHouse the webapp uses, with the stack's
        defaults and with DATABASE_URL / RUN_REPLICATION_CLICKHOUSE_URL / CLICKHOUSE_USER set;
        its DATABASE_URL is the webapp's as written, Prisma's schema= included (the worker reads
        it as trigger.dev does: schema= names the tables' schema);
      - the worker's own switch, RUNS_REPLICATOR_ENABLED, is on unless the .env turns it off;
      - no two services publish the same host port;
  * every password the add-on puts in a URL is required (`${VAR:?message}`), not defaulted.
"""

import json
import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STANDALONE = "docker-compose.yml"
ADDON = "docker-compose.trigger.yml"
FIXTURE = "tests/fixtures/trigger.dev/docker-compose.yml"
WORKER = "runs-replicator"
SETUP = "runs-replicator-setup"
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "CLICKHOUSE_PASSWORD")

# What trigger.dev's .env must hold for its file to render at all (placeholders, never used).
STACK_ENV = {
    "POSTGRES_PASSWORD": "check-deploy-pg",
    "CLICKHOUSE_PASSWORD": "check-deploy-ch",
    "OBJECT_STORE_SECRET_ACCESS_KEY": "check-deploy-s3",
}

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def compose_config(files, env_extra=None):
    """`docker compose -f … config --format json` as a dict, or None (with a problem) on failure."""
    env = {k: v for k, v in os.environ.items() if not re.match(r"^(POSTGRES_|CLICKHOUSE_|LOGGING_|RESTART_|DATABASE_URL|RUN_REPLICATION|RUNS_REPLICATOR_|COMPOSE_)", k)}
    env.update(STACK_ENV)
    env.update(env_extra or {})
    args = [os.environ.get("DOCKER_COMPOSE", "docker-compose")]
    for f in files:
        args += ["-f", os.path.join(REPO, f)]
    # No .env of the repository's may leak in: each project directory is the first file's.
    args += ["config", "--format", "json"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        msg = " ".join(l.strip() for l in out.stderr.splitlines() if "level=warning" not in l)
        problem(" + ".join(files), f"docker compose config rejects it: {msg.strip()[-400:]}")
        return None
    return json.loads(out.stdout)


def env_of(svc):
    env = svc.get("environment") or {}
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def db_target(url):
    u = urlsplit(url)
    return (u.hostname, u.port or 5432, u.path.lstrip("/"), u.username, u.password)


def image_default(svc):
    return svc.get("image", "")


# ---------------------------------------------------------------------------------------------
# The standalone stack

trigger = compose_config([FIXTURE])
standalone = compose_config([STANDALONE])
if trigger and standalone:
    t, s = trigger["services"], standalone["services"]
    for name in ("postgres", "clickhouse"):
        if image_default(s.get(name, {})) != image_default(t.get(name, {})):
            problem(STANDALONE, f"service {name} runs {image_default(s.get(name, {}))!r}, trigger.dev's stack {image_default(t.get(name, {}))!r} ({FIXTURE})")
    theirs = db_target(env_of(t["webapp"])["DATABASE_URL"])[2]
    ours = db_target(env_of(s["worker"]).get("DATABASE_URL", ""))[2]
    if ours != theirs or env_of(s["postgres"]).get("POSTGRES_DB") != theirs:
        problem(STANDALONE, f"the database is {ours!r} (POSTGRES_DB {env_of(s['postgres']).get('POSTGRES_DB')!r}), trigger.dev's is {theirs!r}")

# ---------------------------------------------------------------------------------------------
# The add-on, merged onto trigger.dev's file

VARIANTS = {
    "the stack's defaults": {},
    "LOGGING_*, RESTART_POLICY, external URLs set": {
        "LOGGING_DRIVER": "json-file",
        "LOGGING_MAX_SIZE": "7m",
        "LOGGING_MAX_FILES": "3",
        "RESTART_POLICY": "on-failure",
        "CLICKHOUSE_USER": "analytics",
        "DATABASE_URL": "postgresql://app:secret@db.internal:6432/trigger?schema=public&sslmode=require",
        "RUN_REPLICATION_CLICKHOUSE_URL": "https://repl:secret@ch.internal:8443",
    },
}

for label, extra in VARIANTS.items():
    merged = compose_config([FIXTURE, ADDON], extra)
    if not merged:
        continue
    where = f"{ADDON} ({label})"
    svcs = merged["services"]
    worker, webapp = svcs.get(WORKER), svcs.get("webapp")
    if worker is None or webapp is None:
        problem(where, f"no service {WORKER!r} or no webapp after the merge")
        continue
    if "webapp" not in (worker.get("networks") or {}):
        problem(where, f"{WORKER} is not on trigger.dev's webapp network")
    for svc_name in (WORKER, SETUP):
        svc = svcs.get(svc_name) or {}
        if svc.get("logging") != webapp.get("logging"):
            problem(where, f"{svc_name} logs with {svc.get('logging')}, the webapp with {webapp.get('logging')}")
    if worker.get("restart") != webapp.get("restart"):
        problem(where, f"{WORKER} restarts {worker.get('restart')!r}, the webapp {webapp.get('restart')!r}")
    deps = worker.get("depends_on") or {}
    if (deps.get("webapp") or {}).get("condition") != "service_healthy":
        problem(where, f"{WORKER} does not wait for the webapp to be healthy (its migrations)")
    if (deps.get(SETUP) or {}).get("condition") != "service_completed_successfully":
        problem(where, f"{WORKER} does not wait for {SETUP} to complete")
    if ((svcs.get(SETUP) or {}).get("depends_on") or {}).get("webapp", {}).get("condition") != "service_healthy":
        problem(where, f"{SETUP} does not wait for the webapp to be healthy")
    if str(env_of(webapp).get("RUN_REPLICATION_ENABLED")) != "0":
        problem(where, f"the webapp's RUN_REPLICATION_ENABLED is {env_of(webapp).get('RUN_REPLICATION_ENABLED')!r}, not 0: two replicators would write the runs table")
    wenv = env_of(worker)
    if "RUN_REPLICATION_ENABLED" in wenv:
        problem(where, f"{WORKER} sets RUN_REPLICATION_ENABLED; the switch is the webapp's")
    if wenv.get("DATABASE_URL") != env_of(webapp).get("DATABASE_URL"):
        problem(where, f"{WORKER}'s DATABASE_URL is not the webapp's as written (its schema= and sslmode= included)")
    if str(wenv.get("RUNS_REPLICATOR_ENABLED", "true")).lower() not in ("true", "1"):
        problem(where, f"{WORKER}'s RUNS_REPLICATOR_ENABLED is {wenv.get('RUNS_REPLICATOR_ENABLED')!r} by default: it would stream nothing")
    for svc_name in (WORKER, SETUP):
        url = env_of(svcs.get(svc_name) or {}).get("DATABASE_URL", "")
        if db_target(url) != db_target(env_of(webapp)["DATABASE_URL"]):
            problem(where, f"{svc_name} connects to {db_target(url)[:4]}, the webapp to {db_target(env_of(webapp)['DATABASE_URL'])[:4]}")
    if wenv.get("RUN_REPLICATION_CLICKHOUSE_URL") != env_of(webapp).get("RUN_REPLICATION_CLICKHOUSE_URL"):
        problem(where, f"{WORKER}'s ClickHouse URL differs from the webapp's RUN_REPLICATION_CLICKHOUSE_URL")
    if (svcs.get(SETUP) or {}).get("image") != (svcs.get("postgres") or {}).get("image"):
        problem(where, f"{SETUP} runs {(svcs.get(SETUP) or {}).get('image')!r}, not the stack's Postgres image")
    published = {}
    for name, svc in svcs.items():
        for p in svc.get("ports") or []:
            key = (str(p.get("published")), p.get("protocol", "tcp"))
            ip = p.get("host_ip") or "0.0.0.0"
            for other_name, other_ip in published.get(key, []):
                if ip == other_ip or "0.0.0.0" in (ip, other_ip):
                    problem(where, f"{name} and {other_name} both publish {key[1]} port {key[0]}")
            published.setdefault(key, []).append((name, ip))

try:
    with open(os.path.join(REPO, ADDON), encoding="utf-8") as f:
        addon_text = f.read()
except OSError as e:
    problem(ADDON, f"cannot read: {e}")
    addon_text = ""
for var in REQUIRED_SECRETS:
    for m in re.finditer(r"\$\{" + var + r"([^A-Za-z0-9_])", addon_text):
        if not addon_text.startswith(":?", m.start(1)):
            problem(ADDON, f"${{{var}...}} has a default or none at all: write ${{{var}:?message}}, it is required")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
