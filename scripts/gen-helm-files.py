#!/usr/bin/env python3
"""Writes the Helm chart's copies of the alert rules and the dashboard, which a chart cannot read
from outside its directory:

  config/prometheus/alerts.yml                  -> deploy/helm/runs-replicator/files/alerts.yml
      the PrometheusRule's spec, verbatim under a header;
  config/grafana/dashboards/runs-replicator.json -> deploy/helm/runs-replicator/files/runs-replicator.json
      with a `datasource` variable (any Prometheus data source) in place of the uid the Compose
      stack provisions, since a cluster's Grafana names its data sources itself.

  scripts/gen-helm-files.py           write them
  scripts/gen-helm-files.py --check   print a line per copy that is not current, exit 1 if any
                                      (scripts/check-deploy.sh runs this)
Standard library only.
"""

import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHART_FILES = "deploy/helm/runs-replicator/files"
ALERTS = "config/prometheus/alerts.yml"
DASHBOARD = "config/grafana/dashboards/runs-replicator.json"
COMPOSE_UID = "prometheus"  # config/grafana/provisioning/datasources: the Compose stack's uid


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def alerts():
    return (
        f"# Generated from {ALERTS} by scripts/gen-helm-files.py: edit that file, then run the script.\n"
        "# The PrometheusRule's spec (templates/prometheusrule.yaml).\n" + read(ALERTS)
    )


def dashboard():
    dash = json.loads(read(DASHBOARD))
    ds_var = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "options": [],
    }

    def walk(node):
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and ds.get("uid") == COMPOSE_UID:
                ds["uid"] = "${datasource}"
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash)
    templating = dash.setdefault("templating", {}).setdefault("list", [])
    templating[:] = [v for v in templating if v.get("name") != "datasource"]
    templating.insert(0, ds_var)
    return json.dumps(dash, indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, make in (("alerts.yml", alerts), ("runs-replicator.json", dashboard)):
        path = os.path.join(CHART_FILES, name)
        want = make()
        full = os.path.join(REPO, path)
        try:
            with open(full, encoding="utf-8") as f:
                have = f.read()
        except OSError:
            have = None
        if have == want:
            continue
        if check:
            stale.append(f"{path} is not current: run scripts/gen-helm-files.py")
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(want)
            print(f"wrote {path}")
    for line in stale:
        print(line)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
