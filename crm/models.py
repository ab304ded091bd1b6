"""Imports every model so that the metadata (and Alembic) knows the whole schema."""
from crm.apikeys.models import ApiKey  # noqa: F401
from crm.audit.models import AuditEvent  # noqa: F401
from crm.auth.models import LoginAttempt  # noqa: F401
from crm.users.models import RoleGrant, User  # noqa: F401
