"""The backend keeps the console's read model current: an exchange shows the new grant at
once, the sandbox's real webhooks (widget run, resync failing then succeeding) update its
integrations and aggregates, a redelivery changes nothing, a disconnect shows revoked."""

from __future__ import annotations

from services.store.readmodel import FAILING, SYNCING, GrantFilter, ReadModel
from services.store.webhook_events import WebhookEventStore
from services.sync.webhooks import readmodel_hook
from tests.backend.helpers import WEBHOOK_SECRET, auth, connect, post
from tests.sandbox.helpers import connect as kryptos
from tests.sandbox.helpers import data
from tests.timing import wait_for


def _integration(rm: ReadModel, gid: str, wallet: str):
    found = rm.grant(gid)
    return next((i for i in found.integrations if i.wallet_id == wallet), None) if found else None


def test_exchange_and_webhooks_update_the_read_model(backend, sandbox):
    sandbox.set_webhooks(backend.url + "/api/kryptos/webhooks", WEBHOOK_SECRET,
                         backoff=[0.05, 0.1])
    rm = ReadModel(backend.db)
    before = rm.version()
    flow = connect(backend.url, sandbox, "cust-rm")
    gid = backend.backend.vault.for_customer("cust-rm").grant_id
    user = flow["public"]["user_id"]

    # The exchange stored it in the read model itself: no sync has run.
    row = rm.grant(gid)
    assert row is not None and rm.version() > before
    g = row.grant
    assert (g.status, g.customer_ref, g.has_token, g.kryptos_user_id) == \
        ("active", "cust-rm", True, user)
    assert g.user_kind == "guest"
    assert rm.page(GrantFilter(search="cust-rm")).total == 1

    # The widget's integration.created (sent before the exchange) reached the row.
    token = backend.backend.vault.reveal(gid)
    wallets = [i["walletId"] for i in data(sandbox, "/v1/integrations", token).json()["data"]]
    wait_for(lambda: rm.grant(gid).grant.n_integrations == len(wallets),
          what="integration.created")
    wallet = next(w for w in wallets
                  if _integration(rm, gid, w).status.upper() not in FAILING | SYNCING)
    failing_before = rm.grant(gid).grant.n_failing

    # A resync that fails: integration.failed makes the grant failing, in the work queue.
    sandbox.fail_next_resync(wallet_id=wallet)
    answer = kryptos(sandbox, "POST", f"/developer/integrations/{wallet}/resync",
                     {"user_id": user, "mode": "from_start"})
    assert answer.status_code == 202, answer.text
    sandbox.advance_clock(60)
    wait_for(lambda: _integration(rm, gid, wallet).status == "FAILED", what="FAILED")
    assert rm.grant(gid).grant.sync_state == "failing"
    assert rm.grant(gid).grant.n_failing == failing_before + 1
    assert gid in {r.grant_id for r in rm.page(GrantFilter(queue="failing")).rows}
    assert rm.counts().queues["failing"] >= 1

    # The same webhook again (a redelivery): nothing changes, not even the version.
    failed = next(e for e in WebhookEventStore(backend.db).recent(("integration.failed",))
                  if e.grant_id == gid)
    version = rm.version()
    readmodel_hook(rm)(failed)
    assert rm.version() == version

    # A resync that succeeds: integration.updated clears the failure.
    answer = kryptos(sandbox, "POST", f"/developer/integrations/{wallet}/resync",
                     {"user_id": user, "mode": "latest"})
    assert answer.status_code == 202, answer.text
    sandbox.advance_clock(60)
    wait_for(lambda: _integration(rm, gid, wallet).status != "FAILED",
          what="integration.updated")
    assert rm.grant(gid).grant.n_failing == failing_before
    assert rm.grant(gid).grant.last_sync is not None

    # The customer disconnects: revoked at once.
    answer = post(backend.url, "/api/kryptos/disconnect", {}, headers=auth("cust-rm"))
    assert answer.status_code == 200, answer.text
    assert rm.grant(gid).grant.status == "revoked"


def test_an_event_of_an_unknown_grant_or_not_an_integration_changes_nothing(backend):
    rm = ReadModel(backend.db)
    hook = readmodel_hook(rm)
    store = WebhookEventStore(backend.db)
    row_id, _ = store.insert("whd_x1", "integration.failed",
                             {"event": "integration.failed", "data": {"walletId": "w1",
                                                                     "status": "FAILED"}},
                             grant_id="cgrant_nobody")
    version = rm.version()
    hook(store.get(row_id))
    row_id, _ = store.insert("whd_x2", "integration.updated",
                             {"event": "integration.updated", "data": {"status": "OK"}},
                             grant_id="cgrant_nobody")
    hook(store.get(row_id))  # no walletId: not an integration, logged and left alone
    assert rm.version() == version and rm.grant("cgrant_nobody") is None
