"""/_metrics counts what the Autorisaties API answered, its cache's hits and misses, and rate-limit refusals
(issue #15), against a real loopback Autorisaties API and a real server. The in-process servers of the suite
share one registry, so every check compares two scrapes."""
from __future__ import annotations

import time

from pytest_httpserver import HTTPServer

from conftest import Api
from test_autorisaties_api import ac_answer, ac_server, ac_auth_config  # noqa: F401  (fixture)
from test_limits_and_proxy import assert_throttled, fresh_window
from test_ops_endpoints import metric, scrape


def waarde(samples, naam: str, **labels) -> float:
    return metric(samples, naam, **labels) or 0.0


def verschil(voor, na, naam: str, **labels) -> float:
    return waarde(na, naam, **labels) - waarde(voor, naam, **labels)


def test_autorisaties_calls_and_cache_lookups_are_counted(server_factory, ac_auth_config, httpserver):  # noqa: F811
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(ac_answer(
        {"component": "kc", "scopes": ["klanten.lezen"]}))
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"))
    voor = scrape(srv.url)
    api = Api(srv.url, "remote")
    assert [api.get("/klanten").status_code for _ in range(3)] == [200, 200, 200]
    time.sleep(0.2)
    na = scrape(srv.url)
    assert verschil(voor, na, "klanten_autorisaties_requests_total", result="ok") == 1
    assert verschil(voor, na, "klanten_autorisaties_cache_lookups_total", result="miss") == 1
    assert verschil(voor, na, "klanten_autorisaties_cache_lookups_total", result="hit") == 2


def test_an_autorisaties_api_that_is_down_is_counted_as_unreachable(server_factory, ac_auth_config):  # noqa: F811
    weg = HTTPServer(host="127.0.0.1", port=0)
    weg.start()
    url = weg.url_for("/ac/api/v1/")
    weg.stop()                                   # nothing listens there any more
    srv = ac_server(server_factory, ac_auth_config, url)
    voor = scrape(srv.url)
    assert Api(srv.url, "remote").get("/klanten").status_code == 403
    na = scrape(srv.url)
    assert verschil(voor, na, "klanten_autorisaties_requests_total", result="unreachable") == 1
    assert verschil(voor, na, "klanten_autorisaties_requests_total", result="ok") == 0


def test_rate_limit_refusals_are_counted(server_factory):
    srv = server_factory(rate_limit="5/60")
    api = Api(srv.url)
    fresh_window(60, time.monotonic)
    voor = scrape(srv.url)
    assert [api.get("/klanten").status_code for _ in range(5)] == [200] * 5
    for _ in range(3):
        assert_throttled(api.get("/klanten"))
    time.sleep(0.2)
    na = scrape(srv.url)
    assert verschil(voor, na, "klanten_rate_limit_refusals_total") == 3
    assert verschil(voor, na, "klanten_http_requests_total", operation="klant_list", status_class="4xx") == 3
