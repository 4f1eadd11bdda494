"""Use cases of the console: take an Actor, check permission, validate, audit, call.

Plain Python, no Streamlit. `Operations` (facade.py) holds one object per resource; see
docs/architecture.md, "Where each use case lives".
"""

from services.operations.bulk import CUSTOM_LIMIT
from services.operations.context import OpsContext
from services.operations.errors import (
    ConfirmationRequired,
    NotFound,
    OperationError,
    PermissionDenied,
    RecordUnavailable,
    StaleChange,
    UpstreamError,
    ValidationError,
)
from services.operations.facade import Operations
from services.operations.four_eyes import Held
from services.operations.limit_value import NO_CAP, UNKNOWN, GuestLimit
from services.operations.models import (
    BulkItem,
    BulkResult,
    GrantDetail,
    GrantLookup,
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
    canonical_username,
    permissions_for,
)
from services.operations.sync import SyncView
from services.store.readmodel import (
    LAST_PAGE,
    QUEUES,
    SORTS,
    Counts,
    Freshness,
    GrantFilter,
    GrantPage,
    PageCursor,
    Queue,
    RmGrant,
)

__all__ = [
    "CUSTOM_LIMIT",
    "NO_CAP",
    "UNKNOWN",
    "GuestLimit",
    "PERMISSIONS",
    "ROLES",
    "Actor",
    "canonical_username",
    "BulkItem",
    "BulkResult",
    "ConfirmationRequired",
    "Counts",
    "Freshness",
    "GrantFilter",
    "GrantPage",
    "LAST_PAGE",
    "PageCursor",
    "QUEUES",
    "Queue",
    "RmGrant",
    "SORTS",
    "SyncView",
    "GrantDetail",
    "GrantLookup",
    "GrantRow",
    "Held",
    "LimitChange",
    "LinkTokenIssued",
    "NotFound",
    "OperationError",
    "Operations",
    "OpsContext",
    "Overview",
    "Part",
    "Permission",
    "PermissionDenied",
    "RecordUnavailable",
    "ResyncOutcome",
    "StaleChange",
    "Role",
    "UpstreamError",
    "ValidationError",
    "can",
    "permissions_for",
]
