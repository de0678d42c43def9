"""Notifications to the Notificaties API: the outbox relay and the kanaal registration."""
