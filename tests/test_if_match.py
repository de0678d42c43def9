"""If-Match on PUT, PATCH and DELETE of a klant (DECISIONS #27, RFC 9110 §13.1.1), over real HTTP.

The condition is evaluated against the klant's current ETag (the one klant_read serves) inside the write
transaction: a mismatch is 412 and nothing is written (no klant change, no audit row, no outbox message).
"""
from __future__ import annotations

import threading

import pytest
import requests
import sqlalchemy as sa

from conftest import Api, geldig_rsin, klant_body
from storage.tables import audittrail, klant as klant_tabel, notificatie
from test_http import ETAG, assert_problem

PRECONDITION_FAILED = ("PreconditionFailed", "precondition_failed", "Voorwaarde is niet vervuld")
DETAIL_412 = ("De klant is gewijzigd sinds de opgegeven versie: If-Match komt niet overeen met de huidige ETag. "
              "Haal de klant opnieuw op en probeer het nog eens.")
ONBEKEND = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def nrc(httpserver):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    return httpserver


@pytest.fixture
def api(server_factory, nrc) -> Api:
    """A server with a Notificaties API, so that every write also queues an outbox message; the relay is off,
    so the outbox keeps every message for the tests to count."""
    srv = server_factory(notifications_api_url=nrc.url_for("/api/v1/"), notifications_client_id="nrc",
                         notifications_secret="nrc-secret-for-the-if-match-tests", notifications_relay=False)
    return Api(srv.url)


def tellingen(engine) -> dict:
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (klant_tabel, audittrail, notificatie)}


def huidig(api, url: str) -> tuple[dict, str]:
    r = api.get(url)
    assert r.status_code == 200, r.text
    assert ETAG.fullmatch(r.headers["ETag"])
    return r.json(), r.headers["ETag"]


@pytest.fixture
def klant(api) -> dict:
    r = api.post("/klanten", klant_body(adres={"straatnaam": "Eikenlaan", "huisnummer": 12, "postcode": "1234AB",
                                               "woonplaatsNaam": "Één", "landcode": "NL"}))
    assert r.status_code == 201, r.text
    return r.json()


WRITES = {
    "PUT": lambda api, url, h: api.put(url, klant_body(functie="nieuw"), headers=h),
    "PATCH": lambda api, url, h: api.patch(url, {"functie": "nieuw"}, headers=h),
    "DELETE": lambda api, url, h: api.delete(url, headers=h),
}


def assert_412_and_nothing_written(api, engine, url: str, voor: dict, r) -> None:
    assert_problem(r, 412, PRECONDITION_FAILED, DETAIL_412)
    assert "ETag" not in r.headers
    assert tellingen(engine) == voor["tellingen"]
    assert api.get(url).json() == voor["klant"]
    assert api.get(url + "/audittrail").json() == voor["audit"]


def momentopname(api, engine, url: str) -> dict:
    return {"tellingen": tellingen(engine), "klant": api.get(url).json(), "audit": api.get(url + "/audittrail").json()}


# ---------------------------------------------------------------- mismatch: 412, nothing written
@pytest.mark.parametrize("methode", WRITES)
def test_a_stale_etag_is_412_and_nothing_is_written(api, engine, klant, methode):
    _, oud = huidig(api, klant["url"])
    assert api.patch(klant["url"], {"functie": "tussendoor"}).status_code == 200    # someone else's change
    voor = momentopname(api, engine, klant["url"])
    assert tellingen(engine)["notificatie"] == 2          # the outbox counts: create + the change
    assert_412_and_nothing_written(api, engine, klant["url"], voor, WRITES[methode](api, klant["url"],
                                                                                    {"If-Match": oud}))


@pytest.mark.parametrize("methode", WRITES)
@pytest.mark.parametrize("if_match", ['"00000000000000000000000000000000"', "onzin", '"a", "b"', '""'])
def test_another_tag_is_412(api, engine, klant, methode, if_match):
    voor = momentopname(api, engine, klant["url"])
    assert_412_and_nothing_written(api, engine, klant["url"], voor, WRITES[methode](api, klant["url"],
                                                                                    {"If-Match": if_match}))


@pytest.mark.parametrize("methode", WRITES)
def test_a_weak_tag_never_matches(api, engine, klant, methode):
    """RFC 9110 §13.1.1: If-Match uses the strong comparison; W/ of the current tag is not a match."""
    _, etag = huidig(api, klant["url"])
    voor = momentopname(api, engine, klant["url"])
    assert_412_and_nothing_written(api, engine, klant["url"], voor, WRITES[methode](api, klant["url"],
                                                                                    {"If-Match": f"W/{etag}"}))


def test_412_comes_before_validation_of_the_body(api, engine, klant):
    """RFC 9110 §13.2.2: the precondition is evaluated before the request content is processed."""
    voor = momentopname(api, engine, klant["url"])
    r = api.patch(klant["url"], {"emailadres": "geen e-mailadres", "subjectType": "vestiging"},
                  headers={"If-Match": '"0"'})
    assert_412_and_nothing_written(api, engine, klant["url"], voor, r)


@pytest.mark.parametrize("methode", WRITES)
def test_an_unknown_klant_stays_404(api, methode):
    for if_match in ("*", '"0"'):
        r = WRITES[methode](api, f"/klanten/{ONBEKEND}", {"If-Match": if_match})
        assert r.status_code == 404, r.text


# ---------------------------------------------------------------- match: the write goes ahead
@pytest.mark.parametrize("methode", ["PUT", "PATCH"])
def test_the_current_etag_lets_the_write_through_and_the_answer_carries_the_new_one(api, engine, klant, methode):
    _, etag = huidig(api, klant["url"])
    r = WRITES[methode](api, klant["url"], {"If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["functie"] == "nieuw"
    nieuw, nieuwe_etag = huidig(api, klant["url"])
    assert r.headers["ETag"] == nieuwe_etag != etag       # the answer's ETag is the one GET serves now
    assert r.json() == nieuw
    # the answer's tag is good for the next conditional write; the old one is not any more
    assert api.patch(klant["url"], {"functie": "daarna"}, headers={"If-Match": r.headers["ETag"]}).status_code == 200
    assert api.patch(klant["url"], {"functie": "te laat"}, headers={"If-Match": etag}).status_code == 412
    assert [a["actie"] for a in api.get(klant["url"] + "/audittrail").json()] == \
        ["create", "partial_update" if methode == "PATCH" else "update", "partial_update"]


def test_the_answer_etag_of_a_nested_klant_matches_get_on_this_database(api, subject_url):
    """The ETag of a PUT/PATCH answer must be the one GET serves afterwards, also for nested parts as the
    database hands them back (subjectIdentificatie with its addresses, adres)."""
    sid = {"inpBsn": geldig_rsin(7), "geslachtsnaam": "Éénhoorn", "voornamen": "Zoë",
           "verblijfsadres": {"aoaIdentificatie": "1", "wplWoonplaatsNaam": "Één", "gorOpenbareRuimteNaam": "Straße",
                              "aoaHuisnummer": 3},
           "subVerblijfBuitenland": {"lndLandcode": "BE", "lndLandnaam": "België", "subAdresBuitenland_1": "x"}}
    r = api.post("/klanten", klant_body(subjectIdentificatie=sid, adres={"straatnaam": "Ç", "huisnummer": 1}))
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    etag = huidig(api, url)[1]
    verhuisd = {"aoaIdentificatie": "2", "gorOpenbareRuimteNaam": "Dorpsstraat", "aoaHuisnummer": 4}
    for methode, body in (("PATCH", {"subjectIdentificatie": {"voornamen": "Anaïs", "verblijfsadres": verhuisd},
                                     "adres": {"postcode": "1234AB"}}),
                          ("PUT", klant_body(subject=subject_url, subjectIdentificatie={"geslachtsnaam": "Ølsen"},
                                             adres={"woonplaatsNaam": "Ürk", "huisnummer": 2})),
                          ("PATCH", {"subjectIdentificatie": None})):
        r = api.request(methode, url, json=body, headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        etag = r.headers["ETag"]
        assert huidig(api, url) == (r.json(), etag), methode


def test_star_matches_any_current_version(api, klant):
    assert api.patch(klant["url"], {"functie": "a"}, headers={"If-Match": "*"}).status_code == 200
    assert api.put(klant["url"], klant_body(functie="b"), headers={"If-Match": "*"}).status_code == 200
    assert api.delete(klant["url"], headers={"If-Match": "*"}).status_code == 204
    assert api.get(klant["url"]).status_code == 404


def test_one_of_several_tags_is_enough(api, klant):
    _, etag = huidig(api, klant["url"])
    r = api.patch(klant["url"], {"functie": "a"}, headers={"If-Match": f'"0", W/{etag} , {etag}'})
    assert r.status_code == 200, r.text


def test_delete_with_the_current_etag(api, engine, klant):
    _, etag = huidig(api, klant["url"])
    voor = tellingen(engine)
    assert api.delete(klant["url"], headers={"If-Match": etag}).status_code == 204
    assert api.get(klant["url"]).status_code == 404
    assert tellingen(engine)["notificatie"] == voor["notificatie"] + 1     # destroy queued


def test_without_if_match_nothing_changes(api, klant):
    """If-Match is the client's choice: without it (or blank) writes are unconditional, as before."""
    assert api.patch(klant["url"], {"functie": "a"}).status_code == 200
    assert api.patch(klant["url"], {"functie": "b"}, headers={"If-Match": ""}).status_code == 200


# ---------------------------------------------------------------- lost updates
def test_a_change_between_get_and_patch_is_detected(api, engine, klant):
    """Two clients read the same version; the first write wins, the second gets 412 instead of overwriting."""
    a_klant, a_etag = huidig(api, klant["url"])
    b_klant, b_etag = huidig(api, klant["url"])
    assert a_etag == b_etag
    assert api.patch(klant["url"], {"telefoonnummer": "0201234567"}, headers={"If-Match": a_etag}).status_code == 200
    voor = momentopname(api, engine, klant["url"])
    r = api.patch(klant["url"], {"emailadres": "b@example.com"}, headers={"If-Match": b_etag})
    assert_412_and_nothing_written(api, engine, klant["url"], voor, r)
    assert api.get(klant["url"]).json()["telefoonnummer"] == "0201234567"


def test_concurrent_conditional_patches_one_wins(api, engine, klant):
    """Eight clients PATCH the same version at once: exactly one 200, the rest 412 (the check is on the locked
    row inside the write transaction, so none slips between another's check and write)."""
    _, etag = huidig(api, klant["url"])
    start = threading.Barrier(8)
    uitkomsten: list[int] = []

    def schrijf(i: int) -> None:
        sessie = Api(api.base)
        start.wait(10)
        r = sessie.patch(klant["url"], {"functie": f"client {i}"}, headers={"If-Match": etag})
        uitkomsten.append(r.status_code)

    draden = [threading.Thread(target=schrijf, args=(i,)) for i in range(8)]
    for d in draden:
        d.start()
    for d in draden:
        d.join(60)
    assert sorted(uitkomsten) == [200] + [412] * 7
    assert len(api.get(klant["url"] + "/audittrail").json()) == 2
    assert tellingen(engine)["notificatie"] == 2


def test_a_change_while_the_subject_is_fetched_is_detected(api, engine, httpserver, klant):
    """With a subject, validation (kla-002, an HTTP call) runs before the write transaction. A change that
    lands during that call must still be caught: the condition is checked again on the locked row."""
    _, etag = huidig(api, klant["url"])
    andere = Api(api.base)
    gewijzigd = []

    def subject_tussendoor(request):
        from werkzeug import Response
        r = andere.patch(klant["url"], {"functie": "tussendoor"})      # another client's write, meanwhile
        gewijzigd.append(r.status_code)
        return Response("ok", status=200)

    httpserver.expect_request("/subject/traag").respond_with_handler(subject_tussendoor)
    r = api.patch(klant["url"], {"subject": httpserver.url_for("/subject/traag"), "functie": "van mij"},
                  headers={"If-Match": etag})
    assert gewijzigd == [200]
    assert_problem(r, 412, PRECONDITION_FAILED, DETAIL_412)
    assert api.get(klant["url"]).json()["functie"] == "tussendoor"
    assert [a["actie"] for a in api.get(klant["url"] + "/audittrail").json()] == ["create", "partial_update"]
    assert tellingen(engine)["notificatie"] == 2


def test_a_stale_etag_with_a_subject_is_412_without_fetching_it(api, httpserver, klant):
    _, etag = huidig(api, klant["url"])
    assert api.patch(klant["url"], {"functie": "tussendoor"}).status_code == 200
    httpserver.expect_request("/subject/200").respond_with_data("ok", status=200)
    aantal = len(httpserver.log)
    r = api.put(klant["url"], klant_body(subject=httpserver.url_for("/subject/200")), headers={"If-Match": etag})
    assert r.status_code == 412, r.text
    assert len(httpserver.log) == aantal


def test_cors_preflight_allows_if_match(server):
    r = requests.options(f"{server.url}/api/v1/klanten/{ONBEKEND}", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type, if-match"}, timeout=10)
    assert r.status_code == 200
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert "if-match" in allowed
