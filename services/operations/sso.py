"""Who may enter through single sign-on: an OpenID Connect identity (the ID token's claims,
as Streamlit's `st.login` hands them over in `st.user`) becomes a console user with roles,
or a refusal with its reason.

- The roles come from one claim (`sso_claim`, default `groups`) through the role map
  (`CONSOLE_SSO_ROLE_MAP`, `group=role` pairs). Nobody is let in by default: an identity
  with no mapped group is refused (`NO_MAPPED_GROUP`).
- The console user is the `sso_username_claim` (default `preferred_username`), else the
  `email` claim; of an address only the part before `@` (`alice@corp.example` is `alice`),
  in the console's one form of a username (NFKC, case-folded) and within the users file's
  rules (`BAD_USERNAME` otherwise).
- An identity opens one console session, soon after the person signed in at the provider:
  Streamlit keeps the identity in a cookie for 30 days, so without this a console logout,
  "log out everywhere" or an idle timeout would be undone by the next page load. An identity
  issued more than `MAX_IDENTITY_AGE` ago (`STALE_IDENTITY`), or older than a console
  session the same user opened since (`IDENTITY_USED`), asks for a new sign-in.
- A password account of the same name is not taken over (`LOCAL_ACCOUNT`): an
  administrator decides whether that person moves to single sign-on. An SSO entry is bound
  to the provider's account (`issuer subject`) at its first sign-in; another account that
  maps to the same username is refused (`SUBJECT_MISMATCH`).
- `mfa`: the provider says (RFC 8176 `amr` values) that the person used a second factor, so
  the console does not ask for its own TOTP code again; otherwise the required-roles rule
  applies as for a password login.

Refusals are audited here (`auth.sso_login`, `denied`, with the reason); the accepted
sign-in is audited once the console session exists (`record_sso_login`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.operations.auth import ANONYMOUS, typed_username
from services.operations.context import OpsContext
from services.operations.permissions import ROLES, Actor, canonical_username
from services.store.actions import AuditAction

#: RFC 8176 authentication method references that mean more than a password was used.
MFA_METHODS = frozenset({"mfa", "mca", "otp", "hwk", "swk", "sc", "sms", "tel", "fpt", "face",
                         "iris", "retina", "vbm"})
#: Seconds after the provider issued an identity during which it may open a session.
MAX_IDENTITY_AGE = 600.0
#: A console username (the users file's rule, services/operations/users_file.py USERNAME_RE).
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

NO_MAPPED_GROUP = "NO_MAPPED_GROUP"
BAD_USERNAME = "BAD_USERNAME"
STALE_IDENTITY = "STALE_IDENTITY"
IDENTITY_USED = "IDENTITY_USED"
LOCAL_ACCOUNT = "LOCAL_ACCOUNT"
SUBJECT_MISMATCH = "SUBJECT_MISMATCH"

#: What the sign-in page says for each refusal (plain words; the code goes to the audit log).
REFUSAL_MESSAGES = {
    NO_MAPPED_GROUP: ("Your account was recognised, but none of your groups gives access to "
                      "this console. Ask your IT team to add you to a console group."),
    BAD_USERNAME: ("Your identity provider did not send a usable user name. Ask your IT team "
                   "to check the console's single sign-on settings."),
    STALE_IDENTITY: "Your single sign-on has expired. Sign in with SSO again.",
    IDENTITY_USED: "Sign in with SSO again to open a new console session.",
    LOCAL_ACCOUNT: ("A console account with a password already has your user name. Ask an "
                    "administrator to move it to single sign-on."),
    SUBJECT_MISMATCH: ("Your user name already belongs to another single sign-on account. "
                       "Ask an administrator to check your console account."),
}


@dataclass(frozen=True)
class SsoPolicy:
    """The settings' rules: the groups claim, the role map, the username claim."""

    claim: str = "groups"
    role_map: tuple[tuple[str, str], ...] = ()
    username_claim: str = "preferred_username"

    def roles_for(self, groups: Iterable[str]) -> tuple[str, ...]:
        held = set(groups)
        roles = {role for group, role in self.role_map if group in held}
        return tuple(r for r in ROLES if r in roles)


@dataclass(frozen=True)
class SsoIdentity:
    """What the console keeps of an accepted identity."""

    username: str
    roles: tuple[str, ...]
    name: str
    email: str | None
    subject: str
    issuer: str
    issued_at: datetime
    mfa: bool
    groups: tuple[str, ...]
    #: What the sign-in changed in the users file: None, or `{"added": True}`, or
    #: `{"roles_before": [...]}` (the groups changed at the provider).
    users_file_change: dict[str, Any] | None = None

    @property
    def account(self) -> str | None:
        """The provider's account, as the users file binds it: `issuer subject` (None when
        the provider sent no subject)."""
        return f"{self.issuer} {self.subject}" if self.subject else None

    def audit_params(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "subject": self.subject, "mfa": self.mfa,
                "groups": list(self.groups)[:50], "roles": list(self.roles),
                **(self.users_file_change or {})}


@dataclass(frozen=True)
class SsoRefusal:
    code: str
    username: str | None = None

    @property
    def message(self) -> str:
        return REFUSAL_MESSAGES[self.code]


def _strings(value: object) -> tuple[str, ...]:
    """A claim that is a list of strings or one string (some providers send one group as a
    string, `amr` sometimes too)."""
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if isinstance(v, (str, int)) and str(v))
    return ()


def _issued_at(claims: Mapping[str, Any]) -> datetime | None:
    value = claims.get("iat")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def multi_factor(claims: Mapping[str, Any]) -> bool:
    """Whether the `amr` claim names a method beyond a password."""
    return bool(MFA_METHODS & {m.lower() for m in _strings(claims.get("amr"))})


class SsoOps:
    """`ops.sso`: the decision on an identity, and the audit of its outcome."""

    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"SsoOps({self.ctx!r})"

    def admit(self, policy: SsoPolicy, claims: Mapping[str, Any], now: datetime, *,
              local_password_user: Callable[[str], bool] | None = None,
              session_opened_since: Callable[[str, datetime], bool] | None = None
              ) -> SsoIdentity | SsoRefusal:
        """Decide on an identity's claims. `local_password_user(username)` says whether a
        password account of that name exists; `session_opened_since(username, when)`
        whether that user opened a console session at or after `when`. A refusal is
        audited (`auth.sso_login`, `denied`) except the two that only ask for a new sign-in
        (a stale or used identity: nobody was refused)."""
        identity_or_code = self._decide(policy, claims, now, local_password_user,
                                        session_opened_since)
        if isinstance(identity_or_code, SsoIdentity):
            return identity_or_code
        code, username = identity_or_code
        refusal = SsoRefusal(code, username)
        if code not in (STALE_IDENTITY, IDENTITY_USED):
            self.record_refused(claims, refusal)
        return refusal

    def _decide(self, policy: SsoPolicy, claims: Mapping[str, Any], now: datetime,
                local_password_user: Callable[[str], bool] | None,
                session_opened_since: Callable[[str, datetime], bool] | None
                ) -> SsoIdentity | tuple[str, str | None]:
        raw_name = claims.get(policy.username_claim) or claims.get("email")
        username = (canonical_username(raw_name.split("@", 1)[0])
                    if isinstance(raw_name, str) else "")
        username = username if _USERNAME_RE.match(username) else ""
        issued = _issued_at(claims)
        if issued is None or (now - issued).total_seconds() > MAX_IDENTITY_AGE:
            return STALE_IDENTITY, username or None
        if not username:
            return BAD_USERNAME, None
        if session_opened_since is not None and session_opened_since(username, issued):
            return IDENTITY_USED, username
        groups = _strings(claims.get(policy.claim))
        roles = policy.roles_for(groups)
        if not roles:
            return NO_MAPPED_GROUP, username
        if local_password_user is not None and local_password_user(username):
            return LOCAL_ACCOUNT, username
        name = claims.get("name")
        email = claims.get("email")
        return SsoIdentity(
            username=username, roles=roles,
            name=str(name) if isinstance(name, str) and name else username,
            email=str(email) if isinstance(email, str) and email else None,
            subject=str(claims.get("sub") or ""), issuer=str(claims.get("iss") or ""),
            issued_at=issued, mfa=multi_factor(claims), groups=groups)

    def record_refused(self, claims: Mapping[str, Any], refusal: SsoRefusal) -> None:
        """A refused identity, by `anonymous` (like a failed password login): the name the
        provider sent, its subject and groups go to the params."""
        self.ctx.event(ANONYMOUS, (), AuditAction.SSO_LOGIN, "denied",
                       params={"sso_username": typed_username(refusal.username or ""),
                               "subject": typed_username(claims.get("sub"), 255),
                               "issuer": typed_username(claims.get("iss"), 255),
                               "groups": [typed_username(g) for g in
                                          _strings(claims.get("groups"))[:50]]},
                       error_code=refusal.code)

    def record_sso_login(self, actor: Actor, identity: SsoIdentity) -> None:
        """The accepted sign-in, once its console session exists."""
        self.ctx.event(actor.username, actor.roles, AuditAction.SSO_LOGIN, "succeeded",
                       target_type="user", target_id=actor.username,
                       params=identity.audit_params())
