"""HTTP handlers, one function per operationId of spec/openapi.yaml (Connexion resolves them by name)."""
from .audittrail import audittrail_list, audittrail_read
from .klanten import (klant_create, klant_delete, klant_list, klant_partial_update, klant_read,
                      klant_update)

__all__ = ["klant_list", "klant_create", "klant_read", "klant_update", "klant_partial_update", "klant_delete",
           "audittrail_list", "audittrail_read"]
