"""Writes grafana-dashboard.json (the Grafana dashboard) from PANELS, which render.py draws as well.

Run: python docs/observability/make_dashboard.py
"""
from __future__ import annotations

import json
from pathlib import Path

HIER = Path(__file__).resolve().parent

# (title, unit, [(PromQL expression, legend)])
PANELS = [
    ("Requests per second by operation", "reqps",
     [("sum by (operation) (rate(klanten_http_requests_total[1m]))", "{{operation}}")]),
    ("Responses per second by status class", "reqps",
     [("sum by (status_class) (rate(klanten_http_requests_total[1m]))", "{{status_class}}")]),
    ("Latency p95 by operation", "s",
     [("histogram_quantile(0.95, sum by (operation, le) (rate(klanten_http_request_duration_seconds_bucket[1m])))",
       "{{operation}}")]),
    ("Outbox", "short",
     [("klanten_outbox_pending", "pending"), ("klanten_outbox_failed", "failed")]),
    ("Oldest pending notification", "s",
     [("klanten_outbox_oldest_pending_age_seconds", "age")]),
    ("Deliveries per second by result", "reqps",
     [("sum by (result) (rate(klanten_notificaties_deliveries_total[1m]))", "{{result}}")]),
    ("Delivery latency p95", "s",
     [("histogram_quantile(0.95, sum by (le) (rate(klanten_notificaties_delivery_duration_seconds_bucket[1m])))",
       "p95")]),
    ("kla-002 subject checks per second by result", "reqps",
     [("sum by (result) (rate(klanten_subject_checks_total[1m]))", "{{result}}")]),
    ("kla-002 subject check latency p95", "s",
     [("histogram_quantile(0.95, sum by (le) (rate(klanten_subject_check_duration_seconds_bucket[1m])))", "p95")]),
    ("Autorisaties API calls and cache", "reqps",
     [("sum by (result) (rate(klanten_autorisaties_requests_total[1m]))", "call {{result}}"),
      ("sum by (result) (rate(klanten_autorisaties_cache_lookups_total[1m]))", "cache {{result}}")]),
    ("Database pool", "short",
     [("klanten_db_pool_connections_in_use", "in use"), ("klanten_db_pool_size", "capacity"),
      ("rate(klanten_db_pool_waits_total[1m])", "waits/s")]),
    ("Rate-limit refusals per second", "reqps",
     [("rate(klanten_rate_limit_refusals_total[1m])", "429/s")]),
]


def dashboard() -> dict:
    panels = []
    for i, (titel, eenheid, doelen) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": titel,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": eenheid}, "overrides": []},
            "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legenda}
                        for j, (expr, legenda) in enumerate(doelen)],
        })
    return {
        "title": "Klanten API", "uid": "klanten-api", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "tags": ["klanten-api", "zgw"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


if __name__ == "__main__":
    (HIER / "grafana-dashboard.json").write_text(json.dumps(dashboard(), indent=2) + "\n")
