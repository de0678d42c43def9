"""`klanten-api export`: every klant and its audit trail as JSON Lines, in the API's own representation.

One line per klant, `{"klant": <as klant_read serves it>, "audittrail": [<as audittrail_list serves it>]}`, in
the register's order (by creation), streamed a page at a time: for backups, for moving on, and as fixtures
(`klanten-api import --from-file` reads the same format). Then, when there are any, one line per contactmoment
(`{"contactmoment": ..., "audittrail": [...]}`), klantcontactmoment (`{"klantcontactmoment": ...}`) and
objectcontactmoment (`{"objectcontactmoment": ...}`), each as the Contactmomenten API serves it. The output
depends only on the data and the base URL, so two exports of the same register are byte-identical.
"""
from __future__ import annotations

import json
import sys

from .settings import ConfigError, Settings

PAGINA = 500        # klanten per read


def _regel(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def exporteer_contactmomenten(engine, base_url: str, uit, settings: Settings) -> int:
    """Contactmomenten (with audit trail), then both relation kinds, in creation order; the number of lines."""
    from service.contactmomenten import ContactmomentenService
    from service.klanten import KlantenService, Verzoek
    from service.validatie import SchemaValidatie
    from storage.uow import UnitOfWork
    from .apis import Layout
    from .app import load_spec
    verzoek = Verzoek(base_url=base_url)
    service = ContactmomentenService(engine, SchemaValidatie(load_spec()["components"]), None,
                                     Layout.from_settings(settings), notificeren=False)
    aantal = 0
    for soort in ("contactmomenten", "klantcontactmomenten", "objectcontactmomenten"):
        offset = 0
        while True:
            with UnitOfWork(engine) as uow:
                if soort == "contactmomenten":
                    _, items = uow.contactmomenten.zoeken({}, [], offset, PAGINA)
                    regels = [(service.weergave(cm, verzoek),
                               [KlantenService.audit_weergave(r) for r in uow.cm_audittrail.van(cm.id)])
                              for cm in items]
                else:
                    _, items = getattr(uow, soort).zoeken({}, offset, PAGINA)
                    regels = [(service.relatie_weergave(soort, rel, verzoek), None) for rel in items]
            if not items:
                break
            for weergave, audit in regels:
                uit.write(_regel({soort[:-2]: weergave, "audittrail": audit} if audit is not None
                                 else {soort[:-2]: weergave}))
            aantal += len(items)
            offset += len(items)
    return aantal


def exporteer(engine, base_url: str, uit) -> int:
    """Write every klant to the text stream `uit`; the number written."""
    from service.klanten import KlantenService, Verzoek
    from storage.uow import UnitOfWork
    verzoek = Verzoek(base_url=base_url)
    service = KlantenService(engine, None, None, notificeren=False)     # only its representations are used
    na, aantal = 0, 0
    while True:
        # one short read transaction per page: an export of a large register holds no snapshot for minutes
        with UnitOfWork(engine) as uow:
            klanten = uow.klanten.na_id(na, PAGINA)
            regels = uow.audittrail.van_klanten([k.id for k in klanten])
        if not klanten:
            return aantal
        for k in klanten:
            regel = {"klant": service.weergave(k.uuid, k.gegevens, verzoek),
                     "audittrail": [service.audit_weergave(r) for r in regels[k.id]]}
            uit.write(_regel(regel))
        aantal += len(klanten)
        na = klanten[-1].id


def cmd_export(args, settings: Settings) -> int:
    from storage.database import make_engine
    base_url = (args.base_url or settings.base_url or "").rstrip("/")
    if not base_url:
        raise ConfigError("the klant URLs need a base: give --base-url or set KLANTEN_BASE_URL")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url must start with http:// or https://, got {base_url!r}")
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=1)
    try:
        uit = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
        try:
            aantal = exporteer(engine, base_url, uit)
            cm_aantal = exporteer_contactmomenten(engine, base_url, uit, settings)
        finally:
            if uit is not sys.stdout:
                uit.close()
    finally:
        engine.dispose()
    print(f"{aantal} klanten exported" + (f", {cm_aantal} contactmomenten and relations" if cm_aantal else ""),
          file=sys.stderr)
    return 0
