"""The one catalogue of audit actions (the `action` column of the audit log).

Values are the stored strings: never rename one, old rows keep it."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # grants and integrations
    GRANT_VIEW = "grant.view"
    GRANT_REVOKE = "grant.revoke"
    INTEGRATION_RESYNC = "integration.resync"
    # guest limits
    LIMIT_UPDATE = "guest.limit.update"
    LIMIT_UPDATE_BULK = "guest.limit.update.bulk"
    TIER_APPLY = "guest.tier.apply"
    TIER_APPLY_BULK = "guest.tier.apply.bulk"
    # connect and tokens
    LINK_TOKEN_CREATE = "link_token.create"
    TOKEN_EXCHANGE = "token.exchange"
    TOKEN_IMPORT = "token.import"
    # the customer backend (backend/): a customer's own calls, actor customer:<ref>
    GRANT_DISCONNECT = "grant.disconnect"
    SESSION_CHECK = "session.check"
    HOLDINGS_READ = "holdings.read"
    # four-eyes approval requests (services/operations/approvals.py)
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_CANCELLED = "approval.cancelled"
    # audit log
    AUDIT_READ = "audit.read"
    AUDIT_EXPORT = "audit.export"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_RECONCILE = "audit.reconcile"  # reading or running the reconciler (admin)
    # console sign-in
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGOUT = "auth.logout"
    SSO_LOGIN = "auth.sso_login"  # single sign-on: succeeded, or denied with the reason
    # console sessions and second factor
    SESSION_ENDED = "auth.session_ended"
    UNLOCK = "auth.unlock"
    TOTP_ENROLLED = "auth.totp_enrolled"
    TOTP_FAILED = "auth.totp_failed"
    TOTP_REMOVED = "auth.totp_removed"
    RECOVERY_CODE_USED = "auth.recovery_code_used"
    # pages
    PAGE_VIEW = "page.view"
    # the read model's sync worker (admins)
    SYNC_STATUS_VIEW = "sync.status.view"
    # console users (services/operations/users.py: the Users page and the users command)
    USER_PASSWD = "user.passwd"
    USER_ADD = "user.add"
    USER_SET_ROLES = "user.set_roles"
    USER_REMOVE = "user.remove"
    USER_ADMIN_REQUESTED = "user.admin_requested"  # admin asked for someone, a second admin grants
    USER_TOTP_RESET = "user.totp_reset"
    USER_END_SESSIONS = "user.end_sessions"
    USER_UNLOCK = "user.unlock"
    USER_IMPORT = "user.import"  # a streamlit-authenticator config merged
    USER_TO_SSO = "user.to_sso"  # a password account now signs in through single sign-on
    # operator command-line tools
    VAULT_ROTATE_KEY = "vault.rotate_key"


__all__ = ["AuditAction"]
