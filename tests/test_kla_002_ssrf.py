"""kla-002 without server-side request forgery: every internal address range is refused before any
connection is made (also for names that resolve to one), unless the host is explicitly allowed."""
from __future__ import annotations

import time

import pytest

from conftest import Api, klant_body

REFUSED = [
    "127.0.0.1", "127.8.9.10",                    # loopback
    "10.0.0.1", "172.16.5.4", "192.168.1.1",       # private (RFC 1918)
    "169.254.169.254",                             # link-local: cloud metadata services
    "100.64.0.1",                                  # carrier-grade NAT (shared address space)
    "0.0.0.0", "224.0.0.1", "240.0.0.1",           # unspecified, multicast, reserved
    "[::1]", "[fd00::1]", "[fe80::1]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]",
]


@pytest.fixture
def strict_server(server_factory):
    """No allowed hosts: the production default."""
    return server_factory(subject_allowed_hosts=())


@pytest.mark.parametrize("host", REFUSED)
def test_internal_addresses_are_refused_without_connecting(strict_server, host):
    api = Api(strict_server.url)
    url = f"http://{host}:9/klant/123"
    started = time.perf_counter()
    response = api.post("/klanten", klant_body(url))
    assert time.perf_counter() - started < 2.0      # refused up front, no connection attempt timing out
    assert response.status_code == 400, response.text
    assert response.json()["invalidParams"] == [{
        "name": "subject", "code": "bad-url",
        "reason": f"De URL {url} kon niet opgehaald worden. Foutmelding: het adres is niet toegestaan"}]


def test_a_name_that_resolves_to_loopback_is_refused(strict_server, httpserver):
    httpserver.expect_request("/subject").respond_with_data("ok")
    url = httpserver.url_for("/subject")
    assert "//localhost:" in url
    response = Api(strict_server.url).post("/klanten", klant_body(url))
    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["reason"].endswith("het adres is niet toegestaan")
    assert len(httpserver.log) == 0


def test_an_allowed_host_may_be_internal(server_factory, httpserver):
    httpserver.expect_request("/subject").respond_with_data("ok")
    srv = server_factory(subject_allowed_hosts=("localhost",))   # the httpserver URL names localhost
    assert Api(srv.url).post("/klanten", klant_body(httpserver.url_for("/subject"))).status_code == 201
    assert len(httpserver.log) == 1


def test_only_http_and_https_are_fetched(strict_server):
    for url in ("ftp://ftp.example.com/klant", "file:///etc/passwd", "gopher://example.com/x"):
        response = Api(strict_server.url).post("/klanten", klant_body(url))
        assert response.status_code == 400
        codes = {p["code"] for p in response.json()["invalidParams"]}
        assert codes & {"bad-url", "invalid"}, response.text
