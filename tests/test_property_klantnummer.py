"""Property tests of the klantnummer generator (kla-001, DECISIONS #1) over HTTP.

Random sequences of creates with a client-chosen klantnummer and creates without one, spread over two
bronorganisaties. Every generated number must be non-empty, at most 8 characters, unique within its
bronorganisatie and never equal to a number a client chose; the numbers of one bronorganisatie do not
depend on what happens in another one.

Tables are only emptied between test functions, so every hypothesis example takes fresh bronorganisaties.
"""
from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import Api, geldig_rsin, klant_body

UNIEK = [{"name": "nonFieldErrors", "code": "unique",
          "reason": "De velden bronorganisatie, klantnummer moeten een unieke set zijn."}]

_zaden = itertools.count(31_000)
_gebruikt: set[str] = set()


def verse_bronorganisatie() -> str:
    """A valid RSIN no earlier example (of this session) used."""
    while True:
        rsin = geldig_rsin(next(_zaden))
        if rsin not in _gebruikt:
            _gebruikt.add(rsin)
            return rsin


# client-chosen numbers: mostly small numbers the generator will also reach, plus other strings
gekozen = st.one_of(
    st.integers(1, 40).map(str),
    st.integers(1, 12).map(lambda n: f"0{n}"),                       # "01" is not "1"
    st.text(alphabet="0123456789ABCXYZabcxyz-_", min_size=1, max_size=8),
    st.integers(99_999_990, 99_999_999).map(str),                    # the top of the 8-digit range
)
# an operation: (which bronorganisatie: 0 or 1, client-chosen klantnummer or None = generate)
stap = st.tuples(st.integers(0, 1), st.one_of(st.none(), gekozen))
reeksen = st.lists(stap, min_size=1, max_size=9)

# chosen numbers ahead of the generator, a chosen number equal to a generated one, and the other bronorganisatie
VOORBEELD = [(0, "2"), (0, None), (0, None), (0, "1"), (0, "4"), (1, None), (1, "1"), (0, None), (1, None),
             (0, "01")]


class Model:
    """What must be true of one bronorganisatie's klantnummers."""

    def __init__(self):
        self.bestaand: list[str] = []          # in creation order
        self.gekozen: set[str] = set()         # every number a client chose (successfully stored)
        self.gegenereerd: list[str] = []


def aanmaken(api: Api, bron: str, klantnummer: str | None):
    body = klant_body(bronorganisatie=bron)
    if klantnummer is None:
        del body["klantnummer"]
    else:
        body["klantnummer"] = klantnummer
    return api.post("/klanten", body)


def voer_uit(api: Api, bron: str, model: Model, klantnummer: str | None) -> None:
    resp = aanmaken(api, bron, klantnummer)
    if klantnummer is not None:
        if klantnummer in model.bestaand:
            assert resp.status_code == 400, resp.text
            assert resp.json()["invalidParams"] == UNIEK
            return
        assert resp.status_code == 201, resp.text
        assert resp.json()["klantnummer"] == klantnummer
        model.bestaand.append(klantnummer)
        model.gekozen.add(klantnummer)
        return
    assert resp.status_code == 201, resp.text
    nummer = resp.json()["klantnummer"]
    assert isinstance(nummer, str) and nummer != "", nummer
    assert len(nummer) <= 8, nummer
    assert nummer == nummer.strip(), nummer
    assert nummer not in model.bestaand, (nummer, model.bestaand)
    assert nummer not in model.gekozen, (nummer, model.gekozen)
    model.bestaand.append(nummer)
    model.gegenereerd.append(nummer)


def opgeslagen(api: Api, bron: str) -> list[str]:
    resp = api.get("/klanten", params={"bronorganisatie": bron})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["next"] is None
    return [k["klantnummer"] for k in body["results"]]


@settings(max_examples=15, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(reeks=reeksen)
@example(reeks=VOORBEELD)
def test_gegenereerde_nummers_botsen_nooit(api, reeks):
    bronnen = (verse_bronorganisatie(), verse_bronorganisatie())
    modellen = (Model(), Model())
    for welke, klantnummer in reeks:
        voer_uit(api, bronnen[welke], modellen[welke], klantnummer)
    for bron, model in zip(bronnen, modellen):
        # what the register holds is exactly what was accepted, in creation order
        assert opgeslagen(api, bron) == model.bestaand
        assert len(set(model.bestaand)) == len(model.bestaand)


@settings(max_examples=15, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(reeks=reeksen)
@example(reeks=VOORBEELD)
def test_nummers_zijn_onafhankelijk_per_bronorganisatie(api, reeks):
    """Interleaving the creates of bronorganisatie A with those of B gives B the very numbers B gets when
    the same creates run in a bronorganisatie of its own: nothing of A (chosen or generated) is skipped
    or reserved in B."""
    a, b, alleen = verse_bronorganisatie(), verse_bronorganisatie(), verse_bronorganisatie()
    ma, mb, m_alleen = Model(), Model(), Model()
    for welke, klantnummer in reeks:
        if welke == 0:
            voer_uit(api, a, ma, klantnummer)
        else:
            voer_uit(api, b, mb, klantnummer)
    for welke, klantnummer in reeks:
        if welke == 1:
            voer_uit(api, alleen, m_alleen, klantnummer)
    assert mb.bestaand == m_alleen.bestaand
    # and every number of A can also be chosen in B (uniqueness is per bronorganisatie)
    for nummer in ma.bestaand:
        if nummer not in mb.bestaand:
            resp = aanmaken(api, b, nummer)
            assert resp.status_code == 201, (nummer, resp.text)
            mb.bestaand.append(nummer)
    assert opgeslagen(api, a) == ma.bestaand
    assert opgeslagen(api, b) == mb.bestaand


def test_gegenereerd_slaat_gekozen_nummers_over(api):
    """A fixed scenario: chosen 1, 2 and 4 are skipped by the generator."""
    bron = verse_bronorganisatie()
    model = Model()
    for nummer in ("1", "2", "4", None, None, None):
        voer_uit(api, bron, model, nummer)
    assert model.gegenereerd and all(n not in {"1", "2", "4"} for n in model.gegenereerd)
    assert len(set(model.gegenereerd)) == 3
