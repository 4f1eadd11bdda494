"""Every change the pages make, as plain functions a test can call, one module per
resource:

- `grants`: revoke and resync of one grant (Grant detail);
- `limits`: the Guest limit form of one grant;
- `bulk`: tier or custom limit on many grants, dry run then apply, the user's kept
  selection and dry run (Guest limits);
- `connect`: link tokens, the public token exchange, the widget run, the token import;
- `approvals`: four-eyes decisions and the note a form shows when approvals are on;
- `outcomes`: a reconciler pass now, the resume of an interrupted bulk run;
- `refusals`: a page reached without its permission.

Each change calls an operation (which checks permission, validates and audits) and then
drops from `dashboard.reads`' cache what the change may have touched, whatever the outcome:
a call that failed may still have changed something upstream. AppTest does not run buttons
inside `st.dialog`, so a dialog only collects and confirms and then calls one of these.

No Streamlit import here.
"""

from __future__ import annotations

from dashboard.actions.approvals import (
    approval_note,
    approve_request,
    cancel_request,
    decide_requests,
    reject_request,
)
from dashboard.actions.bulk import (
    BulkPlan,
    ProgressFn,
    applied_summary,
    clear_bulk_draft,
    run_bulk,
    run_plan,
    save_bulk_draft,
)
from dashboard.actions.connect import (
    complete_widget,
    create_link_token,
    exchange_public_token,
    import_tokens_csv,
)
from dashboard.actions.grants import confirm_revoke, request_resync
from dashboard.actions.limits import (
    LIMITER_CHOICES,
    LIMITER_KEEP,
    LIMITER_OFF,
    LIMITER_ON,
    LimitFormResult,
    limit_from_text,
    limiter_value,
    submit_limit,
)
from dashboard.actions.outcomes import reconcile_now, resume_bulk
from dashboard.actions.refusals import refusal, refuse_unless_allowed
from services.operations.four_eyes import Held
from services.store.trail import watch_pending

#: `with watch_records() as pending: actions.confirm_revoke(...)`; `pending` is true when a
#: change was made but its audit record waits in the journal (see `ui.record_pending_note`).
watch_records = watch_pending

__all__ = [
    "LIMITER_CHOICES", "LIMITER_KEEP", "LIMITER_OFF", "LIMITER_ON", "BulkPlan", "Held",
    "LimitFormResult", "ProgressFn", "applied_summary", "approval_note", "approve_request",
    "decide_requests",
    "cancel_request", "complete_widget", "confirm_revoke", "create_link_token",
    "exchange_public_token", "import_tokens_csv", "limit_from_text", "limiter_value",
    "reconcile_now", "refusal", "refuse_unless_allowed",
    "reject_request", "request_resync", "resume_bulk", "run_bulk", "run_plan",
    "save_bulk_draft", "clear_bulk_draft", "submit_limit", "watch_records",
]
