"""Outgoing calls to other APIs for the Contactmomenten rules, with the credentials of a configured service.

cm-004 (a klant of a foreign Klanten API), cm-005 (the zaak of an objectcontactmoment) and cm-006 (the Zaken API's
`zaakcontactmomenten`) fetch URLs that a client chose. Every fetch goes through the kla-002 guard
(service.kla_002.SubjectControle.haal_op: strict parser, checked addresses, one deadline, a size cap, the shared
capacity); a configured service's host counts as allowed (it is the operator's choice, often an internal
address). A URL under a configured service's API root is fetched with a ZGW JWT of that service's client id
and secret (DECISIONS #21, #23); any other URL without credentials, as the reference fetches a klant.

The services file (KLANTEN_SERVICES_CONFIG), YAML:

    diensten:
      - apiRoot: https://zaken.example.nl/zaken/api/v1/
        clientId: klanten-api
        secret: <random, at least 32 bytes>
      - apiRoot: https://klanten.andere-gemeente.nl/api/v1/
        clientId: ...
        secret: ...

Nothing here logs a URL or an answer.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import yaml

from klanten_api.errors import ApiProblem, InvalidParam, ValidatieFout
from klanten_api.settings import ConfigError
from .kla_002 import SubjectControle

log = logging.getLogger("klanten_api.diensten")

# cm-005: what makes a JSON answer look like a Zaak (the required properties of the Zaken API's Zaak; the
# reference downloads a 2019 document at run time for this, DECISIONS #23)
ZAAK_VERPLICHT = ("bronorganisatie", "zaaktype", "verantwoordelijkeOrganisatie", "startdatum")


@dataclass(frozen=True)
class Dienst:
    api_root: str
    client_id: str
    secret: str


def lees_diensten(pad: Path | None) -> tuple[Dienst, ...]:
    """The services of KLANTEN_SERVICES_CONFIG (none without the setting); ConfigError for a bad file."""
    if pad is None:
        return ()
    try:
        data = yaml.safe_load(Path(pad).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"KLANTEN_SERVICES_CONFIG could not be read: {type(exc).__name__}") from None
    lijst = data.get("diensten") if isinstance(data, dict) else None
    if not isinstance(lijst, list):
        raise ConfigError("KLANTEN_SERVICES_CONFIG must hold a list `diensten`")
    diensten = []
    for i, item in enumerate(lijst):
        where = f"KLANTEN_SERVICES_CONFIG diensten[{i}]"
        if not isinstance(item, dict) or set(item) - {"apiRoot", "clientId", "secret"}:
            raise ConfigError(f"{where}: give exactly apiRoot, clientId and secret")
        root, client_id, secret = item.get("apiRoot"), item.get("clientId"), item.get("secret")
        if not all(isinstance(w, str) and w for w in (root, client_id, secret)):
            raise ConfigError(f"{where}: apiRoot, clientId and secret must be non-empty strings")
        if not root.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: apiRoot must start with http:// or https://")
        diensten.append(Dienst(root if root.endswith("/") else root + "/", client_id, secret))
    return tuple(diensten)


def dienst_hosts(diensten: tuple[Dienst, ...]) -> tuple[str, ...]:
    return tuple(urlsplit(d.api_root).hostname or "" for d in diensten)


class ZakenApiOnbereikbaar(ApiProblem):
    """cm-006: the Zaken API could not answer (unreachable, time-out, 5xx): the client may try again."""
    status = 503

    def __init__(self):
        super().__init__("De Zaken API kon niet geraadpleegd worden voor de controle van de relatie (cm-006); "
                         "probeer het later opnieuw.", headers={"Retry-After": "5"})


class Diensten:
    def __init__(self, diensten: tuple[Dienst, ...], controle: SubjectControle):
        # the longest API root first: the most specific service wins
        self.diensten = tuple(sorted(diensten, key=lambda d: len(d.api_root), reverse=True))
        self.controle = controle

    def dienst_voor(self, url: str) -> Dienst | None:
        return next((d for d in self.diensten if url.startswith(d.api_root)), None)

    def _headers(self, url: str) -> dict:
        from notificaties.client import zgw_token
        headers = {"Accept": "application/json", "Accept-Crs": "EPSG:4326"}
        dienst = self.dienst_voor(url)
        if dienst is not None:
            headers["Authorization"] = f"Bearer {zgw_token(dienst.client_id, dienst.secret)}"
        return headers

    def _haal_op(self, url: str, client_id: str) -> tuple[int | None, bytes, str | None]:
        """(status, body, None) or (None, b"", Dutch reason of the failure)."""
        try:
            status, body = self.controle.haal_op(url, headers=self._headers(url), client_id=client_id)
        except Exception as exc:   # noqa: BLE001 - mapped below; anything else is raised again
            reden = SubjectControle.reden(exc)
            if reden is None:
                raise
            return None, b"", reden
        return status, body, None

    @staticmethod
    def _bad_url(veld: str, url: str, status: int | None, reden: str | None) -> InvalidParam:
        if status is None:
            return InvalidParam(veld, "bad-url", f"De URL {url} kon niet opgehaald worden. Foutmelding: {reden}")
        return InvalidParam(veld, "bad-url", f"De URL {url} gaf als antwoord HTTP {status}. Geef een geldige URL op.")

    def bestaat(self, url: str, veld: str, *, client_id: str = "") -> InvalidParam | None:
        """cm-004 for a foreign klant: None when GET url answers 200, else `bad-url` for `veld`."""
        status, _, reden = self._haal_op(url, client_id)
        return None if status == 200 else self._bad_url(veld, url, status, reden)

    def zaak_fout(self, url: str, *, client_id: str = "") -> InvalidParam | None:
        """cm-005: the object answers 200 with JSON that looks like a Zaak; else the error for `object`."""
        status, body, reden = self._haal_op(url, client_id)
        if status != 200:
            return self._bad_url("object", url, status, reden)
        try:
            zaak = json.loads(body)
        except (ValueError, RecursionError):
            zaak = None
        if not (isinstance(zaak, dict) and all(isinstance(zaak.get(k), str) for k in ZAAK_VERPLICHT)):
            return InvalidParam("object", "invalid-resource",
                                f"De URL {url} resource lijkt niet op een `Zaak`. Geef een validate URL op.")
        return None

    def _zaken_api_root(self, zaak_url: str) -> str:
        """The Zaken API of a zaak: its configured service, or the URL up to its `zaken/{uuid}` part."""
        dienst = self.dienst_voor(zaak_url)
        if dienst is not None:
            return dienst.api_root
        pad_einde = zaak_url.split("?", 1)[0].rstrip("/")
        delen = pad_einde.rsplit("/", 2)
        return (delen[0] + "/") if len(delen) == 3 else zaak_url

    def zaakcontactmomenten(self, zaak_url: str, contactmoment_url: str, *, client_id: str = "",
                            bij: str) -> int:
        """cm-006: how many zaakcontactmomenten the Zaken API holds for (zaak, contactmoment). An error answer
        is a 400 (relation-validation-error on create, relation-lookup-error on delete); no answer a 503."""
        url = f"{self._zaken_api_root(zaak_url)}zaakcontactmomenten?" + urlencode(
            {"zaak": zaak_url, "contactmoment": contactmoment_url})
        status, body, _ = self._haal_op(url, client_id)
        if status is None or status >= 500:
            log.warning("zaken api unavailable for cm-006", extra={"event": "zaken_api_unavailable",
                                                                  "status": status})
            raise ZakenApiOnbereikbaar()
        code = "relation-validation-error" if bij == "create" else "relation-lookup-error"
        if status != 200:
            raise ValidatieFout([InvalidParam("nonFieldErrors", code,
                                              f"De Zaken API antwoordde HTTP {status} op de vraag naar de "
                                              "zaakcontactmomenten van deze zaak en dit contactmoment.")])
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            data = data["results"]
        if not isinstance(data, list):
            raise ValidatieFout([InvalidParam("nonFieldErrors", code,
                                              "De Zaken API gaf geen lijst van zaakcontactmomenten.")])
        return len(data)
