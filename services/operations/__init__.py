"""Use cases of the console: take an Actor, check permission, validate, audit, call.

Plain Python, no Streamlit. See docs/architecture.md, "Operations".
"""

from services.operations.cli_audit import AuditUnavailable, CliAudit, cli_actor_username
from services.operations.errors import (
    NotFound,
    OperationError,
    PermissionDenied,
    UpstreamError,
    ValidationError,
)
from services.operations.models import (
    BulkItem,
    BulkResult,
    GrantDetail,
    GrantRow,
    LimitChange,
    LinkTokenIssued,
    Overview,
    Part,
    ResyncOutcome,
)
from services.operations.permissions import (
    PERMISSIONS,
    ROLES,
    Actor,
    Permission,
    Role,
    can,
    permissions_for,
)
from services.operations.service import CUSTOM_LIMIT, Operations

__all__ = [
    "CUSTOM_LIMIT",
    "PERMISSIONS",
    "ROLES",
    "Actor",
    "AuditUnavailable",
    "BulkItem",
    "BulkResult",
    "CliAudit",
    "GrantDetail",
    "GrantRow",
    "LimitChange",
    "LinkTokenIssued",
    "NotFound",
    "OperationError",
    "Operations",
    "Overview",
    "Part",
    "Permission",
    "PermissionDenied",
    "ResyncOutcome",
    "Role",
    "UpstreamError",
    "ValidationError",
    "can",
    "cli_actor_username",
    "permissions_for",
]
