"""klant, audittrail, klantnummer_reeks and the notificatie outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ZOEKSLEUTELS = ("inp_bsn", "anp_identificatie", "inp_a_nummer", "inn_nnp_id", "ann_identificatie", "vestigings_nummer")
FILTER_KOLOMMEN = (
    "klantnummer", "bedrijfsnaam", "functie", "achternaam", "telefoonnummer", "emailadres", "subject",
    "subject_type", "adres_straatnaam", "adres_postcode", "adres_woonplaatsnaam", "adres_landcode",
) + tuple(f"zoek_{k}" for k in ZOEKSLEUTELS)


def upgrade() -> None:
    op.create_table(
        "klant",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False),
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
        sa.Column("adres_aanwezig", sa.Boolean(), nullable=False),
        sa.Column("adres_straatnaam", sa.String(100), nullable=True),
        sa.Column("adres_huisnummer", sa.Integer(), nullable=True),
        sa.Column("adres_huisletter", sa.String(1), nullable=True),
        sa.Column("adres_huisnummertoevoeging", sa.String(4), nullable=True),
        sa.Column("adres_postcode", sa.String(7), nullable=True),
        sa.Column("adres_woonplaatsnaam", sa.String(80), nullable=True),
        sa.Column("adres_landcode", sa.String(4), nullable=True),
        sa.Column("subject_identificatie", sa.JSON(), nullable=True),
        *(sa.Column(f"zoek_{k}", sa.String(24), nullable=True) for k in ZOEKSLEUTELS),
        sa.Column("aangemaakt", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_klant"),
        sa.UniqueConstraint("uuid", name="uq_klant_uuid"),
        sa.UniqueConstraint("bronorganisatie", "klantnummer", name="uq_klant_bronorganisatie_klantnummer"),
    )
    for kolom in FILTER_KOLOMMEN:
        op.create_index(f"ix_klant_{kolom}", "klant", [kolom, "id"])

    op.create_table(
        "audittrail",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("klant_id", Id, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_audittrail"),
        sa.UniqueConstraint("uuid", name="uq_audittrail_uuid"),
        sa.ForeignKeyConstraint(["klant_id"], ["klant.id"], ondelete="CASCADE", name="fk_audittrail_klant_id_klant"),
    )
    op.create_index("ix_audittrail_klant_id", "audittrail", ["klant_id", "id"])

    op.create_table(
        "klantnummer_reeks",
        sa.Column("bronorganisatie", sa.String(9), nullable=False),
        sa.Column("laatste", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bronorganisatie", name="pk_klantnummer_reeks"),
    )

    op.create_table(
        "notificatie",
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
        sa.PrimaryKeyConstraint("id", name="pk_notificatie"),
    )
    op.create_index("ix_notificatie_status", "notificatie", ["status", "volgende_poging", "id"])
    op.create_index("ix_notificatie_klant_uuid", "notificatie", ["klant_uuid", "id"])


def downgrade() -> None:
    op.drop_table("notificatie")
    op.drop_table("klantnummer_reeks")
    op.drop_table("audittrail")
    for kolom in FILTER_KOLOMMEN:
        op.drop_index(f"ix_klant_{kolom}", table_name="klant")
    op.drop_table("klant")
