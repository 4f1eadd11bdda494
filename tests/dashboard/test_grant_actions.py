"""The pages' actions (dialog and form logic) and cached reads, against the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from dashboard import actions, csv_io, reads
from dashboard.reads import cache as read_cache
from services.kryptos.client import KryptosClient
from services.kryptos.errors import KryptosError
from services.operations import (
    Actor,
    ConfirmationRequired,
    GrantFilter,
    OperationError,
    Operations,
    PermissionDenied,
    UpstreamError,
    ValidationError,
)
from services.operations.limit_value import NO_CAP, GuestLimit
from services.settings import parse_tiers
from services.store import AuditFilter, AuditLog, NewVaultEntry, TokenVault, open_database
from services.sync import SyncWorker

TIERS = parse_tiers("Free=1000,Plus=10000,Unlimited=off")
SUPPORT = Actor("sam", "Sam", frozenset({"support"}))
FINANCE = Actor("fay", "Fay", frozenset({"finance"}))
VIEWER = Actor("vic", "Vic", frozenset({"viewer"}))


class Env:
    def __init__(self, sandbox: Any, db_url: str) -> None:
        self.sandbox = sandbox
        self.db = open_database(db_url)
        self.audit = AuditLog(self.db)
        self.vault = TokenVault(self.db, Fernet.generate_key())
        self.vault.put_many(
            NewVaultEntry(t["grant_id"], t["access_token"], workspace_id=t.get("workspace_id"),
                          customer_ref=t.get("customer_ref")) for t in sandbox.tokens())
        self.client = KryptosClient(
            sandbox.client_id, sandbox.client_secret, sandbox.connect_url, sandbox.data_url,
            connect_timeout=1.0, read_timeout=3.0, max_retries=1, retry_budget=2.0,
        )
        self.ops = Operations(self.client, self.audit, self.vault, TIERS, max_workers=4)

    def sync(self) -> None:
        """One full sync of the read model the pages list grants from, as the console's
        sync worker makes it."""
        worker = SyncWorker(self.client, self.vault, self.ops.readmodel, rate=1000, name="test")
        try:
            worker.run_once(force=True)
        finally:
            worker.stop()

    def events(self, **flt: Any) -> list[Any]:
        page = self.audit.query(AuditFilter(**flt), page=1, page_size=1000)
        return list(reversed(page.events))

    def outcomes(self, action: str, target_id: str) -> list[str]:
        return [e.outcome for e in self.events(action=action, target_id=target_id)]

    def active(self, kind: str | None = None) -> list[dict]:
        return [t for t in self.sandbox.tokens() if not t["revoked"]
                and (kind is None or t["kind"] == kind)]

    def upstream(self, method: str, prefix: str) -> list[dict]:
        return [r for r in self.sandbox.requests_log()
                if r["method"] == method and r["path"].startswith(prefix)]


@pytest.fixture
def env(sandbox: Any, tmp_path: Any, migrated_sqlite: Callable[[Any], str]) -> Iterator[Env]:
    reads.invalidate_all()
    e = Env(sandbox, migrated_sqlite(tmp_path / "console.db"))
    sandbox.clear_requests_log()
    yield e
    reads.invalidate_all()
    e.client.close()
    e.db.dispose()


def _status(env: Env, actor: Actor, gid: str) -> str:
    rows = reads.grant_page(env.ops, actor, GrantFilter(search=gid)).rows
    return next(r.status for r in rows if r.grant_id == gid)


# --- revoke -------------------------------------------------------------------------------

def test_revoke_refused_when_typed_id_differs(env: Env) -> None:
    gid = env.active()[0]["grant_id"]
    with pytest.raises(ValidationError) as info:
        actions.confirm_revoke(env.ops, SUPPORT, gid, gid + "x", "customer asked", None)
    assert "does not match" in info.value.user_message
    assert env.upstream("POST", "/token/revoke") == []
    assert env.events(action="grant.revoke") == []


def test_revoke_clears_cached_list_and_audits(env: Env) -> None:
    gid = env.active()[0]["grant_id"]
    env.sync()
    assert _status(env, SUPPORT, gid) == "active"  # now cached
    msg = actions.confirm_revoke(env.ops, SUPPORT, gid, f"  {gid} ", "customer asked",
                                       "T-1")
    assert isinstance(msg, str)
    assert _status(env, SUPPORT, gid) == "revoked"
    assert env.outcomes("grant.revoke", gid) == ["requested", "succeeded"]
    assert env.events(action="grant.revoke")[0].ticket == "T-1"


def test_revoke_upstream_failure_is_audited_and_clears_cache(env: Env) -> None:
    gid = env.active()[0]["grant_id"]
    env.sync()
    reads.grant_page(env.ops, SUPPORT)
    cached = len(reads.CACHE)
    env.sandbox.set_fault(path="/token/revoke", status=500, code="INTERNAL_ERROR", count=1)
    with pytest.raises(UpstreamError) as info:
        actions.confirm_revoke(env.ops, SUPPORT, gid, gid, "customer asked")
    assert info.value.code == "INTERNAL_ERROR"
    assert len(reads.CACHE) < cached
    assert env.outcomes("grant.revoke", gid) == ["requested", "failed"]
    assert _status(env, SUPPORT, gid) == "active"


def test_revoke_denied_for_viewer(env: Env) -> None:
    gid = env.active()[0]["grant_id"]
    with pytest.raises(PermissionDenied):
        actions.confirm_revoke(env.ops, VIEWER, gid, gid, "customer asked")
    assert env.outcomes("grant.revoke", gid) == ["denied"]
    assert env.upstream("POST", "/token/revoke") == []


# --- resync -------------------------------------------------------------------------------

def _wallet(env: Env, csv: bool = False) -> tuple[str, str]:
    for t in env.active():
        for i in env.client.list_integrations(t["access_token"]):
            if i.is_csv == csv and not i.is_syncing:
                return t["grant_id"], i.wallet_id
    raise AssertionError("no such integration in the sandbox")


def test_resync_queues_and_audits(env: Env) -> None:
    gid, wid = _wallet(env)
    out = actions.request_resync(env.ops, SUPPORT, gid, wid, "latest")
    assert out.wallet_id == wid
    assert env.outcomes("integration.resync", gid) == ["requested", "succeeded"]
    assert env.ops.grants.integration(SUPPORT, gid, wid).is_syncing


def test_resync_failure_shows_upstream_code(env: Env) -> None:
    gid, wid = _wallet(env)
    env.sandbox.set_fault(path="/developer/integrations", status=503, code="UNAVAILABLE",
                          count=5)
    with pytest.raises(UpstreamError):
        actions.request_resync(env.ops, SUPPORT, gid, wid, "from_start", "full reimport")
    assert env.outcomes("integration.resync", gid) == ["requested", "failed"]


# --- limit form ---------------------------------------------------------------------------

def test_limit_form_sets_limit_and_limiter(env: Env) -> None:
    gid = env.active("guest")[0]["grant_id"]
    # A cut by more than half: the use case asks first (its question), and sends nothing.
    with pytest.raises(ConfirmationRequired) as asked:
        actions.submit_limit(env.ops, FINANCE, gid, limit=2500, limiter="on", tier=None,
                             reason="raise for KYC", ticket="FIN-9")
    assert asked.value.question.startswith("This cuts the limit by more than half")
    assert env.outcomes("guest.limit.update", gid) == []
    res = actions.submit_limit(env.ops, FINANCE, gid, limit=2500, limiter="on", tier=None,
                                     reason="raise for KYC", ticket="FIN-9", confirmed=True)
    assert res.change is not None and res.change.after_limit == 2500
    assert "2,500" in res.summary()
    assert env.outcomes("guest.limit.update", gid) == ["requested", "succeeded"]
    assert reads.grant_detail(env.ops, FINANCE, gid).limit == GuestLimit.capped(2500)


def test_a_limit_with_limiter_on_keep_takes_effect_on_a_guest_whose_limiter_is_off(
        env: Env) -> None:
    gid = env.active("guest")[0]["grant_id"]
    actions.submit_limit(env.ops, FINANCE, gid, limit=None, limiter="off", tier=None,
                               reason="start uncapped", confirmed=True)
    assert reads.grant_detail(env.ops, FINANCE, gid).limit == NO_CAP
    res = actions.submit_limit(env.ops, FINANCE, gid, limit=777, limiter="keep",
                                     tier=None, reason="cap this guest")
    assert res.change is not None and res.change.after_limiter is True
    assert "limiter off -> on" in res.summary()
    assert reads.grant_detail(env.ops, FINANCE, gid).limit == GuestLimit.capped(777)  # enforced


def test_limit_form_applies_tier_to_one_grant(env: Env) -> None:
    gid = env.active("guest")[0]["grant_id"]
    res = actions.submit_limit(env.ops, FINANCE, gid, limit=None, limiter="keep",
                                     tier="Plus", reason="upgrade to plus", confirmed=True)
    assert res.tier_item is not None and res.tier_item.after == GuestLimit.capped(10000)
    assert env.outcomes("guest.tier.apply", gid) == ["requested", "succeeded"]


def test_limit_form_refuses_tier_and_limit_together(env: Env) -> None:
    gid = env.active("guest")[0]["grant_id"]
    with pytest.raises(ValidationError):
        actions.submit_limit(env.ops, FINANCE, gid, limit=5, limiter="keep", tier="Plus",
                                   reason="upgrade to plus")
    assert env.upstream("PATCH", "/developer/grants") == []


def test_limit_form_on_linked_user_says_so(env: Env) -> None:
    gid = env.active("linked")[0]["grant_id"]
    with pytest.raises(OperationError) as info:
        actions.submit_limit(env.ops, FINANCE, gid, limit=100, limiter="keep", tier=None,
                                   reason="attempt on linked")
    assert info.value.code == "NOT_ANON_USER"
    assert "Guest" in info.value.user_message


def test_limiter_choices() -> None:
    assert [actions.limiter_value(c) for c in actions.LIMITER_CHOICES] == [
        None, True, False]
    with pytest.raises(ValidationError):
        actions.limiter_value("maybe")


# --- bulk ---------------------------------------------------------------------------------

def test_parse_grant_id_csv_reports_rejected_lines() -> None:
    text = ("grant_id,note\ncgrant_a1,x\n\nnot-a-grant,y\ncgrant_a1,dup\n"
            "cgrant_b2\n,empty\n")
    parsed = csv_io.parse_grant_id_csv(text.encode())
    assert parsed.grant_ids == ("cgrant_a1", "cgrant_b2")
    assert [(r.line, r.reason) for r in parsed.rejected] == [
        (4, "not a grant id (cgrant_...)"), (5, "duplicate"), (7, "no grant id in this line")]
    no_header = csv_io.parse_grant_id_csv("cgrant_x\ncgrant_y\n")
    assert no_header.grant_ids == ("cgrant_x", "cgrant_y") and not no_header.rejected
    not_utf8 = csv_io.parse_grant_id_csv(b"\xff\xfe\x00")
    assert not not_utf8.grant_ids and not not_utf8.rejected  # no "line 0"
    assert not_utf8.problem and "not UTF-8" in not_utf8.problem


def test_bulk_dry_run_then_apply_with_one_failure(env: Env) -> None:
    gids = [t["grant_id"] for t in env.active("guest")[:4]]
    preview = actions.run_bulk(env.ops, FINANCE, actions.BulkPlan(tuple(gids), tier="Free"), "",
                               dry_run=True)
    assert preview.dry_run and len(preview.items) == 4
    assert env.upstream("PATCH", "/developer/grants") == []
    env.sandbox.set_fault(path=f"/developer/grants/{gids[1]}", status=500,
                          code="INTERNAL_ERROR", count=1)
    seen: list[tuple[int, int]] = []
    result = actions.run_bulk(env.ops, FINANCE, actions.BulkPlan(tuple(gids), tier="Free"),
                              "move to free tier", dry_run=False,
                              progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (4, 4)
    by_id = {i.grant_id: i for i in result.items}
    assert by_id[gids[1]].outcome == "failed" and by_id[gids[1]].error_code == "INTERNAL_ERROR"
    assert all(by_id[g].outcome == "succeeded" for g in gids if g != gids[1])
    rows = csv_io.bulk_rows(result.items)
    assert {r["outcome"] for r in rows} == {"failed", "succeeded"}
    csv_text = csv_io.bulk_csv(result)
    assert csv_text.splitlines()[0] == ",".join(csv_io.BULK_COLUMNS)
    assert gids[1] in csv_text and "INTERNAL_ERROR" in csv_text


def test_bulk_custom_limit_dry_run_reads_before_then_applies(env: Env) -> None:
    rows = []
    for t in env.active("guest"):
        try:
            rows.append((t["grant_id"], env.client.get_userinfo(t["access_token"])))
        except KryptosError:  # a token without the user-info scope: not usable here
            continue
        if len(rows) == 2:
            break
    gids = [g for g, _ in rows]
    linked = env.active("linked")[0]["grant_id"]
    dry = actions.run_bulk(env.ops, FINANCE, actions.BulkPlan(tuple(gids), limit=777), "",
                           dry_run=True)
    assert [i.after for i in dry.items] == [GuestLimit.capped(777)] * 2
    assert [i.before.to_json() for i in dry.items] == [info.transaction_limit for _, info in rows]
    assert env.upstream("PATCH", "/developer/grants") == []
    seen: list[int] = []
    res = actions.run_bulk(env.ops, FINANCE, actions.BulkPlan((*gids, linked), limit=777),
                           "custom cap", dry_run=False, progress=lambda d, t: seen.append(d))
    assert seen == [1, 2, 3]
    assert [i.outcome for i in res.items] == ["succeeded", "succeeded", "skipped"]
    assert [i.before.to_json() for i in res.items[:2]] == [
        info.transaction_limit for _, info in rows]
    assert [e.outcome for e in env.events(action="guest.limit.update.bulk")] == [
        "requested", "succeeded"]
    with pytest.raises(PermissionDenied):
        actions.run_bulk(env.ops, SUPPORT, actions.BulkPlan(tuple(gids), limit=777), "custom cap",
                         dry_run=False)


def test_refuse_unless_allowed_records_one_denial(env: Env) -> None:
    assert actions.refuse_unless_allowed(env.ops, FINANCE) is None
    assert env.events() == []
    refusal = actions.refuse_unless_allowed(env.ops, VIEWER)
    assert isinstance(refusal, PermissionDenied) and "not allowed" in refusal.user_message
    [ev] = env.events()
    assert (ev.actor_username, ev.outcome, ev.action, ev.target_type, ev.target_id) == (
        "vic", "denied", "guest.tier.apply", "page", "guest_limits")
    assert [r for r in env.sandbox.requests_log() if not r["path"].startswith("/sandbox")] == []


def test_grids_on_screen_neutralise_formulas() -> None:
    import pandas as pd

    out = csv_io.screen_frame(pd.DataFrame({"a": ["=1+1", "ok", "'q"], "n": [1, 2, 3]}))
    assert out["a"].tolist() == ["'=1+1", "ok", "'q"] and out["n"].tolist() == [1, 2, 3]


# --- cached reads -------------------------------------------------------------------------

def test_reads_are_cached_per_actor(env: Env) -> None:
    gid = env.active("guest")[0]["grant_id"]
    reads.grant_detail(env.ops, SUPPORT, gid)
    first = len(env.upstream("GET", "/api/v1/holdings"))
    assert first == 1
    reads.grant_detail(env.ops, SUPPORT, gid)
    assert len(env.upstream("GET", "/api/v1/holdings")) == first  # a rerun costs no API call
    reads.grant_detail(env.ops, FINANCE, gid)  # another user never gets the first user's entry
    assert len(env.upstream("GET", "/api/v1/holdings")) == first + 1
    other_roles = Actor("sam", "Sam", frozenset({"viewer"}))
    reads.grant_detail(env.ops, other_roles, gid)
    assert len(env.upstream("GET", "/api/v1/holdings")) == first + 2


def test_invalidate_grant_drops_only_what_changed(env: Env) -> None:
    a, b = [t["grant_id"] for t in env.active()[:2]]
    reads.grant_history(env.ops, SUPPORT, a)
    reads.grant_history(env.ops, SUPPORT, b)
    reads.grant_page(env.ops, SUPPORT)
    assert len(reads.CACHE) == 3
    reads.invalidate_grant(a)
    assert len(reads.CACHE) == 1  # b's history stays; a's and the list go


def test_a_detail_with_a_failed_part_is_not_cached(env: Env) -> None:
    gid = env.active("guest")[0]["grant_id"]
    env.sandbox.set_fault(path="/api/v1/holdings", status=500, code="INTERNAL_ERROR", count=9)
    first = reads.grant_detail(env.ops, SUPPORT, gid)
    assert first.holdings.error is not None and first.integrations.ok
    env.sandbox.clear_faults()
    # The next read (the next rerun) asks again and gets the holdings, not the old failure.
    assert reads.grant_detail(env.ops, SUPPORT, gid).holdings.ok
    assert len(reads.CACHE) == 1  # a complete detail is kept
    assert reads.grant_detail(env.ops, SUPPORT, gid).holdings.ok


def test_cache_expires_after_ttl() -> None:
    now = [0.0]
    cache = read_cache.ReadCache(ttl=10, clock=lambda: now[0])
    key = read_cache.read_key(object(), SUPPORT, "r", "*")
    calls: list[int] = []

    def load() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_load(key, load) == 1
    assert cache.get_or_load(key, load) == 1
    now[0] = 11
    assert cache.get_or_load(key, load) == 2


def test_a_read_overtaken_by_an_invalidation_is_not_kept() -> None:
    """Session A starts reading; session B changes the grant and invalidates; A's read (from
    before the change) must not be served to the next caller for the TTL."""
    cache = read_cache.ReadCache(ttl=30)
    key = read_cache.read_key(object(), SUPPORT, "grant_detail", "cgrant_x")
    truth = ["limit 1000"]

    def slow_read_overtaken_by_a_change() -> str:
        seen = truth[0]
        truth[0] = "limit 5000"  # meanwhile another session changes the grant...
        cache.invalidate("cgrant_x")  # ...and invalidates, as dashboard.actions does
        return seen

    assert cache.get_or_load(key, slow_read_overtaken_by_a_change) == "limit 1000"
    assert cache.get_or_load(key, lambda: truth[0]) == "limit 5000"


# --- token import (Connect page) -----------------------------------------------------------

def test_import_tokens_from_an_upload_stores_them_and_audits_counts_only(env: Env) -> None:
    new = env.sandbox.create_public_token(kind="guest")
    exchanged = env.client.exchange_public_token(new["public_token"])
    csv_bytes = (
        "\ufeffgrant_id,access_token,customer_ref\n"
        f"{exchanged.grant_id},{exchanged.access_token},crm-import-1\n"
        "not-a-grant,cat_whatever0000,crm-bad\n"
    ).encode()
    env.sync()
    before = reads.grant_page(env.ops, SUPPORT, GrantFilter(search=exchanged.grant_id)).rows
    assert not next(r for r in before if r.grant_id == exchanged.grant_id).has_token
    report = actions.import_tokens_csv(env.ops, SUPPORT, csv_bytes)
    assert (report.added, report.updated, report.rejected_count) == (1, 0, 1)
    assert report.rejected[0].line == 3
    # the import asked the sync worker for a full sync; after it the grant shows its token
    assert env.ops.readmodel.sync_state().get("full_sync_requested")
    env.sync()
    row = next(r for r in reads.grant_page(env.ops, SUPPORT, GrantFilter(
        search=exchanged.grant_id)).rows if r.grant_id == exchanged.grant_id)
    assert row.has_token and row.customer_ref == "crm-import-1"
    assert env.vault.reveal(exchanged.grant_id) == exchanged.access_token
    events = env.events(action="token.import")
    summary = [e for e in events if e.target_type == "vault"]
    assert [e.outcome for e in summary] == ["requested", "succeeded"]
    assert summary[1].after == {"added": 1, "updated": 0, "rejected": 1}
    # and one pair filed under the imported grant, for its history
    assert [e.target_id for e in events if e.target_type == "grant"] == [exchanged.grant_id] * 2
    assert exchanged.access_token not in repr(events)


def test_import_tokens_refuses_a_non_utf8_file_and_a_viewer(env: Env) -> None:
    with pytest.raises(ValidationError, match="UTF-8"):
        actions.import_tokens_csv(env.ops, SUPPORT, b"grant_id,access_token\n\xff\xfe\n")
    assert env.events(action="token.import") == []
    with pytest.raises(PermissionDenied):
        actions.import_tokens_csv(env.ops, VIEWER, b"grant_id,access_token\n")
    assert [e.outcome for e in env.events(action="token.import")] == ["denied"]


def test_a_failed_exchange_drops_the_lists(env: Env) -> None:
    """A grant may have been made upstream before the exchange failed: the lists go."""
    reads.grant_page(env.ops, SUPPORT)
    assert len(reads.CACHE) == 1
    with pytest.raises(OperationError):
        actions.exchange_public_token(env.ops, SUPPORT, "crm-x", "not-a-public-token")
    assert len(reads.CACHE) == 0
