"""What a statement costs PostgreSQL, by EXPLAIN (ANALYZE, BUFFERS): the tests of pages (issue #14) compare a
deep page with page 1 by these figures rather than by time alone."""
from __future__ import annotations

import json


def knopen(plan: dict):
    yield plan
    for kind in plan.get("Plans", ()):
        yield from knopen(kind)


def kosten(conn, statement, tabel: str) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement on a warm cache (the first run may read pages from disk, which is
    not what a page costs): shared buffers, the rows read from `tabel` (heap rows in `rijen`, index-only entries
    apart, over every role the table plays in the plan), the rows of `<tabel>_pagina`, whether `tabel` was
    scanned sequentially, and the time."""
    sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    conn.exec_driver_sql(f"EXPLAIN (ANALYZE) {sql}")
    plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").scalar_one()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    top = plan[0]["Plan"]
    uit = {"buffers": top["Shared Hit Blocks"] + top["Shared Read Blocks"], "rijen": 0, "index_alleen": 0,
           "pagina_rijen": 0, "ms": plan[0]["Execution Time"], "seq_scan": False}
    for knoop in knopen(top):
        rijen = knoop.get("Actual Rows", 0) * knoop.get("Actual Loops", 1)
        if knoop.get("Relation Name") == tabel:
            if knoop["Node Type"] == "Index Only Scan":
                uit["index_alleen"] += rijen
            else:
                uit["rijen"] += rijen
            uit["seq_scan"] |= knoop["Node Type"] == "Seq Scan"
        elif knoop.get("Relation Name") == f"{tabel}_pagina":
            uit["pagina_rijen"] += rijen
    return uit
