"""Support on the grant detail page: holdings and charts, a resync that settles, a revoke
through the dialog, a revoke that fails upstream; upstream HTML shown literally; no secret
or token in the page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e import helpers as h

RESYNC_ROW = re.compile(r"^(?P<name>.+) - (?P<provider>.+), (?P<type>[\w ]+), "
                        r"status (?P<status>[a-z_ ]+)\nwallet (?P<wallet>[^,\s]+)")


def _resync_rows(page: Page) -> list[re.Match]:
    texts = h.fresh(page).get_by_test_id("stText").all_inner_texts()
    return [m for m in (RESYNC_ROW.match(t.strip()) for t in texts) if m]


def _status_value(page: Page) -> str:
    rows = h.grid_dicts(h.grid(h.main(page), "Field"))
    return {r["Field"]: r["Value"] for r in rows}["Status"]


def test_holdings_chart_and_resync(page: Page, console, e2e_sandbox, plain_guests) -> None:
    gid = plain_guests[0]
    h.login(page, console.url, "support")
    h.open_grant(page, console.url, gid)
    m = h.main(page)
    expect(m.get_by_text("The session is valid.")).to_be_visible()
    expect(m.get_by_test_id("stMetric").filter(has_text="Total value")).to_contain_text("USD")
    holdings = h.grid_dicts(h.grid(m, "Asset"))
    assert holdings and all(r["Asset"] for r in holdings)
    charts = m.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(2)
    expect(charts.first.locator("canvas, svg").first).to_be_visible()
    expect(charts.first).to_contain_text("Value by asset")
    h.assert_no_secrets(page, e2e_sandbox)

    rows = _resync_rows(page)
    pick = next(i for i, r in enumerate(rows) if r["type"] != "csv")
    name = rows[pick]["name"]
    e2e_sandbox.clear_requests_log()
    m.get_by_role("button", name="Resync", exact=True).nth(pick).click()
    expect(page.get_by_test_id("stToast").filter(has_text=f"Resync of {name} requested")
           ).to_be_visible(timeout=h.TIMEOUT)
    expect(m.get_by_text("Resync in progress").first).to_be_visible()
    expect(m.get_by_text(f"{name}: ongoing")).to_be_visible(timeout=h.TIMEOUT)
    # The sandbox finishes in 2 s; the page polls and, once the resync settled, reruns
    # whole by itself: the in-progress notice goes (what the wait is on: the card may say
    # "status completed" from before the click), and the card says how it ended.
    expect(m.get_by_text("Resync in progress")).to_have_count(0, timeout=h.TIMEOUT)
    expect(m.get_by_text(f"{rows[pick]['type']}, status completed").first).to_be_visible()
    # The end is told on the integration's own card (the only one resynced).
    expect(m.get_by_text(f"Resync finished: {name}: completed")).to_have_count(1)
    expect(m.get_by_text(f"Resync finished: {name}: completed")).to_be_visible()
    assert [r for r in e2e_sandbox.requests_log()
            if r["path"].startswith("/developer/") and r["method"] == "POST"]
    wallet = rows[pick]["wallet"]
    h.eventually(
        page,
        lambda: any(r["What was done"].startswith(f"Resync: wallet {wallet}, mode latest")
                    and r["What was done"].endswith("— done")
                    for r in h.grid_dicts(h.grid(m, "What was done"))),
        "the grant's history says which wallet was resynced, in which mode, and that it "
        "was done")


def test_revoke_through_the_dialog(page: Page, console, e2e_sandbox, plain_guests) -> None:
    gid = plain_guests[1]
    h.login(page, console.url, "support")
    h.open_grant(page, console.url, gid)
    m = h.main(page)
    assert _status_value(page) == "active"
    m.get_by_role("button", name="Revoke grant...").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=h.TIMEOUT)
    expect(dialog).to_contain_text(gid)
    # Checked in the form's order: a missing reason first, beside its field, even with a
    # wrong id typed below it.
    dialog.get_by_label("Grant id, typed again", exact=True).fill(plain_guests[2])
    dialog.get_by_role("button", name="Revoke", exact=True).click()
    reason_error = dialog.get_by_test_id("stAlertContentError")
    expect(reason_error).to_contain_text("reason", timeout=h.TIMEOUT)
    expect(dialog.get_by_text("does not match")).to_have_count(0)
    field = dialog.get_by_label("Reason", exact=True).bounding_box()
    typed_box = dialog.get_by_label("Grant id, typed again", exact=True).bounding_box()
    box = reason_error.bounding_box()
    assert field and typed_box and box and field["y"] < box["y"] < typed_box["y"]
    dialog.get_by_label("Reason", exact=True).fill("customer asked by e-mail")
    dialog.get_by_role("button", name="Revoke", exact=True).click()
    expect(dialog.get_by_text("does not match")).to_be_visible(timeout=h.TIMEOUT)
    assert not next(t for t in e2e_sandbox.tokens() if t["grant_id"] == gid)["revoked"]

    dialog.get_by_label("Grant id, typed again", exact=True).fill(gid)
    dialog.get_by_role("button", name="Revoke", exact=True).click()
    expect(dialog).to_have_count(0, timeout=h.TIMEOUT)
    expect(page.get_by_test_id("stToast").filter(has_text="Grant revoked")).to_be_visible(
        timeout=h.TIMEOUT)
    h.settle(page)
    h.eventually(page, lambda: _status_value(page) == "revoked",
                 "the grant shows as revoked after the revoke")
    expect(m.get_by_role("button", name="Revoke grant...")).to_have_count(0)
    assert next(t for t in e2e_sandbox.tokens() if t["grant_id"] == gid)["revoked"]
    h.assert_no_secrets(page, e2e_sandbox)


def test_revoke_failing_upstream_shows_an_error_and_is_audited(
        page: Page, console, e2e_sandbox, plain_guests) -> None:
    gid = plain_guests[3]
    e2e_sandbox.set_fault(path="/token/revoke", status=503, code="SERVICE_UNAVAILABLE",
                          message="maintenance", count=5)
    h.login(page, console.url, "support")
    h.open_grant(page, console.url, gid)
    h.main(page).get_by_role("button", name="Revoke grant...").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason", exact=True).fill("fraud report")
    dialog.get_by_label("Grant id, typed again", exact=True).fill(gid)
    dialog.get_by_role("button", name="Revoke", exact=True).click()
    alert = dialog.get_by_test_id("stAlertContentError")
    expect(alert).to_be_visible(timeout=h.TIMEOUT)
    expect(alert).not_to_contain_text("Traceback")
    support_line = re.compile(r"^For support: code SERVICE_UNAVAILABLE, request id req_")
    expect(dialog.get_by_text(support_line)).to_be_visible()
    assert not next(t for t in e2e_sandbox.tokens() if t["grant_id"] == gid)["revoked"]
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0, timeout=h.TIMEOUT)
    h.main(page).get_by_role("button", name="Refresh", exact=True).click()
    h.settle(page)
    assert _status_value(page) == "active"

    def revokes() -> list[str]:
        history = h.grid_dicts(h.grid(h.main(page), "What was done"))
        return [r["What was done"] for r in history if r["What was done"].startswith("Revoke")]

    h.eventually(page, lambda: len(revokes()) == 1 and revokes()[0].startswith(
                     "Revoke — failed: Revoking the grant failed"),
                 "the history shows the revoke failed, in one row")


def test_upstream_html_is_shown_literally(page: Page, console, e2e_sandbox) -> None:
    xss = e2e_sandbox.scenarios()["xss"]
    h.login(page, console.url, "support")
    h.open_grant(page, console.url, xss["grant_id"])
    m = h.main(page)
    alias = '<img src=x onerror="window.__xss=1">Cold <b>wallet</b>'
    message = "<script>window.__xss=2</script> **not bold** [link](javascript:alert(1))"
    # The alias as plain text in the resync section, tags and all.
    expect(m.get_by_test_id("stText").filter(has_text=alias).first).to_be_visible()
    integrations = h.grid_dicts(h.grid(m, "Message"))
    row = next(r for r in integrations if r["Name"] == alias)
    assert row["Message"] == message
    # Nothing of it became markup: no <img>/<b>/<script> from upstream, no link, no script ran.
    assert m.locator("img[src=x]").count() == 0
    assert m.locator("a[href^='javascript:']").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    h.assert_no_secrets(page, e2e_sandbox)
