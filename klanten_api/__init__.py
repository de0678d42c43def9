"""Klanten API 1.0 server: application factory, settings, authorisation, errors, HTTP glue, CLI."""
