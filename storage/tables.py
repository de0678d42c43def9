"""The database schema as SQLAlchemy Core tables. Tables come to exist only through Alembic migrations."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")   # SQLite only auto-increments INTEGER PRIMARY KEY

# The filterable values of the subject identification, kept in indexed columns (derived from
# subject_identificatie by storage.klanten.zoeksleutels, the only place that writes them).
ZOEKSLEUTELS = ("inp_bsn", "anp_identificatie", "inp_a_nummer", "inn_nnp_id", "ann_identificatie", "vestigings_nummer")

# columns filtered on by klant_list; each gets an index (value, id) so that a filtered page ordered by id is an index scan
FILTER_KOLOMMEN = (
    "klantnummer", "bedrijfsnaam", "functie", "achternaam", "telefoonnummer", "emailadres", "subject",
    "subject_type", "adres_straatnaam", "adres_postcode", "adres_woonplaatsnaam", "adres_landcode",
) + tuple(f"zoek_{k}" for k in ZOEKSLEUTELS)

klant = sa.Table(
    "klant", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.Uuid(), nullable=False, unique=True),
    sa.Column("bronorganisatie", sa.String(9), nullable=False),
    sa.Column("klantnummer", sa.String(8), nullable=False),
    sa.Column("bedrijfsnaam", sa.String(200), nullable=False),
    sa.Column("functie", sa.String(200), nullable=False),
    sa.Column("website_url", sa.String(1000), nullable=False),
    sa.Column("voornaam", sa.String(200), nullable=False),
    sa.Column("voorvoegsel_achternaam", sa.String(10), nullable=False),
    sa.Column("achternaam", sa.String(200), nullable=False),
    sa.Column("telefoonnummer", sa.String(20), nullable=False),
    sa.Column("emailadres", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(1000), nullable=False),
    sa.Column("subject_type", sa.String(30), nullable=True),
    # adres (KlantAdres) inline: one row per klant, adres_aanwezig tells `null` from an empty address
    sa.Column("adres_aanwezig", sa.Boolean(), nullable=False),
    sa.Column("adres_straatnaam", sa.String(100), nullable=True),
    sa.Column("adres_huisnummer", sa.Integer(), nullable=True),
    sa.Column("adres_huisletter", sa.String(1), nullable=True),
    sa.Column("adres_huisnummertoevoeging", sa.String(4), nullable=True),
    sa.Column("adres_postcode", sa.String(7), nullable=True),
    sa.Column("adres_woonplaatsnaam", sa.String(80), nullable=True),
    sa.Column("adres_landcode", sa.String(4), nullable=True),
    # subjectIdentificatie: the complete nested object for the klant's subjectType, NULL when absent
    sa.Column("subject_identificatie", sa.JSON(), nullable=True),
    *(sa.Column(f"zoek_{k}", sa.String(24), nullable=True) for k in ZOEKSLEUTELS),
    sa.Column("aangemaakt", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("bronorganisatie", "klantnummer", name="uq_klant_bronorganisatie_klantnummer"),
    *(sa.Index(f"ix_klant_{c}", c, "id") for c in FILTER_KOLOMMEN),
)

audittrail = sa.Table(
    "audittrail", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.Uuid(), nullable=False, unique=True),
    sa.Column("klant_id", Id, sa.ForeignKey("klant.id", ondelete="CASCADE"), nullable=False),
    sa.Column("bron", sa.String(20), nullable=False),
    sa.Column("applicatie_id", sa.String(100), nullable=False),
    sa.Column("applicatie_weergave", sa.String(200), nullable=False),
    sa.Column("gebruikers_id", sa.String(255), nullable=False),
    sa.Column("gebruikers_weergave", sa.String(255), nullable=False),
    sa.Column("actie", sa.String(50), nullable=False),
    sa.Column("actie_weergave", sa.String(200), nullable=False),
    sa.Column("resultaat", sa.Integer(), nullable=False),
    sa.Column("hoofd_object", sa.String(1000), nullable=False),
    sa.Column("resource", sa.String(50), nullable=False),
    sa.Column("resource_url", sa.String(1000), nullable=False),
    sa.Column("toelichting", sa.Text(), nullable=False),
    sa.Column("resource_weergave", sa.String(200), nullable=False),
    sa.Column("aanmaakdatum", sa.DateTime(timezone=True), nullable=False),
    sa.Column("wijzigingen", sa.JSON(), nullable=False),
    sa.Column("logrecord_id", sa.String(255), nullable=False),
    sa.Index("ix_audittrail_klant_id", "klant_id", "id"),
)

# kla-001 counters of generated klantnummers, SQLite only: on PostgreSQL each bronorganisatie has a sequence
# (klantnummer_<bronorganisatie>, drawn by the SQL function klantnummer_volgende; migration 0002)
klantnummer_reeks = sa.Table(
    "klantnummer_reeks", metadata,
    sa.Column("bronorganisatie", sa.String(9), primary_key=True),
    sa.Column("laatste", sa.BigInteger(), nullable=False),
)

# the exact number of klanten, kept by triggers on klant (migration 0002) in the transaction of every insert and
# delete: the sum of `aantal` over all rows. Never written by the application.
klant_telling = sa.Table(
    "klant_telling", metadata,
    sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("aantal", sa.BigInteger(), nullable=False),
)

# where each page of the unfiltered klant list starts: the number of klanten per blok of PAGINA_BLOK consecutive ids
# (blok = id / PAGINA_BLOK), the sum of `aantal` over a blok's rows (one row per slot; migration 0006). Kept by
# triggers on klant in the transaction of every insert and delete; never written by the application.
PAGINA_BLOK = 4096
klant_pagina = sa.Table(
    "klant_pagina", metadata,
    sa.Column("blok", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("aantal", sa.Integer(), nullable=False),
)

# transactional outbox of notifications (written in the write's own transaction, sent by the relay)
notificatie = sa.Table(
    "notificatie", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("klant_uuid", sa.Uuid(), nullable=False),
    sa.Column("kanaal", sa.String(50), nullable=False),
    sa.Column("bericht", sa.Text(), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("pogingen", sa.Integer(), nullable=False),
    sa.Column("volgende_poging", sa.DateTime(timezone=True), nullable=False),
    sa.Column("laatste_fout", sa.String(500), nullable=False),
    sa.Column("aangemaakt", sa.DateTime(timezone=True), nullable=False),
    sa.Column("verzonden", sa.DateTime(timezone=True), nullable=True),
    # the first failed delivery: transient failures are retried until the retry horizon has passed since
    sa.Column("eerste_fout", sa.DateTime(timezone=True), nullable=True),
    # the W3C traceparent of the write that queued it (tracing on, migration 0007): its delivery continues it
    sa.Column("traceparent", sa.String(55), nullable=True),
    sa.Index("ix_notificatie_klant_uuid", "klant_uuid", "id"),
    # partial: what the relay and `notificaties list` look for, whatever the number of sent messages kept
    # (the per-klant one: the relay's check for an older pending or failed message of the same klant)
    *(sa.Index(naam, *kolommen, postgresql_where=sa.text(waar), sqlite_where=sa.text(waar))
      for naam, kolommen, waar in (("ix_notificatie_wachtend", ("id",), "status = 'pending'"),
                                   ("ix_notificatie_open_per_klant", ("klant_uuid", "id"),
                                    "status IN ('pending', 'failed')"),
                                   ("ix_notificatie_mislukt", ("id",), "status = 'failed'"))),
)


# ---------- Contactmomenten API (migration 0005) ----------
def _audit_kolommen(eigenaar: str, eigenaar_tabel: str) -> list:
    """The columns of an audit table whose rows belong to (and are deleted with) a row of `eigenaar_tabel`: those
    of `audittrail` with another owner column."""
    return [
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False, unique=True),
        sa.Column(eigenaar, Id, sa.ForeignKey(f"{eigenaar_tabel}.id", ondelete="CASCADE"), nullable=False),
        sa.Column("bron", sa.String(20), nullable=False),
        sa.Column("applicatie_id", sa.String(100), nullable=False),
        sa.Column("applicatie_weergave", sa.String(200), nullable=False),
        sa.Column("gebruikers_id", sa.String(255), nullable=False),
        sa.Column("gebruikers_weergave", sa.String(255), nullable=False),
        sa.Column("actie", sa.String(50), nullable=False),
        sa.Column("actie_weergave", sa.String(200), nullable=False),
        sa.Column("resultaat", sa.Integer(), nullable=False),
        sa.Column("hoofd_object", sa.String(1000), nullable=False),
        sa.Column("resource", sa.String(50), nullable=False),
        sa.Column("resource_url", sa.String(1000), nullable=False),
        sa.Column("toelichting", sa.Text(), nullable=False),
        sa.Column("resource_weergave", sa.String(200), nullable=False),
        sa.Column("aanmaakdatum", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wijzigingen", sa.JSON(), nullable=False),
        sa.Column("logrecord_id", sa.String(255), nullable=False),
    ]


# A URL column that is filtered on or part of a unique key gets a digest column next to it (`*_sleutel`, the
# SHA-256 hex of the URL): a btree index holds a 64-character digest, where a 1000-character URL of multi-byte
# characters could exceed PostgreSQL's index row limit. Queries compare the digest and the URL itself.
contactmoment = sa.Table(
    "contactmoment", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.Uuid(), nullable=False, unique=True),
    # cm-001/cm-002: one-to-one (unique), so volgendContactmoment is the one row that points here. No ON DELETE:
    # deleting a contactmoment that a later one names is refused by the service (and by this key in a race)
    sa.Column("vorig_contactmoment_id", Id, sa.ForeignKey("contactmoment.id"), nullable=True, unique=True),
    sa.Column("bronorganisatie", sa.String(9), nullable=False),
    sa.Column("registratiedatum", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kanaal", sa.String(50), nullable=False),
    sa.Column("voorkeurskanaal", sa.String(50), nullable=False),
    sa.Column("voorkeurstaal", sa.String(3), nullable=False),
    sa.Column("tekst", sa.Text(), nullable=False),
    sa.Column("onderwerp_links", sa.JSON(), nullable=False),
    sa.Column("initiatiefnemer", sa.String(10), nullable=False),
    sa.Column("medewerker", sa.String(1000), nullable=False),
    sa.Column("medewerker_sleutel", sa.String(64), nullable=False),
    # medewerkerIdentificatie inline; NULL identificatie (and mw_aanwezig false) when there is none
    sa.Column("mw_aanwezig", sa.Boolean(), nullable=False),
    sa.Column("mw_identificatie", sa.String(24), nullable=True),
    sa.Column("mw_achternaam", sa.String(200), nullable=True),
    sa.Column("mw_voorletters", sa.String(20), nullable=True),
    sa.Column("mw_voorvoegsel_achternaam", sa.String(10), nullable=True),
    sa.Column("aangemaakt", sa.DateTime(timezone=True), nullable=False),
    *(sa.Index(f"ix_contactmoment_{c}", c, "id") for c in (
        "bronorganisatie", "registratiedatum", "kanaal", "voorkeurskanaal", "voorkeurstaal", "initiatiefnemer",
        "medewerker_sleutel")),
)

# the contactmomenten per blok of PAGINA_BLOK ids, as klant_pagina (migration 0008): where each page of the unfiltered
# contactmoment list starts, and (the sum over all rows) how many contactmomenten there are
contactmoment_pagina = sa.Table(
    "contactmoment_pagina", metadata,
    sa.Column("blok", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("aantal", sa.Integer(), nullable=False),
)

klantcontactmoment = sa.Table(
    "klantcontactmoment", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.Uuid(), nullable=False, unique=True),
    sa.Column("contactmoment_id", Id, sa.ForeignKey("contactmoment.id", ondelete="CASCADE"), nullable=False),
    sa.Column("klant", sa.String(1000), nullable=False),
    sa.Column("klant_sleutel", sa.String(64), nullable=False),
    sa.Column("rol", sa.String(20), nullable=False),
    # cm-004: the triple is unique, also when two requests race (the constraint decides)
    sa.UniqueConstraint("contactmoment_id", "klant_sleutel", "rol", name="uq_klantcontactmoment_uniek"),
    sa.Index("ix_klantcontactmoment_klant_sleutel", "klant_sleutel", "id"),
)

objectcontactmoment = sa.Table(
    "objectcontactmoment", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.Uuid(), nullable=False, unique=True),
    sa.Column("contactmoment_id", Id, sa.ForeignKey("contactmoment.id", ondelete="CASCADE"), nullable=False),
    sa.Column("object", sa.String(1000), nullable=False),
    sa.Column("object_sleutel", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(20), nullable=False),
    # cm-005: one relation per (contactmoment, object)
    sa.UniqueConstraint("contactmoment_id", "object_sleutel", name="uq_objectcontactmoment_uniek"),
    sa.Index("ix_objectcontactmoment_object_sleutel", "object_sleutel", "id"),
)

# the audit trail of contactmomenten: its own table (the klant audit trail stays as it is), same columns
contactmoment_audittrail = sa.Table(
    "contactmoment_audittrail", metadata,
    *_audit_kolommen("contactmoment_id", "contactmoment"),
    sa.Index("ix_contactmoment_audittrail_contactmoment_id", "contactmoment_id", "id"),
)
