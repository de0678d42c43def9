"""Helpers of the Contactmomenten tests: a client on /contactmomenten/api/v1 and bodies."""
from __future__ import annotations

from conftest import ALLE, Api

CM_BASE = "/contactmomenten/api/v1"
BRON = "000000000"          # passes the 11-proef (the reference's own examples use it)


class CmApi(Api):
    def __init__(self, base: str, client_id: str = ALLE):
        super().__init__(base, client_id)
        self.root = f"{base}{CM_BASE}"

    def as_client(self, client_id: str) -> "CmApi":
        return CmApi(self.base, client_id)


def cm_body(**overrides) -> dict:
    body = {"bronorganisatie": BRON, "kanaal": "telefoon", "medewerkerIdentificatie": {"identificatie": "m1",
                                                                                      "achternaam": "Buurman"}}
    body.update(overrides)
    return body


def invalid_params(response) -> list[dict]:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid" and body["title"] == "Invalid input." and body["status"] == 400
    return body["invalidParams"]


def fout(name: str, code: str, reason: str) -> dict:
    return {"name": name, "code": code, "reason": reason}
