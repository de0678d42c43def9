"""Use cases and business rules of the Klanten API (kla-001, kla-002, 11-proef, subject rules)."""
