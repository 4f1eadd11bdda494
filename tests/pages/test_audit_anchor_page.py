"""Audit log page: the verification shows the head to note, notices events removed from the
end of the log (through the anchor file, and through a head noted earlier), and reports an
anchor file that cannot be read."""

from __future__ import annotations

import sqlite3

from tests.pages.helpers import shown

PAGE = "pages/audit_log.py"
FORM_BUTTON = "Verify against this head"


def _fail_logins(runtime, name: str, n: int) -> None:
    for _ in range(n):
        runtime.ops.auth.record_login_failed(name)


def _delete_newest(runtime, n: int) -> None:
    """What someone with access to the database file can do: drop the append-only trigger
    and delete the newest `n` events."""
    con = sqlite3.connect(runtime.settings.data_dir / "console.db")
    con.execute("DROP TRIGGER audit_log_no_delete")
    con.execute("DELETE FROM audit_log WHERE seq > (SELECT MAX(seq) FROM audit_log) - ?", (n,))
    con.commit()
    con.close()


def _row_hash(runtime, seq: int) -> str:
    return next(e.hash for e in runtime.ops.ctx.audit_log.iter_events() if e.seq == seq)


def _form_button(at):
    return next(b for b in at.button if b.label == FORM_BUTTON)


def _submit(at, seq, digest):
    if seq is not None:
        at.text_input(key="audit_expect_seq").input(str(seq))
    at.text_input(key="audit_expect_hash").input(digest)
    _form_button(at).click()
    return at.run()


def test_a_clean_log_shows_its_head_to_note(make_app, runtime, console_env):
    at = make_app("admin", page=PAGE)
    at.button(key="audit_verify").click().run()
    assert not at.exception
    success = next(s.value for s in at.success if "the chain is intact" in s.value)
    # the verification's own `requested` event is the newest one it checked
    head = runtime.ops.ctx.audit_log.count() - 1
    assert f"it holds the head kept outside the database (event #{head})" in success
    caption = next(c.value for c in at.caption if c.value.startswith("Head: "))
    digest = _row_hash(runtime, head)
    assert caption.startswith(f"Head: row {head} · hash {digest[:8]}… — note it to check later "
                              "that nothing after it was removed")
    assert [c.value for c in at.code] == [digest]
    assert (console_env / "audit-anchor.json").is_file()


def test_newest_events_deleted_are_reported_through_the_anchor(make_app, runtime):
    _fail_logins(runtime, "victim", 5)
    at = make_app("finance", page=PAGE)
    runtime.ops.ctx.audit_log.flush_anchor()  # as the interval's timer would within 0.25 s
    newest = runtime.ops.ctx.audit_log.count()
    _delete_newest(runtime, 3)
    at.button(key="audit_verify").click().run()
    assert not at.exception
    assert not at.success
    # the verification's own event took row newest-2: the log ends there
    ends = newest - 2
    assert any("events are missing from the end of the log. It ends at event "
               f"#{ends}, but later events existed" in e.value for e in at.error)
    reason = " ".join(shown(t.value) for t in at.text)
    assert f"the log ends at row {ends} but row {newest} (hash " in reason
    assert "at least 2 newest row(s) were removed" in reason
    assert not at.code  # no head offered for noting
    assert any(c.value.startswith(f"The log now ends at row {ends}") for c in at.caption)
    done = [e for e in runtime.ops.ctx.audit_log.iter_events() if e.action == "audit.verify"][-1]
    assert (done.actor_username, done.outcome, done.after["ok"]) == ("finance", "succeeded",
                                                                      False)


def test_a_noted_head_catches_what_the_anchor_no_longer_can(make_app, runtime, console_env):
    at = make_app("finance", page=PAGE)
    at.button(key="audit_verify").click().run()
    report = at.session_state["audit_verify_report"].report
    noted = (report.head_seq, report.head_hash)
    _fail_logins(runtime, "later", 3)
    # the noted head is still there: fine, and said so
    _submit(at, noted[0], noted[1].upper())
    assert any(f"event #{noted[0]} has the hash you noted" in s.value for s in at.success)
    # someone with access to the database and the console's files deletes the newest
    # events and the anchor file with them
    runtime.ops.ctx.audit_log.flush_anchor()
    _delete_newest(runtime, runtime.ops.ctx.audit_log.count() - noted[0] + 1)
    (console_env / "audit-anchor.json").unlink()
    _submit(at, noted[0], noted[1])
    assert not at.exception and not at.success
    reason = " ".join(shown(t.value) for t in at.text)
    assert f"row {noted[0]} has hash " in reason
    assert f"but you noted hash {noted[1][:8]}… for it" in reason
    assert any(f"event #{noted[0]} is not the one recorded earlier" in e.value
               for e in at.error)
    requested = [e for e in runtime.ops.ctx.audit_log.iter_events()
                 if e.action == "audit.verify"][-2]
    assert requested.params == {"expected_head": {"seq": noted[0], "hash": noted[1]}}


def test_the_noted_head_is_validated_and_a_refused_one_is_not_audited(make_app, runtime):
    at = make_app("admin", page=PAGE)
    before = runtime.ops.ctx.audit_log.count()
    _submit(at, None, "a" * 64)
    assert any("The row number is a whole number of at least 1: check what you typed."
               in shown(e.value) for e in at.error)
    _submit(at, 3, "not-a-hash")
    assert any("The hash is the row's whole hash" in shown(e.value) for e in at.error)
    assert not at.success and not at.exception
    assert runtime.ops.ctx.audit_log.count() == before


def test_a_corrupt_anchor_file_is_reported(make_app, runtime, console_env):
    at = make_app("admin", page=PAGE)
    runtime.ops.ctx.audit_log.flush_anchor()
    (console_env / "audit-anchor.json").write_text('{"seq": "x"', encoding="utf-8")
    at.button(key="audit_verify").click().run()
    assert not at.exception and not at.success
    assert any("the head kept outside the database could not be checked" in e.value
               for e in at.error)
    reason = " ".join(shown(t.value) for t in at.text)
    assert "does not hold a valid head" in reason and "tampered" in reason


def test_a_noted_row_past_the_end_says_check_what_you_typed_not_tampering(make_app, runtime):
    at = make_app("admin", page=PAGE)
    head = runtime.ops.ctx.audit_log.count()
    _submit(at, head + 500, _row_hash(runtime, head))  # a mistyped row number
    assert not at.exception and not at.success
    assert not at.error  # no tamper alarm
    warning = shown(at.warning[0].value)
    assert f"there is no event #{head + 500} yet" in warning
    assert "Check what you typed" in warning
    _submit(at, "12a", "a" * 64)  # a row that is not a number: refused with the reason
    assert any("check what you typed" in shown(e.value) for e in at.error)
