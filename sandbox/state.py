"""The sandbox's state and the behaviour of every Kryptos endpoint (no HTTP in here)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.data import (
    ACCESS_TOKEN_LIFETIME,
    ALL_ASSETS,
    CLIENTS,
    DEFAULT_SCOPES,
    KNOWN_SCOPES,
    MAIN_CLIENT,
    PLATFORM_DEFAULT_LIMIT,
    SEED_NOW,
    GrantRecord,
    IntegrationState,
    UserState,
    build_world,
    hex_id,
    make_user,
    uuid_from,
)
from sandbox.faults import ResyncFault
from sandbox.timer import DueTimer

# (event type, data, ISO time on the sandbox clock): what the webhook sender is given.
EventSink = Callable[[str, dict, str], None]
LINK_TOKEN_TTL = 30 * 60
PUBLIC_TOKEN_TTL = 30 * 60


class Clock:
    """The sandbox clock: real time plus an offset that tests move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class ConnectFailure(Exception):
    """A Connect API error: `{"success": false, "error": message, "code": code}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class DataFailure(Exception):
    """A data API error: `{"error": code, "message": message, "details": []}`."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []


def iso(ts: float) -> str:
    """ISO 8601 UTC with a `Z`, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def ok(data: Mapping[str, Any], status: int = 200) -> tuple[int, dict]:
    return status, {"success": True, "data": dict(data)}


@dataclass
class LinkTokenRecord:
    token: str
    client_id: str
    scopes: str
    expires_at: float
    user_id: str | None


@dataclass
class PublicTokenRecord:
    token: str
    client_id: str
    user_id: str
    kind: str
    workspace_id: str
    scopes: str
    expires_at: float
    customer_ref: str | None
    used: bool = False


class SandboxState:
    """All mutable state of one sandbox; every public method holds the lock."""

    def __init__(self, seed: int, grants: int, resync_delay: float, newer_api: bool,
                 clock: Clock, on_event: EventSink | None = None) -> None:
        self.seed = seed
        self.grant_count = grants
        self.resync_delay = resync_delay
        self.newer_api = newer_api
        self.clock = clock
        self.lock = threading.RLock()
        world = build_world(seed, grants)
        self.workspaces = world.workspaces
        self.specials = world.specials
        self.grants: list[GrantRecord] = world.grants
        self.by_id = {g.grant_id: g for g in self.grants}
        self.by_token = {g.access_token: g for g in self.grants}
        self.by_user: dict[str, list[GrantRecord]] = {}
        self.client_workspaces: dict[str, list[str]] = {}
        for g in self.grants:
            self.by_user.setdefault(g.user_id, []).append(g)
            known = self.client_workspaces.setdefault(g.client_id, [])
            if g.workspace_id not in known:
                known.append(g.workspace_id)
        self.users: dict[str, UserState] = {}
        self.link_tokens: dict[str, LinkTokenRecord] = {}
        self.public_tokens: dict[str, PublicTokenRecord] = {}
        self.pending_users: dict[str, UserState] = {}
        self.rng = random.Random(f"{seed}:runtime")
        self.on_event = on_event
        self.resyncing: dict[tuple[str, str], tuple[str, IntegrationState]] = {}
        self.resync_faults: list[ResyncFault] = []
        self.timer = DueTimer(clock, self.complete_due)

    # --- helpers ----------------------------------------------------------------------------

    def user_of(self, grant: GrantRecord) -> UserState:
        user = self.users.get(grant.user_id)
        if user is None:
            rng = random.Random(grant.detail_key)
            user = make_user(rng, grant.user_id, grant.kind, grant.created_at, SEED_NOW,
                             grant.specials)
            self.users[grant.user_id] = user
        self.complete_due()
        return user

    # --- resync lifecycle and its webhook events --------------------------------------------

    def emit(self, event: str, user_id: str, integ: IntegrationState) -> None:
        if self.on_event is not None:
            self.on_event(event, {**integ.to_api(), "uid": user_id}, iso(self.clock.now()))

    def complete_due(self) -> float | None:
        """Finish the resyncs whose time has come (sending their events); returns when the
        next one is due on the sandbox clock, or None."""
        with self.lock:
            now = self.clock.now()
            for key, (user_id, integ) in list(self.resyncing.items()):
                if integ.refresh(now):
                    del self.resyncing[key]
                    failed = integ.status == "FAILED"
                    self.emit("integration.failed" if failed else "integration.updated",
                              user_id, integ)
            pending = [i.resync_until for _, i in self.resyncing.values()
                       if i.resync_until is not None]
            return min(pending) if pending else None

    def _take_resync_fault(self, wallet_id: str) -> str | None:
        for fault in self.resync_faults:
            if fault.count > 0 and fault.wallet_id in (None, wallet_id):
                fault.count -= 1
                return fault.message
        return None

    def close(self) -> None:
        self.timer.stop()

    def active_grant_for_user(self, client_id: str, user_id: str) -> GrantRecord | None:
        for g in self.by_user.get(user_id, ()):
            if g.client_id == client_id and not g.revoked:
                return g
        return None

    def workspace_name(self, workspace_id: str) -> str | None:
        ws = self.workspaces.get(workspace_id)
        return ws.name if ws else None

    def effective_limit(self, grant: GrantRecord, user: UserState) -> tuple[int, bool]:
        """(limit, limiter enabled) after resolution: user override, workspace, platform."""
        ws = self.workspaces.get(grant.workspace_id)
        limit = user.limit_override
        if limit is None and ws is not None:
            limit = ws.default_limit
        if limit is None:
            limit = PLATFORM_DEFAULT_LIMIT
        enabled = True if user.limiter_override is None else user.limiter_override
        return limit, enabled

    # --- Connect API ------------------------------------------------------------------------

    def create_link_token(self, client_id: str, body: Mapping[str, Any]) -> tuple[int, dict]:
        scopes = body.get("scopes", DEFAULT_SCOPES)
        if scopes is None:
            scopes = DEFAULT_SCOPES
        if not isinstance(scopes, str) or not scopes.split():
            raise ConnectFailure(400, "INVALID_REQUEST", "scopes must be a space-separated string")
        unknown = [s for s in scopes.split() if s not in KNOWN_SCOPES]
        if unknown:
            raise ConnectFailure(400, "INVALID_SCOPE", f"Scope not allowed: {unknown[0]}")
        access_token = body.get("access_token")
        with self.lock:
            now = self.clock.now()
            token = "link_" + hex_id(self.rng, 12)
            data: dict[str, Any] = {"link_token": token, "expires_at": iso(now + LINK_TOKEN_TTL)}
            user_id = None
            if access_token is not None:
                grant = self.by_token.get(access_token) if isinstance(access_token, str) else None
                if grant is None or grant.revoked or grant.client_id != client_id:
                    raise ConnectFailure(401, "INVALID_TOKEN", "Access token is invalid or revoked")
                user_id = grant.user_id
                data.update(user_id=grant.user_id, workspace_id=grant.workspace_id,
                            has_existing_grant=True)
            self.link_tokens[token] = LinkTokenRecord(token, client_id, scopes,
                                                      now + LINK_TOKEN_TTL, user_id)
            return ok(data)

    def check_session(self, client_id: str, body: Mapping[str, Any]) -> tuple[int, dict]:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ConnectFailure(400, "INVALID_REQUEST", "access_token is required")
        with self.lock:
            grant = self.by_token.get(token)
            if grant is None or grant.client_id != client_id:
                return ok({"has_valid_session": False, "reason": "invalid_token"})
            if grant.revoked:
                return ok({"has_valid_session": False, "reason": "grant_revoked"})
            return ok({
                "has_valid_session": True,
                "user_id": grant.user_id,
                "workspace_id": grant.workspace_id,
                "workspace_name": self.workspace_name(grant.workspace_id),
                "granted_scopes": grant.scopes,
                "grant_id": grant.grant_id,
            })

    def exchange(self, client_id: str, body: Mapping[str, Any]) -> tuple[int, dict]:
        token = body.get("public_token")
        if not isinstance(token, str) or not token:
            raise ConnectFailure(400, "INVALID_REQUEST", "public_token is required")
        with self.lock:
            rec = self.public_tokens.get(token)
            if rec is None or rec.client_id != client_id:
                raise ConnectFailure(400, "INVALID_TOKEN", "Public token is invalid")
            if rec.used:
                raise ConnectFailure(400, "TOKEN_ALREADY_USED", "Public token was already used")
            now = self.clock.now()
            if now >= rec.expires_at:
                raise ConnectFailure(400, "TOKEN_EXPIRED", "Public token has expired")
            rec.used = True
            grant = GrantRecord(
                grant_id="cgrant_" + hex_id(self.rng, 12),
                client_id=client_id,
                user_id=rec.user_id,
                kind=rec.kind,
                workspace_id=rec.workspace_id,
                scopes=rec.scopes,
                created_at=now,
                access_token="cat_" + hex_id(self.rng, 16),
                customer_ref=rec.customer_ref,
                detail_key=f"{self.seed}:runtime:{rec.user_id}",
            )
            self.grants.append(grant)
            self.by_id[grant.grant_id] = grant
            self.by_token[grant.access_token] = grant
            self.by_user.setdefault(grant.user_id, []).append(grant)
            self.users[rec.user_id] = self.pending_users.pop(rec.user_id)
            return ok({
                "access_token": grant.access_token,
                "grant_id": grant.grant_id,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME,
                "scope": grant.scopes,
                "workspace_id": grant.workspace_id,
            })

    def _grant_for_client(self, client_id: str, grant_id: Any) -> GrantRecord:
        grant = self.by_id.get(grant_id) if isinstance(grant_id, str) else None
        if grant is None:
            raise ConnectFailure(404, "GRANT_NOT_FOUND", "No grant found with this ID")
        if grant.client_id != client_id:
            raise ConnectFailure(403, "ACCESS_DENIED", "Grant does not belong to this client")
        return grant

    def revoke(self, client_id: str, body: Mapping[str, Any]) -> tuple[int, dict]:
        grant_id = body.get("grant_id")
        if not isinstance(grant_id, str) or not grant_id:
            raise ConnectFailure(400, "INVALID_REQUEST", "grant_id is required")
        with self.lock:
            grant = self._grant_for_client(client_id, grant_id)
            if grant.revoked:
                raise ConnectFailure(400, "INVALID_GRANT", "Grant is already revoked")
            grant.revoked = True
            grant.revoked_at = self.clock.now()
            return 200, {"success": True, "message": "Grant revoked successfully"}

    def list_grants(self, client_id: str) -> tuple[int, dict]:
        with self.lock:
            rows = [
                {
                    "grant_id": g.grant_id,
                    "workspace_id": g.workspace_id,
                    "scopes": g.scopes,
                    "created_at": iso(g.created_at),
                    "expires_at": iso(g.created_at + ACCESS_TOKEN_LIFETIME),
                }
                for g in self.grants
                if g.client_id == client_id and not g.revoked
            ]
        return ok({"grants": rows, "count": len(rows)})

    def resync(self, client_id: str, wallet_id: str, body: Mapping[str, Any]) -> tuple[int, dict]:
        user_id = body.get("user_id")
        mode = body.get("mode")
        if not isinstance(user_id, str) or not user_id:
            raise ConnectFailure(400, "INVALID_REQUEST", "user_id is required")
        if mode not in ("latest", "from_start"):
            raise ConnectFailure(400, "INVALID_REQUEST", "mode must be 'latest' or 'from_start'")
        with self.lock:
            grant = self.active_grant_for_user(client_id, user_id)
            if grant is None:
                raise ConnectFailure(403, "GRANT_NOT_FOUND",
                                     "The user has not granted this client access")
            user = self.user_of(grant)
            integ = user.integration(wallet_id)
            if integ is None:
                raise ConnectFailure(404, "INTEGRATION_NOT_FOUND",
                                     "No wallet with this walletId exists for the user")
            is_csv = integ.type == "csv"
            if self.newer_api and integ.sync_disabled:
                raise ConnectFailure(409, "SYNC_DISABLED", "Sync is disabled for this integration")
            if self.newer_api and is_csv and integ.csv_resync_unsupported:
                raise ConnectFailure(409, "CSV_RESYNC_UNSUPPORTED",
                                     "Resync is not supported for this CSV integration")
            if is_csv and mode == "latest":
                raise ConnectFailure(409, "CSV_RESYNC_LATEST_UNSUPPORTED",
                                     "mode 'latest' is not valid for CSVs; use 'from_start'")
            if is_csv and not integ.csv_has_source:
                raise ConnectFailure(404, "CSV_SOURCE_MISSING",
                                     "No original file is on record for this CSV")
            self._start_resync(grant.user_id, integ)
            kind = "csv" if is_csv else ("exchange" if integ.category == "exchange" else "wallet")
            data: dict[str, Any] = {"mode": mode, "integration_type": kind, "wallet_id": wallet_id}
            if is_csv:
                data["job_id"] = "job_" + hex_id(self.rng, 8)
                data["status"] = "ongoing"
            else:
                data["status"] = "queued"
            return ok(data, 202)

    def _start_resync(self, user_id: str, integ: IntegrationState) -> None:
        integ.status = "ONGOING"
        integ.message = None
        integ.resync_until = self.clock.now() + self.resync_delay
        integ.resync_failure = self._take_resync_fault(integ.wallet_id)
        self.resyncing[(user_id, integ.wallet_id)] = (user_id, integ)
        self.emit("integration.updated", user_id, integ)
        self.timer.poke()

    def transaction_limit(self, client_id: str, grant_id: str,
                          body: Mapping[str, Any]) -> tuple[int, dict]:
        limit = body.get("transactionLimit")
        enable = body.get("enableLimiter")
        if limit is None and enable is None:
            raise ConnectFailure(400, "INVALID_REQUEST",
                                 "At least one of transactionLimit or enableLimiter is required")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit <= 0):
            raise ConnectFailure(400, "INVALID_REQUEST",
                                 "transactionLimit must be a positive integer")
        if enable is not None and not isinstance(enable, bool):
            raise ConnectFailure(400, "INVALID_REQUEST", "enableLimiter must be a boolean")
        with self.lock:
            grant = self._grant_for_client(client_id, grant_id)
            if grant.revoked:
                raise ConnectFailure(400, "INVALID_GRANT", "Grant is revoked")
            if grant.kind != "guest":
                raise ConnectFailure(400, "NOT_ANON_USER",
                                     "User is not a Guest account; limits apply to Guests only")
            user = self.user_of(grant)
            before = self.effective_limit(grant, user)
            if limit is not None:
                user.limit_override = limit
            if enable is not None:
                user.limiter_override = enable
            after = self.effective_limit(grant, user)
            data: dict[str, Any] = {
                "grant_id": grant.grant_id,
                "user_id": grant.user_id,
                "transaction_limit": after[0],
                "enable_limiter": after[1],
            }
            if self.newer_api:
                data["previous_transaction_limit"] = before[0]
                data["previous_enable_limiter"] = before[1]
                data["resync"] = self._limit_resync(grant.user_id, user, before, after)
            return ok(data)

    def _limit_resync(self, user_id: str, user: UserState, before: tuple[int, bool],
                      after: tuple[int, bool]) -> dict | None:
        def cap(v: tuple[int, bool]) -> float:
            return v[0] if v[1] else float("inf")

        if cap(after) <= cap(before):
            return None
        triggered: list[str] = []
        failed: list[str] = []
        skipped = 0
        for integ in user.integrations:
            if not integ.limit_exceeded:
                skipped += 1
            elif integ.sync_disabled:
                failed.append(integ.wallet_id)
                self.emit("integration.failed", user_id, integ)
            else:
                self._start_resync(user_id, integ)
                triggered.append(integ.wallet_id)
        return {"triggered": triggered, "failed": failed, "skipped": skipped}

    # --- data API ---------------------------------------------------------------------------

    def data_grant(self, client_id: str | None, secret: str | None,
                   authorization: str | None, scopes_needed: tuple[str, ...]) -> GrantRecord:
        if client_id is None or CLIENTS.get(client_id) != secret:
            raise DataFailure(401, "unauthorized", "Invalid client credentials")
        if not authorization or not authorization.startswith("Bearer "):
            raise DataFailure(401, "unauthorized", "Missing bearer token")
        token = authorization[len("Bearer "):].strip()
        grant = self.by_token.get(token)
        if grant is None or grant.client_id != client_id or grant.revoked:
            raise DataFailure(401, "unauthorized", "Invalid, expired or revoked access token")
        granted = set(grant.scopes.split())
        if not granted.intersection(scopes_needed):
            raise DataFailure(403, "forbidden",
                              f"Missing required scope: {' or '.join(scopes_needed)}")
        return grant

    def holdings(self, grant: GrantRecord, include_spam: bool,
                 calculated: bool) -> tuple[int, dict]:
        with self.lock:
            user = self.user_of(grant)
            per_asset: dict[str, list[tuple[IntegrationState, float]]] = {}
            for integ in user.integrations:
                if integ.type == "csv" and not calculated:
                    continue
                for token_id, qty in integ.balances:
                    if ALL_ASSETS[token_id].spam and not include_spam:
                        continue
                    per_asset.setdefault(token_id, []).append((integ, qty))
            rows: list[dict[str, Any]] = []
            for token_id, parts in per_asset.items():
                asset = ALL_ASSETS[token_id]
                total = round(sum(q for _, q in parts), 8)
                ratio = 1.0 if asset.type == "fiat" else user.cost_ratio.get(token_id, 1.0)
                cost = round(total * asset.price * ratio, 2)
                value = round(total * asset.price, 2)
                pnl = round(value - cost, 2) if cost else 0.0
                has_calc = any(i.type == "csv" for i, _ in parts)
                rows.append({
                    "asset": asset.to_api(),
                    "totalQuantity": total,
                    "costbasis": cost,
                    "marketPrice": asset.price,
                    "marketValue": value,
                    "unrealizedPnL": pnl,
                    "roi": round(pnl / cost * 100, 4) if cost else 0,
                    "baseCurrency": "USD",
                    "24hrChange": asset.change_24h,
                    "hasCalculatedBalance": has_calc,
                    "assetDistribution": [
                        {
                            "quantity": q,
                            "account": {"provider": i.provider, "walletId": i.wallet_id},
                            "allocationPercentage": round(q / total * 100, 4) if total else 0,
                            "isCalculatedBalance": i.type == "csv",
                        }
                        for i, q in parts
                    ],
                })
            rows.sort(key=lambda r: -r["marketValue"])
            total_value = round(sum(r["marketValue"] for r in rows), 2)
            total_cost = round(sum(r["costbasis"] for r in rows), 2)
            total_pnl = round(sum(r["unrealizedPnL"] for r in rows), 2)
            change = (sum(r["marketValue"] * r["24hrChange"] for r in rows) / total_value
                      if total_value else 0.0)
            return 200, {
                "holdings": rows,
                "summary": {
                    "totalValue": total_value,
                    "totalCostBasis": total_cost,
                    "totalUnrealizedPnL": total_pnl,
                    "roiPercentage": round(total_pnl / total_cost * 100, 4) if total_cost else 0,
                    "total24hrChange": round(change, 4),
                },
                "user_id": grant.user_id,
                "timestamp": int(self.clock.now() * 1000),
            }

    def integrations(self, grant: GrantRecord, page: int, page_size: int,
                     searched: str | None) -> tuple[int, dict]:
        with self.lock:
            user = self.user_of(grant)
            items = user.integrations
            if searched:
                words = searched.lower().split()
                items = [i for i in items
                         if all(w in i.search_text(user.name) for w in words)]
            start = (page - 1) * page_size
            chunk = [i.to_api() for i in items[start:start + page_size]]
            return 200, {
                "data": chunk,
                "pagination": {
                    "page": page,
                    "pageSize": page_size,
                    "totalCount": len(items),
                    "hasNextPage": start + page_size < len(items),
                    "hasPreviousPage": page > 1,
                },
                "user_id": grant.user_id,
                "timestamp": int(self.clock.now() * 1000),
            }

    def userinfo(self, grant: GrantRecord) -> tuple[int, dict]:
        with self.lock:
            user = self.user_of(grant)
            limit: int | None = None
            if grant.kind == "guest":
                value, enabled = self.effective_limit(grant, user)
                limit = value if enabled else None
            return 200, {
                "message": "User information retrieved successfully",
                "userInfo": {
                    "sub": grant.user_id,
                    "name": user.name,
                    "email": user.email,
                    "email_verified": user.email is not None,
                    "preferred_username": user.email,
                    "language": user.language,
                    "transaction_limit": limit,
                },
                "scopes": grant.scopes.split(),
            }

    # --- sandbox control --------------------------------------------------------------------

    def create_public_token(self, body: Mapping[str, Any]) -> dict:
        kind = body.get("kind", "guest")
        client_id = body.get("client_id") or MAIN_CLIENT
        if kind not in ("guest", "linked"):
            raise ValueError("kind must be 'guest' or 'linked'")
        if client_id not in CLIENTS:
            raise ValueError(f"unknown client_id {client_id!r}")
        name, email = body.get("name"), body.get("email")
        with self.lock:
            now = self.clock.now()
            scopes = DEFAULT_SCOPES
            link = body.get("link_token")
            if link is not None:
                rec = self.link_tokens.get(link)
                if rec is None or rec.client_id != client_id:
                    raise ValueError("INVALID_TOKEN: unknown link token")
                if now >= rec.expires_at:
                    raise ValueError("TOKEN_EXPIRED: link token has expired")
                scopes = rec.scopes
                grant = (self.active_grant_for_user(client_id, rec.user_id)
                         if rec.user_id else None)
                if grant is not None:
                    return self._resume(grant, now)
            user_id = "anon_" + hex_id(self.rng, 12) if kind == "guest" else uuid_from(self.rng)
            user = make_user(random.Random(f"{self.seed}:runtime:{user_id}"), user_id, kind,
                             now, now, full=True, name=name, email=email)
            self.pending_users[user_id] = user
            for integ in user.integrations:
                self.emit("integration.created", user_id, integ)
            ws = sorted(self.client_workspaces.get(client_id) or self.workspaces)
            token = "public_" + hex_id(self.rng, 12)
            self.public_tokens[token] = PublicTokenRecord(
                token, client_id, user_id, kind, self.rng.choice(ws), scopes,
                now + PUBLIC_TOKEN_TTL, email,
            )
            return {"public_token": token, "user_id": user_id, "kind": kind}

    def _resume(self, grant: GrantRecord, now: float) -> dict:
        """A returning user (link token made with their access token) connects one more
        integration: it joins their existing account, and the widget's onSuccess gets no
        public token (the backend guide: "Subsequent Connections")."""
        user = self.user_of(grant)
        extra = make_user(random.Random(f"{self.seed}:resume:{grant.grant_id}:{now}"),
                          grant.user_id, grant.kind, now, now, full=False)
        added = extra.integrations[0]
        user.integrations.append(added)
        self.emit("integration.created", grant.user_id, added)
        return {"public_token": None, "user_id": grant.user_id, "kind": grant.kind,
                "resumed": True, "grant_id": grant.grant_id, "wallet_id": added.wallet_id}

    def export_token_page(self, client_id: str, after: int = -1,
                          limit: int | None = None) -> tuple[list[dict], int | None]:
        """The stored tokens a company's backend holds, in creation order: those of grants
        after position `after` (a cursor from the previous page), at most `limit` of them,
        and the cursor of the next page (None: no more)."""
        out: list[dict] = []
        with self.lock:
            for pos in range(max(after + 1, 0), len(self.grants)):
                g = self.grants[pos]
                if g.client_id != client_id or not g.exported:
                    continue
                if limit is not None and len(out) == limit:
                    return out, pos - 1
                out.append({
                    "grant_id": g.grant_id,
                    "access_token": g.access_token,
                    "user_id": g.user_id,
                    "kind": g.kind,
                    "customer_ref": g.customer_ref,
                    "workspace_id": g.workspace_id,
                    "revoked": g.revoked,
                })
        return out, None

    def scenarios(self) -> dict:
        """Where the seeded special cases are (grant, user and wallet ids)."""
        with self.lock:
            out: dict[str, Any] = {}
            for name, grant_id in sorted(self.specials.items()):
                grant = self.by_id[grant_id]
                entry: dict[str, Any] = {"grant_id": grant_id, "user_id": grant.user_id,
                                         "access_token": grant.access_token,
                                         "scopes": grant.scopes}
                user = self.user_of(grant)
                wallet = None
                if name == "xss":
                    wallet = user.integrations[0]
                elif name == "csv_missing":
                    wallet = next(i for i in user.integrations if not i.csv_has_source)
                elif name == "csv_unsupported":
                    wallet = next(i for i in user.integrations if i.csv_resync_unsupported)
                elif name == "sync_disabled":
                    wallet = next(i for i in user.integrations if i.sync_disabled)
                elif name == "limit_exceeded":
                    wallet = next(i for i in user.integrations if i.limit_exceeded)
                if wallet is not None:
                    entry["wallet_id"] = wallet.wallet_id
                out[name] = entry
            out["revoked"] = [g.grant_id for g in self.grants if g.revoked]
            out["not_exported"] = [g.grant_id for g in self.grants if not g.exported]
            out["workspace_defaults"] = {w.workspace_id: w.default_limit
                                         for w in self.workspaces.values()}
            return out
