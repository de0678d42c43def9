"""`klanten-api export`: every klant and its audit trail as JSON Lines, in the API's own representation.

One line per klant, `{"klant": <as klant_read serves it>, "audittrail": [<as audittrail_list serves it>]}`, in
the register's order (by creation), streamed a page at a time: for backups, for moving on, and as fixtures
(`klanten-api import --from-file` reads the same format). The output depends only on the data and the base
URL, so two exports of the same register are byte-identical.
"""
from __future__ import annotations

import json
import sys

from .settings import ConfigError, Settings

PAGINA = 500        # klanten per read


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
            uit.write(json.dumps(regel, ensure_ascii=False, separators=(",", ":")) + "\n")
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
        if args.output == "-":
            aantal = exporteer(engine, base_url, sys.stdout)
        else:
            with open(args.output, "w", encoding="utf-8") as uit:
                aantal = exporteer(engine, base_url, uit)
    finally:
        engine.dispose()
    print(f"{aantal} klanten exported", file=sys.stderr)
    return 0
