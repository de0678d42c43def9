"""Names the standard fixes, declared once."""

SCOPE_KLANTEN_LEZEN = "klanten.lezen"
SCOPE_KLANTEN_AANMAKEN = "klanten.aanmaken"
SCOPE_KLANTEN_BIJWERKEN = "klanten.bijwerken"
SCOPE_KLANTEN_VERWIJDEREN = "klanten.verwijderen"
SCOPE_AUDITTRAILS_LEZEN = "audittrails.lezen"
ALLE_SCOPES = frozenset({
    SCOPE_KLANTEN_LEZEN, SCOPE_KLANTEN_AANMAKEN, SCOPE_KLANTEN_BIJWERKEN,
    SCOPE_KLANTEN_VERWIJDEREN, SCOPE_AUDITTRAILS_LEZEN,
})

COMPONENT = "kc"            # audit trail `bron` and the Autorisaties API component of this register
KANAAL = "klanten"          # notification channel
RESOURCE = "klant"          # resource name in notifications and audit rows
KENMERK_SUBJECT_TYPE = "subject_type"   # kanaal filter name (snake_case, as the reference registers it)

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
