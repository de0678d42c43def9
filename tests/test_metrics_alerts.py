"""docs/observability: the alert rules and the Grafana dashboard use only metric names this server exposes.

The rules are parsed with PyYAML; every metric name in their PromQL (and in the dashboard's panels) must be a
sample name of a real scrape of /_metrics, whose exposition prometheus_client's parser reads. Prometheus's own
`up` is the one exception.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parents[1] / "docs" / "observability"
PROMETHEUS_EIGEN = {"up"}
# PromQL words that look like names: functions, aggregations, keywords
PROMQL = {"sum", "rate", "irate", "increase", "max", "min", "avg", "by", "without", "on", "ignoring", "or", "and",
          "unless", "absent", "clamp_min", "histogram_quantile", "count", "le", "bool", "offset"}
NAAM = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metriek_namen(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers outside {...} label matchers, (...) grouping lists
    after by/without, [..] ranges and quoted strings, that are not PromQL words."""
    zonder = re.sub(r'"[^"]*"', "", expr)
    zonder = re.sub(r"\{[^}]*\}", "", zonder)
    zonder = re.sub(r"\[[^\]]*\]", "", zonder)
    zonder = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", zonder)
    zonder = re.sub(r"\b\d+(\.\d+)?(e-?\d+)?\b", "", zonder)          # numbers such as 1e-9
    return {n for n in NAAM.findall(zonder) if n not in PROMQL and not re.fullmatch(r"\d+(e-?\d+)?", n)}


def blootgesteld(url: str) -> set[str]:
    tekst = requests.get(f"{url}/_metrics", timeout=10).text
    namen = set()
    for fam in text_string_to_metric_families(tekst):
        namen |= {s.name for s in fam.samples}
        # a labelled metric without samples yet is still declared (HELP/TYPE): the names it will have
        namen |= {"counter": {f"{fam.name}_total"}, "histogram": {f"{fam.name}_{x}" for x in ("bucket", "sum", "count")},
                  "gauge": {fam.name}, "info": {f"{fam.name}_info"}}.get(fam.type, set())
    return namen


def test_alert_rules_parse_and_reference_only_exposed_metrics(server):
    regels = yaml.safe_load((DOCS / "alerts.yml").read_text())
    alerts = {r["alert"]: r["expr"] for g in regels["groups"] for r in g["rules"]}
    assert {"KlantenNotificatiesMislukt", "KlantenOutboxAchter", "KlantenServerFouten", "KlantenNietGereed"} <= set(alerts)
    namen = blootgesteld(server.url)
    for alert, expr in alerts.items():
        gebruikt = metriek_namen(expr)
        assert gebruikt, alert
        assert gebruikt - namen <= PROMETHEUS_EIGEN, (alert, gebruikt - namen)
    assert "klanten_outbox_failed" in metriek_namen(alerts["KlantenNotificatiesMislukt"])
    assert "klanten_outbox_oldest_pending_age_seconds" in metriek_namen(alerts["KlantenOutboxAchter"])


def test_dashboard_panels_reference_only_exposed_metrics(server):
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    namen = blootgesteld(server.url)
    gezien = set()
    for panel in dashboard["panels"]:
        for doel in panel["targets"]:
            gebruikt = metriek_namen(doel["expr"])
            assert gebruikt and gebruikt <= namen, (panel["title"], gebruikt - namen)
            gezien |= gebruikt
    # every metric family the server declares is on the dashboard (build info is a label set, not a graph)
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in namen}
    op_dashboard = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in gezien}
    assert families - op_dashboard <= {"klanten_build_info", "klanten_db_pool_timeouts",
                                       "klanten_notificaties_delivery_attempts"}, families - op_dashboard


def test_the_name_extraction_is_not_vacuous():
    assert metriek_namen('sum by (operation) (rate(klanten_http_requests_total{status_class="5xx"}[5m])) > 0') == {
        "klanten_http_requests_total"}
    assert metriek_namen("up{job=\"x\"} == 0 or absent(klanten_outbox_pending)") == {"up", "klanten_outbox_pending"}
