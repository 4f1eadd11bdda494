"""A Guest's transaction limit as one value: unknown, no cap, or capped at N transactions,
with its limiter on or off. Every use case, page and stored record speaks of a grant's
limit through `GuestLimit`: its words for the screen and messages, its JSON form for audit
params and approval items (the form stored rows already have: a number, null for no cap,
"unknown"), and the rules that compare two limits (a cut by more than half, a limiter
switched off)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

LimitKind = Literal["unknown", "no_cap", "capped"]
#: The stored (JSON) form of a limit: the cap, None for no cap, or "unknown".
LimitJSON = int | str | None

UNKNOWN_WORDS = "unknown"
NO_CAP_WORDS = "no cap (limiter off)"


@dataclass(frozen=True, order=False)
class GuestLimit:
    """A grant's effective transaction limit. `kind`: "unknown" (nobody could read it),
    "no_cap" (any number of transactions) or "capped" (`cap` transactions). `limiter`: the
    switch as known (a capped limit has it on; no cap has it off unless the API said on
    with no limit stored; None when unknown)."""

    kind: LimitKind = "unknown"
    cap: int | None = None
    limiter: bool | None = None

    def __post_init__(self) -> None:
        if self.kind == "capped":
            if isinstance(self.cap, bool) or not isinstance(self.cap, int) or self.cap < 0:
                raise ValueError(f"a capped limit needs a whole number, not {self.cap!r}")
            if self.limiter is not True:
                raise ValueError("a capped limit has its limiter on")
        elif self.cap is not None:
            raise ValueError(f"only a capped limit has a cap ({self.kind})")
        if self.kind == "unknown" and self.limiter is not None:
            raise ValueError("an unknown limit has no known limiter")
        if self.kind == "no_cap" and self.limiter is None:
            raise ValueError("a known limit has its limiter on or off")

    # --- making one ---------------------------------------------------------------------

    @classmethod
    def unknown(cls) -> GuestLimit:
        return UNKNOWN

    @classmethod
    def no_cap(cls, limiter: bool = False) -> GuestLimit:
        return NO_CAP if not limiter else cls("no_cap", None, True)

    @classmethod
    def capped(cls, cap: int) -> GuestLimit:
        return cls("capped", cap, True)

    @classmethod
    def of(cls, limit: int | None, limiter: bool | None) -> GuestLimit:
        """The limit in force from the stored pair (limit, limiter), as the API's PATCH
        answers and the audit log's before/after carry them: no cap when the limiter is
        off (a stored limit is then not enforced) or no limit is set."""
        if limiter is False or limit is None:
            return cls.no_cap(limiter is True)
        return cls.capped(limit)

    @classmethod
    def from_userinfo(cls, transaction_limit: int | None) -> GuestLimit:
        """From the user info's `transaction_limit`: the limit in force (None: no cap)."""
        return cls.capped(transaction_limit) if transaction_limit is not None else NO_CAP

    @classmethod
    def shown(cls, limit: object, limiter: object) -> GuestLimit:
        """What a person saw, from the limit and limiter a page showed: no cap when the
        limiter was off, unknown when nothing was shown. Raises `TypeError` (limiter not a
        bool) or `ValueError` (limit not a whole number) for anything else."""
        if limiter is not None and not isinstance(limiter, bool):
            raise TypeError("limiter")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError("limit")
        if limiter is False:
            return NO_CAP
        return cls.capped(limit) if limit is not None else UNKNOWN

    @classmethod
    def from_json(cls, value: object) -> GuestLimit:
        """From a stored form: a number (capped), None (no cap), "unknown", the words a
        stale refusal stored ("3,000", "no cap (limiter off)"), a `{transaction_limit,
        enable_limiter}` mapping (audit before/after), or a `GuestLimit`. Anything else is
        unknown: a stored row is never refused."""
        if isinstance(value, GuestLimit):
            return value
        if value is None:
            return NO_CAP
        if isinstance(value, bool):
            return UNKNOWN
        if isinstance(value, int):
            return cls.capped(value) if value >= 0 else UNKNOWN
        if isinstance(value, Mapping):
            lim, on = value.get("transaction_limit"), value.get("enable_limiter")
            if (lim is not None and (isinstance(lim, bool) or not isinstance(lim, int))) or \
                    (on is not None and not isinstance(on, bool)):
                return UNKNOWN
            return cls.of(lim, on)
        if isinstance(value, str):
            text = value.strip().lower()
            if text.startswith("no cap"):
                return NO_CAP
            digits = text.removesuffix(" transactions").replace(",", "")
            if digits.isdigit():
                return cls.capped(int(digits))
        return UNKNOWN

    # --- reading one --------------------------------------------------------------------

    @property
    def known(self) -> bool:
        return self.kind != "unknown"

    @property
    def is_capped(self) -> bool:
        return self.kind == "capped"

    @property
    def limit(self) -> int | None:
        """The cap in force (None: no cap, or unknown)."""
        return self.cap

    def to_json(self) -> LimitJSON:
        """The stored form: the cap, None for no cap, "unknown"."""
        if self.kind == "unknown":
            return UNKNOWN_WORDS
        return self.cap

    def words(self) -> str:
        """In a sentence: "7,500", "no cap (limiter off)", "unknown"."""
        if self.cap is not None:
            return f"{self.cap:,}"
        return NO_CAP_WORDS if self.kind == "no_cap" else UNKNOWN_WORDS

    def label(self) -> str:
        """In a table cell: "7,500", "no cap", "unknown"."""
        if self.cap is not None:
            return f"{self.cap:,}"
        return "no cap" if self.kind == "no_cap" else UNKNOWN_WORDS

    def same_limit(self, other: GuestLimit) -> bool:
        """The same limit in force (the limiter of a no-cap limit aside)."""
        return self.kind == other.kind and self.cap == other.cap

    # --- changes ------------------------------------------------------------------------

    def after(self, limit: int | None, limiter: bool | None) -> GuestLimit:
        """The limit in force after sending (limit, limiter) over this one; unknown when it
        depends on a stored limit nobody can read."""
        if limiter is False:
            return NO_CAP
        if limit is not None:
            if limiter is True:
                return GuestLimit.capped(limit)
            if not self.known:
                return UNKNOWN
            return self if self.kind == "no_cap" else GuestLimit.capped(limit)
        # limiter switched on, limit kept: the stored limit shows only when already on
        return self if self.is_capped else UNKNOWN

    def cut_by_more_than_half(self, new: GuestLimit) -> bool:
        """True when both are capped and `new` is less than half of this one."""
        return self.cap is not None and new.cap is not None and new.cap * 2 < self.cap


UNKNOWN = GuestLimit("unknown", None, None)
NO_CAP = GuestLimit("no_cap", None, False)


def confirmation_question(before: GuestLimit, limit: int | None,
                          limiter: bool | None) -> str | None:
    """The rule: a change of one grant's limit that cuts it by more than half, or switches
    the limiter off, must be confirmed; this is the question (None: nothing to confirm).
    `before`: the limit as known (seen or read)."""
    on = True if limit is not None and limiter is None else limiter
    after = before.after(limit, on)
    if on is False and before.limiter is not False:
        return (f"This switches the limiter off: the limit goes from {before.words()} "
                "to no cap (the Guest can make any number of transactions).")
    if before.cut_by_more_than_half(after):
        return (f"This cuts the limit by more than half: {before.words()} -> {after.words()} "
                "transactions.")
    return None


def bulk_confirmation_question(befores: Mapping[str, GuestLimit], limit: int | None,
                               limiter: bool | None) -> str | None:
    """The same rule over many grants (`befores`: each grant's limit as the person saw it,
    a dry run's `before`): the question names how many grants are cut by more than half
    (with the largest cut as an example) and how many get their limiter switched off;
    None when no grant needs it. A grant whose before is unknown asks nothing."""
    on = True if limit is not None and limiter is None else limiter
    cuts: list[tuple[GuestLimit, GuestLimit]] = []
    offs = 0
    for before in befores.values():
        if not before.known or confirmation_question(before, limit, limiter) is None:
            continue
        after = before.after(limit, on)
        if on is False and before.limiter is not False:
            offs += 1
        elif before.cut_by_more_than_half(after):
            cuts.append((before, after))
    if not cuts and not offs:
        return None
    n = len(befores)
    parts = []
    if cuts:
        before, after = max(cuts, key=lambda c: (c[0].cap or 0) - (c[1].cap or 0))
        parts.append(f"cuts the limit by more than half on {len(cuts):,} of {n:,} grant(s) "
                     f"(e.g. {before.words()} -> {after.words()} transactions)")
    if offs:
        parts.append(f"switches the limiter off on {offs:,} of {n:,} grant(s) (no cap: the "
                     "Guest can make any number of transactions)")
    return "This " + " and ".join(parts) + "."


__all__ = ["NO_CAP", "UNKNOWN", "GuestLimit", "LimitJSON", "bulk_confirmation_question",
           "confirmation_question"]
