"""klant_list: the 19 filters of the spec, their validation, unknown parameters and pagination.

Sources: reference-behaviour.md §7 (7.1 filters, 7.2 unknown parameters, 7.3 pagination and order), §9.2
(KlantFilterTests), §2.4/2.6 (error bodies and messages); DECISIONS #3 (problem+json), #15 (unknown parameters).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from conftest import BRONORGANISATIE, geldig_rsin, klant_body

PROBLEM = "application/problem+json"
INSTANCE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# README Differences #3: `detail` of a validation error is never empty (the reference sends "").
VALIDATIE_DETAIL = "Er is een validatiefout opgetreden."
PAGINA = 100

RSIN_A, RSIN_B = geldig_rsin(101), geldig_rsin(202)
BSN_A, BSN_B = geldig_rsin(303), geldig_rsin(404)
NNP_A, NNP_B = geldig_rsin(505), geldig_rsin(606)


def maak(api, **overrides) -> dict:
    r = api.post("/klanten", klant_body(**overrides))
    assert r.status_code == 201, r.text
    return r.json()


def lijst(api, params=None, **kw):
    query = ("?" + urlencode(params)) if params else ""
    return api.get("/klanten" + query, **kw)


def assert_pagina(r, count: int, results: list, nxt=None, prev=None) -> None:
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert list(body) == ["count", "next", "previous", "results"]
    assert body == {"count": count, "next": nxt, "previous": prev, "results": results}


def assert_validatiefout(r, invalid_params: list) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"] == PROBLEM
    assert r.headers["API-version"] == "1.0.0"
    body = r.json()
    assert INSTANCE.fullmatch(body["instance"])
    base = api_base(r.url)
    assert body == {"type": f"{base}/ref/fouten/ValidationError/", "code": "invalid", "title": "Invalid input.",
                    "status": 400, "detail": VALIDATIE_DETAIL, "instance": body["instance"],
                    "invalidParams": invalid_params}
    assert list(body) == ["type", "code", "title", "status", "detail", "instance", "invalidParams"]


def assert_ongeldige_pagina(r) -> None:
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json()
    assert INSTANCE.fullmatch(body["instance"])
    assert body == {"type": f"{api_base(r.url)}/ref/fouten/NotFound/", "code": "not_found",
                    "title": "Niet gevonden.", "status": 404, "detail": "Ongeldige pagina.",
                    "instance": body["instance"]}


def api_base(url: str) -> str:
    return re.match(r"^https?://[^/]+", url).group(0)


# ---------------------------------------------------------------- the 19 filters
NP = "natuurlijk_persoon"
NNP = "niet_natuurlijk_persoon"
VESTIGING = "vestiging"


def _np(**sid):
    return {"subjectType": NP, "subjectIdentificatie": {"geslachtsnaam": "Testpersoon", **sid}}


def _nnp(**sid):
    return {"subjectType": NNP, "subjectIdentificatie": {"statutaireNaam": "Test BV", **sid}}


def _vestiging(**sid):
    return {"subjectType": VESTIGING, "subjectIdentificatie": {"handelsnaam": ["Test"], **sid}}


# filter, overrides of klant A, overrides of klant B, query value for A, query value for B,
# a value that must NOT match A (exactness / case-sensitivity) or None
FILTERS = [
    ("bronorganisatie", {"bronorganisatie": RSIN_A}, {"bronorganisatie": RSIN_B}, RSIN_A, RSIN_B, None),
    ("klantnummer", {"klantnummer": "Kn1"}, {"klantnummer": "Kn2"}, "Kn1", "Kn2", "kn1"),
    ("bedrijfsnaam", {"bedrijfsnaam": "Bakkerij Jansen"}, {"bedrijfsnaam": "Slagerij"}, "Bakkerij Jansen",
     "Slagerij", "bakkerij jansen"),
    ("functie", {"functie": "Directeur"}, {"functie": "Medewerker"}, "Directeur", "Medewerker", "directeur"),
    ("achternaam", {"achternaam": "Jansen"}, {"achternaam": "Pietersen"}, "Jansen", "Pietersen", "Jans"),
    ("telefoonnummer", {"telefoonnummer": "0612345678"}, {"telefoonnummer": "0687654321"}, "0612345678",
     "0687654321", "061234567"),
    ("emailadres", {"emailadres": "Jan@example.com"}, {"emailadres": "piet@example.com"}, "Jan@example.com",
     "piet@example.com", "jan@example.com"),
    ("adres__straatnaam", {"adres": {"straatnaam": "naam1"}}, {"adres": {"straatnaam": "naam2"}}, "naam1", "naam2",
     "Naam1"),
    ("adres__postcode", {"adres": {"postcode": "1000WR"}}, {"adres": {"postcode": "2000AB"}}, "1000WR", "2000AB",
     "1000wr"),
    ("adres__woonplaatsNaam", {"adres": {"woonplaatsnaam": "Maastricht"}}, {"adres": {"woonplaatsnaam": "Utrecht"}},
     "Maastricht", "Utrecht", "maastricht"),
    ("adres__landcode", {"adres": {"landcode": "6030"}}, {"adres": {"landcode": "7009"}}, "6030", "7009", "603"),
    ("subject", "SUBJECT_A", "SUBJECT_B", "SUBJECT_A", "SUBJECT_B", "SUBJECT_A_UPPER"),
    ("subjectType", _np(), _nnp(), NP, NNP, None),
    ("subjectNatuurlijkPersoon__inpBsn", _np(inpBsn=BSN_A), _np(inpBsn=BSN_B), BSN_A, BSN_B, BSN_A[:8]),
    ("subjectNatuurlijkPersoon__anpIdentificatie", _np(anpIdentificatie="Anp1"), _np(anpIdentificatie="Anp2"),
     "Anp1", "Anp2", "anp1"),
    ("subjectNatuurlijkPersoon__inpA_nummer", _np(inpANummer="1234567890"), _np(inpANummer="2234567890"),
     "1234567890", "2234567890", "123456789"),
    ("subjectNietNatuurlijkPersoon__innNnpId", _nnp(innNnpId=NNP_A), _nnp(innNnpId=NNP_B), NNP_A, NNP_B, None),
    ("subjectNietNatuurlijkPersoon__annIdentificatie", _nnp(annIdentificatie="Ann1"),
     _nnp(annIdentificatie="Ann2"), "Ann1", "Ann2", "ANN1"),
    ("subjectVestiging__vestigingsNummer", _vestiging(vestigingsNummer="Vest1"),
     _vestiging(vestigingsNummer="Vest2"), "Vest1", "Vest2", "vest1"),
]


def test_all_19_spec_filters_are_covered():
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "spec" / "openapi.yaml").read_text("utf-8"))
    namen = [p["name"] for p in spec["paths"]["/klanten"]["get"]["parameters"] if p["in"] == "query"]
    assert sorted(n for n in namen if n != "page") == sorted(f[0] for f in FILTERS)
    assert len(FILTERS) == 19


@pytest.fixture
def subjecten(httpserver) -> dict:
    httpserver.expect_request("/subjecten/Persoon-A").respond_with_data("ok")
    httpserver.expect_request("/subjecten/Persoon-B").respond_with_data("ok")
    a, b = httpserver.url_for("/subjecten/Persoon-A"), httpserver.url_for("/subjecten/Persoon-B")
    return {"SUBJECT_A": {"subject": a}, "SUBJECT_B": {"subject": b},
            "SUBJECT_A_UPPER": a.replace("Persoon-A", "PERSOON-A")}


@pytest.mark.parametrize("naam, over_a, over_b, waarde_a, waarde_b, geen_match", FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_returns_exactly_the_matching_klant(api, subjecten, naam, over_a, over_b, waarde_a, waarde_b,
                                                   geen_match):
    if naam == "subject":
        over_a, over_b = subjecten["SUBJECT_A"], subjecten["SUBJECT_B"]
        waarde_a, waarde_b = over_a["subject"], over_b["subject"]
        geen_match = subjecten["SUBJECT_A_UPPER"]
    a = maak(api, **{"klantnummer": "a1", **over_a})
    b = maak(api, **{"klantnummer": "b1", **over_b})
    if naam == "subject":
        assert "subjectIdentificatie" not in klant_body(**over_a)
    assert_pagina(lijst(api), 2, [a, b])

    assert_pagina(lijst(api, {naam: waarde_a}), 1, [a])
    assert_pagina(lijst(api, {naam: waarde_b}), 1, [b])
    if geen_match is not None:
        # exact and case-sensitive: another case, a prefix or a shorter value finds nothing
        assert_pagina(lijst(api, {naam: geen_match}), 0, [])


def test_filter_matching_is_case_sensitive(api):
    kleine = maak(api, klantnummer="abc1", achternaam="de vries")
    grote = maak(api, klantnummer="ABC1", achternaam="De Vries")
    assert_pagina(lijst(api, {"klantnummer": "abc1"}), 1, [kleine])
    assert_pagina(lijst(api, {"klantnummer": "ABC1"}), 1, [grote])
    assert_pagina(lijst(api, {"klantnummer": "Abc1"}), 0, [])
    assert_pagina(lijst(api, {"achternaam": "De Vries"}), 1, [grote])
    assert_pagina(lijst(api, {"achternaam": "DE VRIES"}), 0, [])


def test_filter_matching_is_exact_not_a_substring(api):
    k = maak(api, klantnummer="12345", bedrijfsnaam="Bakkerij Jansen", achternaam="Jansen")
    assert_pagina(lijst(api, {"bedrijfsnaam": "Bakkerij"}), 0, [])
    assert_pagina(lijst(api, {"bedrijfsnaam": "Jansen"}), 0, [])
    assert_pagina(lijst(api, {"klantnummer": "1234"}), 0, [])
    assert_pagina(lijst(api, {"klantnummer": "%"}), 0, [])
    assert_pagina(lijst(api, {"achternaam": "Jansen%"}), 0, [])
    assert_pagina(lijst(api, {"achternaam": "_ansen"}), 0, [])
    assert_pagina(lijst(api, {"achternaam": "Jansen"}), 1, [k])


def test_nested_filters_do_not_match_another_subject_type(api):
    """inpBsn is a natuurlijk_persoon field: a klant of another type never matches it."""
    np = maak(api, klantnummer="np", **_np(inpBsn=BSN_A, anpIdentificatie="X1"))
    maak(api, klantnummer="nnp", **_nnp(annIdentificatie="X1"))
    maak(api, klantnummer="v", **_vestiging(vestigingsNummer="X1"))
    assert_pagina(lijst(api, {"subjectNatuurlijkPersoon__anpIdentificatie": "X1"}), 1, [np])
    assert lijst(api, {"subjectNietNatuurlijkPersoon__annIdentificatie": "X1"}).json()["count"] == 1
    assert lijst(api, {"subjectVestiging__vestigingsNummer": "X1"}).json()["count"] == 1


def test_filters_are_and_ed(api):
    a = maak(api, bronorganisatie=RSIN_A, klantnummer="k1", functie="x")
    b = maak(api, bronorganisatie=RSIN_A, klantnummer="k2", functie="y")
    c = maak(api, bronorganisatie=RSIN_B, klantnummer="k1", functie="x")
    assert_pagina(lijst(api, {"bronorganisatie": RSIN_A, "klantnummer": "k1"}), 1, [a])
    assert_pagina(lijst(api, {"bronorganisatie": RSIN_A, "functie": "y"}), 1, [b])
    assert_pagina(lijst(api, {"klantnummer": "k1", "functie": "x"}), 2, [a, c])
    assert_pagina(lijst(api, {"klantnummer": "k1", "functie": "x", "bronorganisatie": RSIN_B}), 1, [c])
    assert_pagina(lijst(api, {"bronorganisatie": RSIN_B, "klantnummer": "k2"}), 0, [])
    assert_pagina(lijst(api, {"subjectType": NP, "klantnummer": "k2", "functie": "y"}), 1, [b])


def test_a_repeated_filter_uses_its_last_value(api):
    """reference-behaviour §7.1: repeated parameter -> last value wins."""
    a = maak(api, klantnummer="k1")
    b = maak(api, klantnummer="k2")
    assert_pagina(api.get("/klanten?klantnummer=k1&klantnummer=k2"), 1, [b])
    assert_pagina(api.get("/klanten?klantnummer=k2&klantnummer=k1"), 1, [a])
    assert_pagina(api.get(f"/klanten?bronorganisatie=abc&bronorganisatie={BRONORGANISATIE}"), 2, [a, b])


def test_empty_filter_values_are_not_applied(api):
    a = maak(api, klantnummer="k1")
    b = maak(api, klantnummer="k2", **_nnp())
    alles = {naam: "" for naam, *_ in FILTERS}
    r = lijst(api, alles)
    assert_pagina(r, 2, [a, b])
    assert_pagina(lijst(api, {"subjectType": "", "bronorganisatie": "", "subject": "", "klantnummer": "k2"}), 1, [b])


# ---------------------------------------------------------------- filter validation
@pytest.mark.parametrize("waarde, code, reason", [
    ("abc", "only-digits", "Waarde moet numeriek zijn."),
    ("12345678a", "only-digits", "Waarde moet numeriek zijn."),
    ("12345", "invalid-length", "RSIN moet 9 tekens lang zijn."),
    ("1234567890", "invalid-length", "RSIN moet 9 tekens lang zijn."),
    ("123456789", "invalid", "Onjuist RSIN nummer."),
])
def test_bronorganisatie_filter_is_an_rsin(api, waarde, code, reason):
    maak(api)
    assert_validatiefout(lijst(api, {"bronorganisatie": waarde}), [{"name": "bronorganisatie", "code": code,
                                                                     "reason": reason}])


@pytest.mark.parametrize("waarde", ["not a url", "example.com/x", "http://a"])
def test_subject_filter_is_a_url(api, waarde):
    assert_validatiefout(lijst(api, {"subject": waarde}), [{"name": "subject", "code": "invalid",
                                                            "reason": "Voer een geldige URL in."}])


@pytest.mark.parametrize("waarde", ["foo", "Vestiging", "natuurlijk persoon"])
def test_subject_type_filter_is_a_choice(api, waarde):
    assert_validatiefout(lijst(api, {"subjectType": waarde}), [{
        "name": "subjectType", "code": "invalid_choice",
        "reason": f"Selecteer een geldige keuze. {waarde} is geen beschikbare keuze."}])


def test_several_invalid_filters_are_reported_together_in_spec_order(api):
    r = api.get("/klanten?subjectType=foo&subject=not%20a%20url&bronorganisatie=abc")
    assert_validatiefout(r, [
        {"name": "bronorganisatie", "code": "only-digits", "reason": "Waarde moet numeriek zijn."},
        {"name": "subject", "code": "invalid", "reason": "Voer een geldige URL in."},
        {"name": "subjectType", "code": "invalid_choice",
         "reason": "Selecteer een geldige keuze. foo is geen beschikbare keuze."}])


def test_other_filters_accept_any_string(api):
    """No validation on the other filters: e.g. an invalid BSN just finds nothing (reference §7.1)."""
    maak(api, **_np(inpBsn=BSN_A))
    for naam, waarde in [("subjectNatuurlijkPersoon__inpBsn", "abc"), ("emailadres", "geen-email"),
                         ("subjectNietNatuurlijkPersoon__innNnpId", "123"), ("adres__postcode", "<string>")]:
        assert_pagina(lijst(api, {naam: waarde}), 0, [])


# ---------------------------------------------------------------- unknown parameters (DECISIONS #15)
@pytest.mark.parametrize("query", [
    "subjectVestigingVestigingsNummer=%3Cstring%3E",       # the conformance collection's misspelling
    "onbekend=1", "voornaam=x", "websiteUrl=http%3A%2F%2Fsome.website.com", "adres__woonplaatsnaam=x",
    "page_size=1", "ordering=-klantnummer",
])
def test_unknown_query_parameters_are_ignored(api, query):
    a = maak(api, klantnummer="k1")
    b = maak(api, klantnummer="k2", voornaam="y")
    assert_pagina(api.get("/klanten?" + query), 2, [a, b])


def test_unknown_parameters_next_to_real_filters(api):
    maak(api, klantnummer="k1")
    b = maak(api, klantnummer="k2")
    assert_pagina(api.get("/klanten?klantnummer=k2&subjectVestigingVestigingsNummer=%3Cstring%3E"), 1, [b])


# ---------------------------------------------------------------- pagination
def test_empty_list(api):
    assert_pagina(lijst(api), 0, [])
    assert_pagina(lijst(api, {"page": "1"}), 0, [])
    assert_pagina(lijst(api, {"klantnummer": "x"}), 0, [])


def test_small_list_has_no_next_or_previous(api):
    klanten = [maak(api, klantnummer=f"k{i}") for i in range(3)]
    assert_pagina(lijst(api), 3, klanten)
    assert_pagina(lijst(api, {"page": "1"}), 3, klanten)


@pytest.mark.parametrize("page", ["0", "abc", "-1", "2", "1.5", "99999999999999999999"])
def test_invalid_page_is_404(api, page):
    maak(api)
    assert_ongeldige_pagina(api.get(f"/klanten?page={page}"))


def test_page_last_is_the_last_page(api):
    """reference-behaviour §7.3 (probe): `page=last` gives the last page."""
    alle = maak_veel(api, 101)
    r = lijst(api, {"page": "last"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["count"], body["next"], urls(r)) == (101, None, alle[100:])
    assert body["previous"] == f"{api.root}/klanten"


def maak_veel(api, aantal: int, *, parallel: bool = False) -> list[str]:
    """`aantal` klanten; returns their urls. One after the other when the test needs to know the creation order
    (the list order), otherwise over several connections at once (faster)."""
    def een(i: int, client=api) -> str:
        r = client.post("/klanten", klant_body(klantnummer=f"p{i:04d}"))
        assert r.status_code == 201, r.text
        return r.json()["url"]

    if not parallel:
        return [een(i) for i in range(aantal)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        clients = [api.as_client(api.client_id) for _ in range(6)]
        return list(pool.map(lambda i: een(i, clients[i % 6]), range(aantal)))


def urls(r) -> list[str]:
    return [k["url"] for k in r.json()["results"]]


def test_pages_of_100_in_creation_order(api):
    alle = maak_veel(api, 205)
    root = f"{api.root}/klanten"

    eerste = lijst(api)
    assert eerste.status_code == 200
    body = eerste.json()
    assert list(body) == ["count", "next", "previous", "results"]
    assert (body["count"], body["next"], body["previous"]) == (205, f"{root}?page=2", None)
    assert urls(eerste) == alle[:PAGINA]

    tweede = lijst(api, {"page": "2"})
    body = tweede.json()
    assert (body["count"], body["next"], body["previous"]) == (205, f"{root}?page=3", root)
    assert urls(tweede) == alle[PAGINA:2 * PAGINA]

    derde = lijst(api, {"page": "3"})
    body = derde.json()
    assert (body["count"], body["next"], body["previous"]) == (205, None, f"{root}?page=2")
    assert urls(derde) == alle[2 * PAGINA:]

    assert_ongeldige_pagina(lijst(api, {"page": "4"}))
    assert_ongeldige_pagina(lijst(api, {"page": "1000"}))

    # page 1 is the same as no page; the page-size parameter does not exist
    assert lijst(api, {"page": "1"}).json() == eerste.json()
    met_page_size = lijst(api, {"page_size": "10"}).json()
    assert (met_page_size["count"], met_page_size["results"]) == (205, eerste.json()["results"])
    assert met_page_size["next"] == f"{root}?page_size=10&page=2"

    # following `next` visits every klant exactly once
    gezien, volgende = [], root
    while volgende:
        r = api.get(volgende)
        assert r.status_code == 200
        gezien += urls(r)
        volgende = r.json()["next"]
    assert gezien == alle


def test_next_and_previous_keep_the_other_parameters_in_place(api):
    maak_veel(api, 205, parallel=True)
    root = f"{api.root}/klanten"
    b = BRONORGANISATIE

    def links(query: str) -> tuple:
        r = api.get(f"/klanten?{query}")
        assert r.status_code == 200, r.text
        return r.json()["count"], r.json()["next"], r.json()["previous"]

    assert links(f"bronorganisatie={b}") == (205, f"{root}?bronorganisatie={b}&page=2", None)
    assert links(f"bronorganisatie={b}&page=1") == (205, f"{root}?bronorganisatie={b}&page=2", None)
    assert links(f"page=1&bronorganisatie={b}") == (205, f"{root}?page=2&bronorganisatie={b}", None)
    # page 2: previous drops `page`
    assert links(f"bronorganisatie={b}&page=2") == (205, f"{root}?bronorganisatie={b}&page=3",
                                                    f"{root}?bronorganisatie={b}")
    assert links(f"page=2&bronorganisatie={b}") == (205, f"{root}?page=3&bronorganisatie={b}",
                                                    f"{root}?bronorganisatie={b}")
    assert links(f"page=3&bronorganisatie={b}") == (205, None, f"{root}?page=2&bronorganisatie={b}")
    # unknown parameters are carried along too, in their place
    assert links("onbekend=1&page=2&subjectType=natuurlijk_persoon") == (
        205, f"{root}?onbekend=1&page=3&subjectType=natuurlijk_persoon",
        f"{root}?onbekend=1&subjectType=natuurlijk_persoon")
    # a filter that leaves one page has no links
    assert links(f"bronorganisatie={b}&klantnummer=p0150") == (1, None, None)


def test_pagination_links_follow_the_request_host(api):
    maak_veel(api, 101, parallel=True)
    r = api.get("/klanten", headers={"Host": "klanten.example.org"})
    assert r.json()["next"] == "http://klanten.example.org/api/v1/klanten?page=2"
    assert r.json()["results"][0]["url"].startswith("http://klanten.example.org/api/v1/klanten/")
    r = api.get("/klanten?page=2", headers={"Host": "klanten.example.org"})
    assert r.json()["previous"] == "http://klanten.example.org/api/v1/klanten"
    assert len(r.json()["results"]) == 1
