"""The audit trail of a klant: which writes make a row, the exact row, and the two endpoints.

Sources: reference-behaviour.md §6 (rows, field values, endpoints), §3b (X-Audit-Toelichting, X-NLX-Logrecord-ID),
§9.5 (the reference's audit-trail tests); DECISIONS #9 (bron "kc"), #10 (applicatieId = client_id,
applicatieWeergave = label), #11 (existing klant without rows → []), #4 (ETag on audittrail_read).
"""
from __future__ import annotations

import datetime as dt
import re
import time

import jwt
import pytest
import sqlalchemy as sa

from conftest import ALLE, BRONORGANISATIE, SECRET, klant_body
from storage.tables import audittrail

PROBLEM = "application/problem+json"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
INSTANCE = re.compile(r"urn:uuid:" + UUID.pattern)
AANMAAKDATUM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
ETAG = re.compile(r'"[0-9a-f]{32}"')
REGEL_KEYS = ["uuid", "bron", "applicatieId", "applicatieWeergave", "gebruikersId", "gebruikersWeergave", "actie",
              "actieWeergave", "resultaat", "hoofdObject", "resource", "resourceUrl", "toelichting", "resourceWeergave",
              "aanmaakdatum", "wijzigingen"]
ACTIE_WEERGAVE = {"create": "Object aangemaakt", "update": "Object bijgewerkt",
                  "partial_update": "Object deels bijgewerkt"}
ONBEKEND = "00000000-0000-4000-8000-000000000000"


def nu() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def maak(api, headers=None, **overrides) -> dict:
    r = api.post("/klanten", klant_body(**overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def regels(api, klant_url: str) -> list[dict]:
    r = api.get(klant_url + "/audittrail")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert isinstance(body, list)        # a plain array, no pagination envelope
    return body


def verwacht(klant_url: str, actie: str, resultaat: int, weergave: str, oud, nieuw, toelichting: str = "") -> dict:
    return {"bron": "kc", "applicatieId": ALLE, "applicatieWeergave": "Alles app",
            "gebruikersId": "test-gebruiker", "gebruikersWeergave": "Test Gebruiker",
            "actie": actie, "actieWeergave": ACTIE_WEERGAVE[actie], "resultaat": resultaat,
            "hoofdObject": klant_url, "resource": "klant", "resourceUrl": klant_url, "toelichting": toelichting,
            "resourceWeergave": weergave, "wijzigingen": {"oud": oud, "nieuw": nieuw}}


def assert_regel(regel: dict, expected: dict, voor: dt.datetime, na: dt.datetime) -> None:
    """The exact row: uuid and aanmaakdatum by form (and time window), everything else by value, in the
    reference's key order."""
    assert list(regel) == REGEL_KEYS
    assert list(regel["wijzigingen"]) == ["oud", "nieuw"]
    assert UUID.fullmatch(regel["uuid"]), regel["uuid"]
    assert AANMAAKDATUM.fullmatch(regel["aanmaakdatum"]), regel["aanmaakdatum"]
    moment = dt.datetime.fromisoformat(regel["aanmaakdatum"].replace("Z", "+00:00"))
    marge = dt.timedelta(seconds=1)
    assert voor - marge <= moment <= na + marge, (voor, moment, na)
    assert {k: v for k, v in regel.items() if k not in ("uuid", "aanmaakdatum")} == expected


def assert_not_found(r) -> None:
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json()
    assert INSTANCE.fullmatch(body["instance"])
    base = re.match(r"^https?://[^/]+", r.url).group(0)
    assert body == {"type": f"{base}/ref/fouten/NotFound/", "code": "not_found", "title": "Niet gevonden.",
                    "status": 404, "detail": "Niet gevonden.", "instance": body["instance"]}


# ---------------------------------------------------------------- rows per write
def test_create_writes_one_row(api):
    voor = nu()
    klant = maak(api, headers={"X-Audit-Toelichting": "aanmaak via test"})
    na = nu()
    [regel] = regels(api, klant["url"])
    assert_regel(regel, verwacht(klant["url"], "create", 201, f"{BRONORGANISATIE} - 1111", None, klant,
                                 toelichting="aanmaak via test"), voor, na)


def test_put_writes_an_update_row(api):
    klant = maak(api)
    voor = nu()
    r = api.put(klant["url"], klant_body(klantnummer="3333", functie="directeur", voornaam="Jan"),
                headers={"X-Audit-Toelichting": "verhuisd"})
    na = nu()
    assert r.status_code == 200, r.text
    bijgewerkt = r.json()
    assert bijgewerkt["klantnummer"] == "3333"
    eerste, tweede = regels(api, klant["url"])
    assert eerste["actie"] == "create"
    # resourceWeergave is that of the object BEFORE the change
    assert_regel(tweede, verwacht(klant["url"], "update", 200, f"{BRONORGANISATIE} - 1111", klant, bijgewerkt,
                                  toelichting="verhuisd"), voor, na)


def test_patch_writes_a_partial_update_row(api):
    klant = maak(api)
    voor = nu()
    r = api.patch(klant["url"], {"klantnummer": "2222", "emailadres": "jan@example.com"})
    na = nu()
    assert r.status_code == 200, r.text
    bijgewerkt = r.json()
    assert (bijgewerkt["klantnummer"], bijgewerkt["emailadres"]) == ("2222", "jan@example.com")
    eerste, tweede = regels(api, klant["url"])
    assert eerste["wijzigingen"] == {"oud": None, "nieuw": klant}
    # no X-Audit-Toelichting: toelichting ""; resourceWeergave still shows the old klantnummer
    assert_regel(tweede, verwacht(klant["url"], "partial_update", 200, f"{BRONORGANISATIE} - 1111", klant,
                                  bijgewerkt), voor, na)


def test_each_write_stores_its_own_toelichting(api):
    klant = maak(api, headers={"X-Audit-Toelichting": "een"})
    assert api.patch(klant["url"], {"functie": "a"}).status_code == 200
    assert api.patch(klant["url"], {"functie": "b"}, headers={"X-Audit-Toelichting": "drie"}).status_code == 200
    assert api.put(klant["url"], klant_body(functie="c"), headers={"X-Audit-Toelichting": "vier"}).status_code == 200
    assert [r["toelichting"] for r in regels(api, klant["url"])] == ["een", "", "drie", "vier"]


NEDERLANDS = "Verhuisd naar de Ëikenlaan; café-eigenaar, één brief, € 25 (ongeveer), 🏠✉️ – ‘zie’ dossier"


def test_toelichting_in_utf8_is_stored_as_sent(api):
    """Clients send X-Audit-Toelichting as UTF-8 bytes: é, ë, €, an emoji come back unchanged (not "Ã©")."""
    klant = maak(api, headers={"X-Audit-Toelichting": NEDERLANDS.encode("utf-8")})
    assert api.patch(klant["url"], {"functie": "a"},
                     headers={"X-Audit-Toelichting": "één".encode("utf-8")}).status_code == 200
    assert api.put(klant["url"], klant_body(functie="b"),
                   headers={"X-Audit-Toelichting": "Noël 🎄".encode("utf-8")}).status_code == 200
    assert [r["toelichting"] for r in regels(api, klant["url"])] == [NEDERLANDS, "één", "Noël 🎄"]
    eerste = regels(api, klant["url"])[0]
    assert api.get(f'{klant["url"]}/audittrail/{eerste["uuid"]}').json()["toelichting"] == NEDERLANDS


def test_toelichting_in_latin1_is_read_as_latin1(api):
    """Bytes that are not valid UTF-8 are the historical latin-1 of HTTP headers (RFC 9110 §5.5)."""
    klant = maak(api, headers={"X-Audit-Toelichting": "café, één".encode("latin-1")})
    assert [r["toelichting"] for r in regels(api, klant["url"])] == ["café, één"]


def test_control_characters_in_the_toelichting_become_spaces(api):
    klant = maak(api, headers={"X-Audit-Toelichting": "een\ttwee\u0085drie\u200bvier".encode("utf-8")})
    assert [r["toelichting"] for r in regels(api, klant["url"])] == ["een twee drie vier"]


def assert_toelichting_te_lang(r) -> None:
    assert r.status_code == 400, r.text[:500]
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json()
    assert (body["code"], body["title"], body["detail"]) == ("invalid", "Invalid input.",
                                                             "Er is een validatiefout opgetreden.")
    assert body["invalidParams"] == [{"name": "X-Audit-Toelichting", "code": "max_length",
                                      "reason": "Zorg ervoor dat dit veld niet meer dan 1000 karakters bevat."}]


def test_toelichting_of_1000_characters_is_stored(api):
    lang = ("é" * 999 + "🏠").encode("utf-8")          # 1000 characters, 2002 bytes
    klant = maak(api, headers={"X-Audit-Toelichting": lang})
    assert [r["toelichting"] for r in regels(api, klant["url"])] == ["é" * 999 + "🏠"]


@pytest.mark.parametrize("lengte", [1001, 60 * 1024], ids=["1001 characters", "60 KiB"])
def test_overlong_toelichting_is_refused_and_nothing_is_written(api, lengte):
    """No maxLength in the spec; an audit record must not be cut silently: 400 on the header, nothing written."""
    klant = maak(api)
    voor = regels(api, klant["url"])
    te_lang = b"a" * lengte
    assert_toelichting_te_lang(api.post("/klanten", klant_body(klantnummer="2"),
                                        headers={"X-Audit-Toelichting": te_lang}))
    assert_toelichting_te_lang(api.patch(klant["url"], {"functie": "x"}, headers={"X-Audit-Toelichting": te_lang}))
    assert_toelichting_te_lang(api.put(klant["url"], klant_body(functie="x"),
                                       headers={"X-Audit-Toelichting": te_lang}))
    assert api.get("/klanten").json()["count"] == 1
    assert api.get(klant["url"]).json() == klant
    assert regels(api, klant["url"]) == voor


def test_a_toelichting_beyond_the_header_limit_is_431_and_nothing_is_written(api):
    """5 MiB never reaches the application: the transport refuses headers above KLANTEN_MAX_HEADER_BYTES."""
    klant = maak(api)
    voor = regels(api, klant["url"])
    te_lang = b"a" * (5 * 1024 * 1024)
    for r in (api.post("/klanten", klant_body(klantnummer="2"), headers={"X-Audit-Toelichting": te_lang}),
              api.patch(klant["url"], {"functie": "x"}, headers={"X-Audit-Toelichting": te_lang})):
        assert r.status_code == 431, r.text[:200]
    assert api.get("/klanten").json()["count"] == 1
    assert api.get(klant["url"]).json() == klant
    assert regels(api, klant["url"]) == voor


def test_rows_are_ordered_by_time_and_chain_oud_to_nieuw(api):
    klant = maak(api)
    antwoorden = [klant]
    for methode, body in [("PATCH", {"functie": "a"}), ("PUT", klant_body(functie="b")),
                          ("PATCH", {"voornaam": "Jan"}), ("PATCH", {"adres": {"straatnaam": "Dorpsstraat"}})]:
        r = api.request(methode, klant["url"], json=body)
        assert r.status_code == 200, r.text
        antwoorden.append(r.json())
    lijst = regels(api, klant["url"])
    assert [r["actie"] for r in lijst] == ["create", "partial_update", "update", "partial_update", "partial_update"]
    assert [r["resultaat"] for r in lijst] == [201, 200, 200, 200, 200]
    momenten = [dt.datetime.fromisoformat(r["aanmaakdatum"].replace("Z", "+00:00")) for r in lijst]
    assert momenten == sorted(momenten)
    assert len({r["uuid"] for r in lijst}) == 5
    assert [r["wijzigingen"]["nieuw"] for r in lijst] == antwoorden
    assert [r["wijzigingen"]["oud"] for r in lijst] == [None] + antwoorden[:-1]


def test_gebruiker_comes_from_the_jwt_and_defaults_to_empty(api):
    claims = {"iss": ALLE, "iat": int(time.time()), "client_id": ALLE}
    kaal = jwt.encode(claims, SECRET, algorithm="HS256")
    r = api.post("/klanten", klant_body(), auth=False, headers={"Authorization": f"Bearer {kaal}"})
    assert r.status_code == 201, r.text
    anders = jwt.encode({**claims, "user_id": "u-123", "user_representation": "Jan Jansen"}, SECRET,
                        algorithm="HS256")
    assert api.patch(r.json()["url"], {"functie": "x"}, auth=False,
                     headers={"Authorization": f"Bearer {anders}"}).status_code == 200
    eerste, tweede = regels(api, r.json()["url"])
    assert (eerste["gebruikersId"], eerste["gebruikersWeergave"]) == ("", "")
    assert (tweede["gebruikersId"], tweede["gebruikersWeergave"]) == ("u-123", "Jan Jansen")
    assert (eerste["applicatieId"], eerste["applicatieWeergave"]) == (ALLE, "Alles app")


def test_logrecord_id_is_stored_but_never_shown(api, engine):
    klant = maak(api, headers={"X-NLX-Logrecord-ID": "nlx-log-4711"})
    assert api.patch(klant["url"], {"functie": "x"}, headers={"X-NLX-Logrecord-ID": "nlx-log-4712"}).status_code == 200
    lijst = api.get(klant["url"] + "/audittrail")
    assert lijst.status_code == 200
    teksten = [lijst.text] + [api.get(klant["url"] + "/audittrail/" + r["uuid"]).text for r in lijst.json()]
    for tekst in teksten:
        assert "nlx-log-47" not in tekst
        assert "logrecord" not in tekst.lower()
    for regel in lijst.json():
        assert list(regel) == REGEL_KEYS
    with engine.connect() as conn:
        opgeslagen = conn.execute(sa.select(audittrail.c.logrecord_id).order_by(audittrail.c.id)).scalars().all()
    assert opgeslagen == ["nlx-log-4711", "nlx-log-4712"]


def test_failed_writes_add_no_row(api):
    klant = maak(api)
    mislukt = [
        api.post("/klanten", {}),                                                   # required fields
        api.post("/klanten", klant_body()),                                         # duplicate (kla-001)
        api.post("/klanten", klant_body(klantnummer="x", bronorganisatie="123456789")),  # 11-proef
        api.patch(klant["url"], {"subjectType": "vestiging"}),                      # immutable
        api.patch(klant["url"], {"adres": {"huisnummer": "abc"}}),
        api.patch(klant["url"], {"klantnummer": "123456789"}),                      # too long
        api.put(klant["url"], {"functie": "x"}),                                    # PUT needs the required fields
        api.put(klant["url"], klant_body(emailadres="geen-email")),
        api.patch(klant["url"], data=b"{bad", headers={"Content-Type": "application/json"}),
    ]
    for r in mislukt:
        assert r.status_code == 400, (r.request.method, r.request.body, r.status_code, r.text)
    for r in (api.patch(klant["url"], data=b"{}", headers={"Content-Type": "text/plain"}),
              api.patch(f"/klanten/{ONBEKEND}", {"functie": "x"}), api.put(f"/klanten/{ONBEKEND}", klant_body())):
        assert r.status_code in (404, 415), r.text
    assert api.get(klant["url"]).json() == klant
    assert [r["actie"] for r in regels(api, klant["url"])] == ["create"]
    assert api.get("/klanten").json()["count"] == 1


def test_reads_add_no_row(api):
    klant = maak(api)
    api.get(klant["url"])
    api.get("/klanten")
    api.request("HEAD", klant["url"])
    rij = regels(api, klant["url"])
    api.get(klant["url"] + "/audittrail/" + rij[0]["uuid"])
    assert len(regels(api, klant["url"])) == 1


def test_rows_belong_to_their_own_klant(api):
    een = maak(api, klantnummer="1")
    twee = maak(api, klantnummer="2")
    assert api.patch(twee["url"], {"functie": "x"}).status_code == 200
    assert [r["hoofdObject"] for r in regels(api, een["url"])] == [een["url"]]
    assert [r["hoofdObject"] for r in regels(api, twee["url"])] == [twee["url"], twee["url"]]


# ---------------------------------------------------------------- audittrail_read
def test_audittrail_read_returns_one_row_exactly(api):
    klant = maak(api, headers={"X-Audit-Toelichting": "aanmaak"})
    r = api.patch(klant["url"], {"functie": "x"})
    lijst = regels(api, klant["url"])
    for regel in lijst:
        read = api.get(klant["url"] + "/audittrail/" + regel["uuid"])
        assert read.status_code == 200, read.text
        assert read.headers["Content-Type"] == "application/json"
        assert read.json() == regel
        assert list(read.json()) == REGEL_KEYS
    tweede = api.get(klant["url"] + "/audittrail/" + lijst[1]["uuid"]).json()
    assert {k: v for k, v in tweede.items() if k not in ("uuid", "aanmaakdatum")} == verwacht(
        klant["url"], "partial_update", 200, f"{BRONORGANISATIE} - 1111", klant, r.json())


def test_etag_and_304_on_audittrail_read(api):
    klant = maak(api)
    [regel] = regels(api, klant["url"])
    url = klant["url"] + "/audittrail/" + regel["uuid"]
    r = api.get(url)
    etag = r.headers.get("ETag")
    assert etag and ETAG.fullmatch(etag), r.headers
    for waarde in (etag, f'"0123456789abcdef0123456789abcdef", {etag}', f"W/{etag}", "*"):
        niet_gewijzigd = api.get(url, headers={"If-None-Match": waarde})
        assert niet_gewijzigd.status_code == 304, waarde
        assert niet_gewijzigd.content == b""
        assert "Content-Type" not in niet_gewijzigd.headers
        assert niet_gewijzigd.headers["ETag"] == etag
        assert niet_gewijzigd.headers["API-version"] == "1.0.0"
    ander = api.get(url, headers={"If-None-Match": '"0123456789abcdef0123456789abcdef"'})
    assert ander.status_code == 200
    assert ander.json() == regel
    head = api.request("HEAD", url)
    assert head.status_code == 200
    assert head.headers["ETag"] == etag
    # a row never changes, so its tag stays valid after further writes to the klant
    assert api.patch(klant["url"], {"functie": "x"}).status_code == 200
    assert api.get(url, headers={"If-None-Match": etag}).status_code == 304
    # another klant's row has another tag
    andere = maak(api, klantnummer="2")
    [andere_regel] = regels(api, andere["url"])
    assert api.get(andere["url"] + "/audittrail/" + andere_regel["uuid"]).headers["ETag"] != etag


# ---------------------------------------------------------------- 404s
def test_unknown_klant_is_404(api):
    assert_not_found(api.get(f"/klanten/{ONBEKEND}/audittrail"))
    assert_not_found(api.get(f"/klanten/{ONBEKEND}/audittrail/{ONBEKEND}"))


def test_unknown_row_of_an_existing_klant_is_404(api):
    klant = maak(api)
    assert_not_found(api.get(klant["url"] + f"/audittrail/{ONBEKEND}"))


def test_row_of_another_klant_is_404(api):
    een = maak(api, klantnummer="1")
    twee = maak(api, klantnummer="2")
    [rij_twee] = regels(api, twee["url"])
    assert_not_found(api.get(een["url"] + "/audittrail/" + rij_twee["uuid"]))
    assert api.get(twee["url"] + "/audittrail/" + rij_twee["uuid"]).status_code == 200


@pytest.mark.parametrize("fout", ["niet-een-uuid", "1234", "00000000-0000-4000-8000-00000000000g"])
def test_malformed_uuids_are_404(api, fout):
    klant = maak(api)
    [regel] = regels(api, klant["url"])
    assert_not_found(api.get(f"/klanten/{fout}/audittrail"))
    assert_not_found(api.get(f"/klanten/{fout}/audittrail/{regel['uuid']}"))
    assert_not_found(api.get(klant["url"] + f"/audittrail/{fout}"))


def test_delete_removes_the_rows_of_the_klant(api):
    klant = maak(api)
    assert api.patch(klant["url"], {"functie": "x"}).status_code == 200
    ander = maak(api, klantnummer="2")
    lijst = regels(api, klant["url"])
    assert len(lijst) == 2
    assert api.delete(klant["url"]).status_code == 204
    assert_not_found(api.get(klant["url"] + "/audittrail"))
    for regel in lijst:
        assert_not_found(api.get(klant["url"] + "/audittrail/" + regel["uuid"]))
    # a delete writes no row anywhere and leaves other klanten's rows alone
    assert [r["actie"] for r in regels(api, ander["url"])] == ["create"]


def test_delete_removes_the_rows_from_storage(api, engine):
    klant = maak(api)
    ander = maak(api, klantnummer="2")
    assert api.delete(klant["url"]).status_code == 204
    with engine.connect() as conn:
        over = conn.execute(sa.select(audittrail.c.hoofd_object)).scalars().all()
    assert over == [ander["url"]]


def test_existing_klant_without_rows_has_an_empty_trail(api, engine):
    """DECISIONS #11: [] for an existing klant without rows (e.g. rows removed outside the API); 404 only for an
    unknown klant."""
    klant = maak(api)
    with engine.begin() as conn:
        conn.execute(sa.delete(audittrail))
    r = api.get(klant["url"] + "/audittrail")
    assert r.status_code == 200, r.text
    assert r.json() == []


# ---------------------------------------------------------------- authorisation
def test_audittrail_needs_the_audittrails_scope(api):
    klant = maak(api)
    [regel] = regels(api, klant["url"])
    for pad in ("/audittrail", "/audittrail/" + regel["uuid"]):
        assert api.as_client("lezer").get(klant["url"] + pad).status_code == 403
        assert api.get(klant["url"] + pad, auth=False).status_code == 403
        assert api.as_client("auditlezer").get(klant["url"] + pad).status_code == 200
