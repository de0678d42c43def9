"""The API root (DECISIONS #19, reference §8): `GET /api/v1/` lists the collections with absolute URLs, without
authorisation, as the reference's DRF API root; `/api/v1` (and `/api/v1/schema`) redirect to the slashed path on
KLANTEN_BASE_URL. zgw-consumers' connection check reads the root: a 404 there marks a correct configuration as
failing.
"""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from test_http import raw_request
from test_privacy_logging import vang_logs


def sessie() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def test_api_root_lists_the_collections_without_authorisation(server, api):
    r = sessie().get(f"{server.url}/api/v1/", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["API-version"] == "1.0.0"
    assert r.json() == {"klanten": f"{server.url}/api/v1/klanten"}
    # the listed URL is the collection itself
    assert api.get(r.json()["klanten"]).status_code == 200


def test_api_root_with_a_token_answers_the_same(server, api):
    r = api.get("/")
    assert r.status_code == 200, r.text
    assert r.json() == {"klanten": f"{server.url}/api/v1/klanten"}


def test_api_root_urls_use_klanten_base_url(server_factory):
    srv = server_factory(base_url="https://klanten.gemeente.example")
    r = sessie().get(f"{srv.url}/api/v1/", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"klanten": "https://klanten.gemeente.example/api/v1/klanten"}


@pytest.mark.parametrize("pad, doel", [("/api/v1", "/api/v1/"), ("/api/v1/schema", "/api/v1/schema/")])
def test_path_without_slash_redirects_on_klanten_base_url(server_factory, pad, doel):
    """Before: `/api/v1` redirected (307) to the request's Host, `/api/v1/schema` was a 500."""
    srv = server_factory(base_url="https://klanten.gemeente.example")
    r = sessie().get(f"{srv.url}{pad}", allow_redirects=False, timeout=10)
    assert r.status_code == 301, r.text
    assert r.headers["Location"] == f"https://klanten.gemeente.example{doel}"
    r = sessie().get(f"{srv.url}{pad}?v=3", allow_redirects=False, timeout=10)
    assert r.status_code == 301
    assert r.headers["Location"] == f"https://klanten.gemeente.example{doel}?v=3"


def test_without_base_url_the_redirect_follows_the_request_and_ends_at_the_root(server):
    r = sessie().get(f"{server.url}/api/v1", timeout=10)       # a client that follows redirects
    assert [h.status_code for h in r.history] == [301]
    assert r.history[0].headers["Location"] == f"{server.url}/api/v1/"
    assert r.status_code == 200 and r.json() == {"klanten": f"{server.url}/api/v1/klanten"}


def test_head_on_the_api_root_has_the_get_headers_and_no_body(server):
    get = sessie().get(f"{server.url}/api/v1/", timeout=10)
    status, headers, body = raw_request(server.url, "HEAD", "/api/v1/")
    assert status == 200
    assert body == b""
    assert headers["content-length"] == get.headers["Content-Length"] == str(len(get.content))
    assert headers["content-type"] == "application/json"
    assert headers["api-version"] == "1.0.0"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_the_api_root_are_405(server, method):
    r = sessie().request(method, f"{server.url}/api/v1/", json={}, timeout=10)
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.headers["API-version"] == "1.0.0"
    assert r.json()["detail"] == f'Methode "{method}" niet toegestaan.'


def test_api_root_negotiates_like_the_resources(server):
    assert sessie().get(f"{server.url}/api/v1/", headers={"Accept": "text/html"}, timeout=10).status_code == 406
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert sessie().get(f"{server.url}/api/v1/", headers={"Accept": browser}, timeout=10).status_code == 200


def test_cors_preflight_on_the_api_root(server):
    r = sessie().options(f"{server.url}/api/v1/", headers={"Origin": "https://app.example",
                                                           "Access-Control-Request-Method": "GET"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_api_root_and_its_redirects_appear_in_the_request_log_as_known_paths(server):
    ids = {pad: str(uuid.uuid4()) for pad in ("/api/v1/", "/api/v1", "/api/v1/schema")}
    with vang_logs() as vanger:
        for pad, request_id in ids.items():
            sessie().get(f"{server.url}{pad}", headers={"X-Request-ID": request_id}, allow_redirects=False,
                         timeout=10)
        time.sleep(0.2)
    per_id = {e["request_id"]: e for e in vanger.events("request")}
    assert [(per_id[ids[p]]["path"], per_id[ids[p]]["status"]) for p in ids] == [
        ("/api/v1/", 200), ("/api/v1", 301), ("/api/v1/schema", 301)]
