"""Names the standard fixes, declared once."""

SCOPE_KLANTEN_LEZEN = "klanten.lezen"
SCOPE_KLANTEN_AANMAKEN = "klanten.aanmaken"
SCOPE_KLANTEN_BIJWERKEN = "klanten.bijwerken"
SCOPE_KLANTEN_VERWIJDEREN = "klanten.verwijderen"
SCOPE_AUDITTRAILS_LEZEN = "audittrails.lezen"
# Contactmomenten API (DECISIONS #24); the relations use these scopes too
SCOPE_CONTACTMOMENTEN_LEZEN = "contactmomenten.lezen"
SCOPE_CONTACTMOMENTEN_AANMAKEN = "contactmomenten.aanmaken"
SCOPE_CONTACTMOMENTEN_BIJWERKEN = "contactmomenten.bijwerken"
SCOPE_CONTACTMOMENTEN_VERWIJDEREN = "contactmomenten.verwijderen"
ALLE_SCOPES = frozenset({
    SCOPE_KLANTEN_LEZEN, SCOPE_KLANTEN_AANMAKEN, SCOPE_KLANTEN_BIJWERKEN,
    SCOPE_KLANTEN_VERWIJDEREN, SCOPE_AUDITTRAILS_LEZEN,
    SCOPE_CONTACTMOMENTEN_LEZEN, SCOPE_CONTACTMOMENTEN_AANMAKEN, SCOPE_CONTACTMOMENTEN_BIJWERKEN,
    SCOPE_CONTACTMOMENTEN_VERWIJDEREN,
})

COMPONENT = "kc"            # audit trail `bron` and the Autorisaties API component of this register
KANAAL = "klanten"          # notification channel
RESOURCE = "klant"          # resource name in notifications and audit rows
KENMERK_SUBJECT_TYPE = "subject_type"   # kanaal filter name (snake_case, as the reference registers it)

# Contactmomenten API: audit `bron` and Autorisaties API component, kanaal, resource, kanaal filters
CM_COMPONENT = "cmc"
CM_KANAAL = "contactmomenten"
CM_RESOURCE = "contactmoment"
CM_KENMERKEN = ("bronorganisatie", "kanaal")

# X-Audit-Toelichting: the spec gives the audit trail's toelichting no maxLength; a reason for a request fits in
# this many characters, and an audit record must not silently be cut, so a longer one is refused (400)
TOELICHTING_MAX_LENGTE = 1000

SUBJECT_TYPES = ("natuurlijk_persoon", "niet_natuurlijk_persoon", "vestiging")

# actie -> actieWeergave in the audit trail
ACTIES = {
    "create": "Object aangemaakt",
    "update": "Object bijgewerkt",
    "partial_update": "Object deels bijgewerkt",
    "destroy": "Object verwijderd",
}
