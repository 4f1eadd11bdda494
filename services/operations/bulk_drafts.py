"""Each finance user's Guest limits draft, kept in the database (`store/bulk_drafts.py`): the
grants ticked, read from a file or matched by a filter, the change chosen, and the dry run
of that selection, so that a reload, a new tab or another replica continues the same work.

A draft is the user's own (keyed by the actor's username), holds grant ids and the dry run's
per-grant outcomes (never the grants' rows), and is bounded: each list of ids by
`validation.MAX_BULK`, so a body stays under a few megabytes. A dry run restored from a
draft is still checked against the values read at apply (the limit change refuses a grant
changed since, `STALE`): the draft keeps what the person saw, never a permission to skip
that check.

"Select all that match" resolves a filter of the picker to grant ids here, a kind at a time
by one range of the read model's `ix_rm_grants_pick` (status, kind, grant id) read in order
and stopped at `MAX_BULK` + 1, never the rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from services.operations import validation as v
from services.operations.context import OpsContext
from services.operations.errors import OperationError, ValidationError
from services.operations.limit_value import GuestLimit
from services.operations.models import BulkItem, BulkResult
from services.operations.permissions import Actor, Permission
from services.store.actions import AuditAction
from services.store.bulk_drafts import BulkDraftStore
from services.store.errors import StoreError
from services.store.readmodel import GrantFilter

log = logging.getLogger(__name__)

DRAFT_VERSION = 1
#: The kinds of grant the picker lists (and a filter's "select all" matches), in its order.
CANDIDATE_KINDS: tuple[Literal["guest", "unknown"], ...] = ("guest", "unknown")
OUTCOMES = ("would_change", "unchanged", "succeeded", "failed", "skipped")


@dataclass(frozen=True)
class DraftDryRun:
    """A dry run as the draft keeps it: the plan it was made for (grants, and a tier or a
    custom limit) and its per-grant outcomes."""

    grant_ids: tuple[str, ...]
    tier: str | None
    limit: int | None
    result: BulkResult


@dataclass(frozen=True)
class FilterMatch:
    """The grants a filter of the picker matched when "select all" was asked: `grant_ids`
    (at most `validation.MAX_BULK`, by grant id) and whether more matched (`capped`)."""

    search: str
    grant_ids: tuple[str, ...]
    capped: bool = False

    def message(self) -> str:
        """What the page says about it."""
        where = f"matching “{self.search}”" if self.search else "the picker lists"
        n = len(self.grant_ids)
        if self.capped:
            return (f"The first {n:,} (by grant id) of the grants {where}: more match, and a "
                    f"run takes at most {v.MAX_BULK:,}. Narrow the filter to pick the others "
                    "in another run.")
        return f"All {n:,} grant(s) {where}."


@dataclass(frozen=True)
class BulkDraft:
    """One user's work on the Guest limits page. `how`: "tier" or "limit"; `limit_text`:
    the custom limit as typed (checked when it is run, as a typed one is)."""

    picked: tuple[str, ...] = ()
    uploaded: tuple[str, ...] = ()
    upload_name: str | None = None
    match: FilterMatch | None = None
    how: Literal["tier", "limit"] = "tier"
    tier: str | None = None
    limit_text: str = ""
    dry_run: DraftDryRun | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)  # what could not be read
    rev: int | None = field(default=None, compare=False)  # the stored revision it was read at

    @property
    def selected(self) -> tuple[str, ...]:
        """The grants of the selection: ticked, then from the file, then matched, each once."""
        matched = self.match.grant_ids if self.match is not None else ()
        return tuple(dict.fromkeys([*self.picked, *self.uploaded, *matched]))


EMPTY = BulkDraft()


class BulkDraftOps:
    """Load, save and clear the actor's draft; resolve a filter to grant ids (permission
    MANAGE_LIMITS). Not audited: a draft changes nothing at Kryptos, and its dry run and
    apply are audited by the limits use cases."""

    def __init__(self, ctx: OpsContext, store: BulkDraftStore) -> None:
        self.ctx = ctx
        self.store = store

    def __repr__(self) -> str:
        return f"BulkDraftOps({self.ctx!r})"

    def _check(self, actor: Actor) -> None:
        self.ctx.check(actor, Permission.MANAGE_LIMITS, AuditAction.LIMIT_UPDATE_BULK)

    def load(self, actor: Actor, known: BulkDraft | None = None) -> BulkDraft:
        """The actor's draft (empty when there is none). A part that cannot be read (a
        draft written by another version) is left out and named in `problems`. `known`:
        a draft of the actor read or saved before; returned as it is while the stored
        revision is still its own (one small read instead of the whole body)."""
        self._check(actor)
        got = self._store(self.store.load, actor.username,
                          unless_rev=known.rev if known is not None else None)
        if got is None:
            return EMPTY
        rev, body = got
        if body is None and known is not None:
            return known
        return replace(self._parse(actor, str(body)), rev=rev)

    def _parse(self, actor: Actor, body: str) -> BulkDraft:
        try:
            data = json.loads(body)
        except ValueError:
            log.warning("the Guest limits draft of %s is not JSON; starting afresh",
                        actor.username)
            return BulkDraft(problems=("The saved selection could not be read.",))
        if not isinstance(data, dict) or data.get("v") != DRAFT_VERSION:
            return BulkDraft(problems=("The saved selection is from another version.",))
        return _draft_from(data)

    def save(self, actor: Actor, draft: BulkDraft) -> BulkDraft:
        """Replace the actor's draft with `draft` (its ids checked and bounded); returns
        what was kept. An empty draft deletes the row."""
        self._check(actor)
        kept = BulkDraft(
            picked=_ids(draft.picked, "picked"), uploaded=_ids(draft.uploaded, "uploaded"),
            upload_name=(draft.upload_name or None) and str(draft.upload_name)[:200],
            match=None if draft.match is None else FilterMatch(
                draft.match.search[:200], _ids(draft.match.grant_ids, "matched"),
                draft.match.capped),
            how="limit" if draft.how == "limit" else "tier",
            tier=None if draft.tier is None else str(draft.tier)[:100],
            limit_text=str(draft.limit_text)[:40],
            dry_run=draft.dry_run,
        )
        if kept.dry_run is not None:
            _ids(kept.dry_run.grant_ids, "dry run")
            if len(kept.dry_run.result.items) > v.MAX_BULK:
                raise ValidationError("dry_run", f"A dry run keeps at most {v.MAX_BULK:,} "
                                                 "grants.")
        if kept == BulkDraft():
            self._store(self.store.clear, actor.username)
            return kept
        rev = self._store(self.store.save, actor.username,
                          json.dumps(_draft_json(kept), separators=(",", ":")))
        return replace(kept, rev=rev)

    def clear(self, actor: Actor) -> None:
        """Forget the actor's draft (Clear selection)."""
        self._check(actor)
        self._store(self.store.clear, actor.username)

    def match_filter(self, actor: Actor, search: str | None) -> FilterMatch:
        """The grants the picker would list for `search` (active Guests, then active grants
        of unknown kind, each by grant id), all of them up to `MAX_BULK`: one index range a
        kind, read in order and stopped there, never the rows."""
        self._check(actor)
        text = (search or "").strip()
        if len(text) > 200:
            raise ValidationError("search", "A filter is at most 200 characters.")
        ids: list[str] = []
        for kind in CANDIDATE_KINDS:
            room = v.MAX_BULK + 1 - len(ids)
            if room <= 0:
                break
            ids += self._store(self.ctx.readmodel.grant_ids,
                               GrantFilter(search=text or None, status="active", kind=kind),
                               room)
        if not ids:
            raise OperationError("No grant matches this filter.", code="NO_MATCH")
        return FilterMatch(text, tuple(ids[:v.MAX_BULK]), capped=len(ids) > v.MAX_BULK)

    @staticmethod
    def _store(call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except StoreError as exc:
            raise OperationError(f"The saved selection could not be read or written: "
                                 f"{exc.user_message}", code="STORE_ERROR") from None


# --- the stored form ----------------------------------------------------------------------

def _ids(values: Iterable[object], what: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(v.grant_id(x, field=what) for x in values))
    if len(out) > v.MAX_BULK:
        raise ValidationError(what, f"At most {v.MAX_BULK:,} grants ({what}: {len(out):,}).")
    return out


def _limit_json(value: GuestLimit) -> list[Any]:
    return [value.kind, value.cap, value.limiter]


def _limit_from(value: object) -> GuestLimit:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError("a limit is [kind, cap, limiter]")
    return GuestLimit(value[0], value[1], value[2])


def _draft_json(d: BulkDraft) -> dict[str, Any]:
    out: dict[str, Any] = {"v": DRAFT_VERSION, "picked": list(d.picked),
                           "uploaded": list(d.uploaded), "upload_name": d.upload_name,
                           "how": d.how, "tier": d.tier, "limit_text": d.limit_text}
    if d.match is not None:
        out["match"] = {"search": d.match.search, "ids": list(d.match.grant_ids),
                        "capped": d.match.capped}
    if d.dry_run is not None:
        r = d.dry_run.result
        out["dry_run"] = {
            "ids": list(d.dry_run.grant_ids), "tier": d.dry_run.tier,
            "limit": d.dry_run.limit, "label": r.tier,
            "items": [[i.grant_id, i.customer_ref, i.outcome, _limit_json(i.before),
                       _limit_json(i.after), i.error_code, i.message] for i in r.items],
        }
    return out


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("a list of ids")
    return tuple(str(x) for x in value)


def _draft_from(data: dict[str, Any]) -> BulkDraft:
    problems: list[str] = []
    try:
        picked, uploaded = _strings(data.get("picked", [])), _strings(data.get("uploaded", []))
    except ValueError:
        return BulkDraft(problems=("The saved selection could not be read.",))
    match: FilterMatch | None = None
    if isinstance(m := data.get("match"), dict):
        try:
            match = FilterMatch(str(m.get("search") or ""), _strings(m.get("ids")),
                                bool(m.get("capped")))
        except ValueError:
            problems.append("The saved filter selection could not be read.")
    dry: DraftDryRun | None = None
    if isinstance(d := data.get("dry_run"), dict):
        try:
            dry = DraftDryRun(_strings(d.get("ids")),
                              None if d.get("tier") is None else str(d["tier"]),
                              _int_or_none(d.get("limit")),
                              BulkResult(tuple(_item(x) for x in d.get("items") or []),
                                         dry_run=True, tier=str(d.get("label") or "")))
        except (ValueError, TypeError):
            problems.append("The saved dry run could not be read; run it again.")
    tier = data.get("tier")
    return BulkDraft(
        picked=picked, uploaded=uploaded,
        upload_name=str(data["upload_name"]) if data.get("upload_name") else None,
        match=match, how="limit" if data.get("how") == "limit" else "tier",
        tier=None if tier is None else str(tier), limit_text=str(data.get("limit_text") or ""),
        dry_run=dry, problems=tuple(problems),
    )


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a limit is a whole number")
    return value


def _item(x: object) -> BulkItem:
    if not isinstance(x, list) or len(x) != 7 or x[2] not in OUTCOMES:
        raise ValueError("a dry-run item")
    gid, ref, outcome, before, after, code, message = x
    return BulkItem(str(gid), None if ref is None else str(ref), outcome, _limit_from(before),
                    _limit_from(after), None if code is None else str(code),
                    None if message is None else str(message))
