"""Imports every model so that the metadata (and Alembic) knows the whole schema."""
from crm.apikeys.models import ApiKey  # noqa: F401
from crm.audit.models import AuditEvent  # noqa: F401
from crm.auth.models import LoginAttempt  # noqa: F401
from crm.users.models import RoleGrant, User  # noqa: F401
from crm.catalogue.models import Tariff  # noqa: F401
from crm.contracts.models import Contract, ContractAddon, ContractEvent  # noqa: F401
from crm.ledger.models import LedgerEntry, RateAmount, RateTier, RateVersion  # noqa: F401
from territories.models import Building, Notification, PolygonVersion, Territory, Zone, ZoneAssignment  # noqa: F401
from crm.visits.models import DoorUnlock, Visit  # noqa: F401
from crm.finance.models import Adjustment, Dispute, DisputeMessage, Payout, PeriodClose, PeriodSnapshot  # noqa: F401
from crm.dashboards.models import Plan  # noqa: F401
