"""Contactmomenten API: contactmoment, klantcontactmoment, objectcontactmoment and the contactmoment audit trail

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Why: one server is a complete KRC 1.0 (Klanten and Contactmomenten, DECISIONS #18). The contactmoment audit
trail has its own table, so that the klant audit trail (and what it serves) stays exactly as it is. Notifications
of contactmomenten use the existing outbox (`notificatie`, ordered per object by its `klant_uuid` column).
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CM_INDEXEN = ("bronorganisatie", "registratiedatum", "kanaal", "voorkeurskanaal", "voorkeurstaal", "initiatiefnemer",
              "medewerker_sleutel")


def upgrade() -> None:
    op.create_table(
        "contactmoment",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("vorig_contactmoment_id", Id, nullable=True),
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
        sa.Column("mw_aanwezig", sa.Boolean(), nullable=False),
        sa.Column("mw_identificatie", sa.String(24), nullable=True),
        sa.Column("mw_achternaam", sa.String(200), nullable=True),
        sa.Column("mw_voorletters", sa.String(20), nullable=True),
        sa.Column("mw_voorvoegsel_achternaam", sa.String(10), nullable=True),
        sa.Column("aangemaakt", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contactmoment"),
        sa.UniqueConstraint("uuid", name="uq_contactmoment_uuid"),
        sa.UniqueConstraint("vorig_contactmoment_id", name="uq_contactmoment_vorig_contactmoment_id"),
        sa.ForeignKeyConstraint(["vorig_contactmoment_id"], ["contactmoment.id"],
                                name="fk_contactmoment_vorig_contactmoment_id_contactmoment"),
    )
    for kolom in CM_INDEXEN:
        op.create_index(f"ix_contactmoment_{kolom}", "contactmoment", [kolom, "id"])

    op.create_table(
        "klantcontactmoment",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("contactmoment_id", Id, nullable=False),
        sa.Column("klant", sa.String(1000), nullable=False),
        sa.Column("klant_sleutel", sa.String(64), nullable=False),
        sa.Column("rol", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_klantcontactmoment"),
        sa.UniqueConstraint("uuid", name="uq_klantcontactmoment_uuid"),
        sa.UniqueConstraint("contactmoment_id", "klant_sleutel", "rol", name="uq_klantcontactmoment_uniek"),
        sa.ForeignKeyConstraint(["contactmoment_id"], ["contactmoment.id"], ondelete="CASCADE",
                                name="fk_klantcontactmoment_contactmoment_id_contactmoment"),
    )
    op.create_index("ix_klantcontactmoment_klant_sleutel", "klantcontactmoment", ["klant_sleutel", "id"])

    op.create_table(
        "objectcontactmoment",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("contactmoment_id", Id, nullable=False),
        sa.Column("object", sa.String(1000), nullable=False),
        sa.Column("object_sleutel", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_objectcontactmoment"),
        sa.UniqueConstraint("uuid", name="uq_objectcontactmoment_uuid"),
        sa.UniqueConstraint("contactmoment_id", "object_sleutel", name="uq_objectcontactmoment_uniek"),
        sa.ForeignKeyConstraint(["contactmoment_id"], ["contactmoment.id"], ondelete="CASCADE",
                                name="fk_objectcontactmoment_contactmoment_id_contactmoment"),
    )
    op.create_index("ix_objectcontactmoment_object_sleutel", "objectcontactmoment", ["object_sleutel", "id"])

    op.create_table(
        "contactmoment_audittrail",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("contactmoment_id", Id, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_contactmoment_audittrail"),
        sa.UniqueConstraint("uuid", name="uq_contactmoment_audittrail_uuid"),
        sa.ForeignKeyConstraint(["contactmoment_id"], ["contactmoment.id"], ondelete="CASCADE",
                                name="fk_contactmoment_audittrail_contactmoment_id_contactmoment"),
    )
    op.create_index("ix_contactmoment_audittrail_contactmoment_id", "contactmoment_audittrail",
                    ["contactmoment_id", "id"])


def downgrade() -> None:
    op.drop_table("contactmoment_audittrail")
    op.drop_table("objectcontactmoment")
    op.drop_table("klantcontactmoment")
    for kolom in CM_INDEXEN:
        op.drop_index(f"ix_contactmoment_{kolom}", table_name="contactmoment")
    op.drop_table("contactmoment")
