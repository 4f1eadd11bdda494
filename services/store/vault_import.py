"""Reading a CSV of tokens to import into the vault (`python -m services.store import-tokens`,
the console's import form): `grant_id, access_token, customer_ref` rows, optional columns
workspace_id, kryptos_user_id, user_kind. `TokenVault.import_csv` stores the valid rows."""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import IO, Any

from services.store.errors import StoreError
from services.store.vault_fields import (
    GRANT_ID_RE,
    clean_field,
    valid_grant_id,
    valid_kind,
    valid_token,
)

#: Why an imported grant that Kryptos does not list is refused.
NOT_LISTED = ("Kryptos does not list this grant (revoked, expired, or of another client): "
              "not imported.")
#: A valid row: (grant id, token, fields given).
ImportRow = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class RejectedRow:
    line: int
    grant_id: str | None
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """`added` and `updated` are counts; `rejected` lists each refused CSV line with why;
    `stored` names each stored grant: (grant id, added, customer reference)."""

    added: int
    updated: int
    rejected: tuple[RejectedRow, ...]
    stored: tuple[tuple[str, bool, str | None], ...] = ()

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)


def read_import(file: str | os.PathLike[str] | IO[str],
                listed: Collection[str] | None = None
                ) -> tuple[list[ImportRow], tuple[RejectedRow, ...]]:
    """The valid rows of the CSV `file` (a path or an open text file) and the refused ones,
    by line number with a reason that never contains the token. `listed`: the grants Kryptos
    lists; any other grant is refused (`NOT_LISTED`)."""
    if isinstance(file, str | os.PathLike):
        try:
            with open(file, encoding="utf-8-sig", newline="") as fh:
                return _parse(fh, listed)
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"Cannot read {os.fspath(file)}: {exc.__class__.__name__}") \
                from None
    return _parse(file, listed)


def _parse(fh: IO[str], listed: Collection[str] | None
           ) -> tuple[list[ImportRow], tuple[RejectedRow, ...]]:
    reader = csv.DictReader(fh)
    try:
        names = reader.fieldnames
    except (UnicodeDecodeError, csv.Error):
        raise StoreError("The file is not a readable UTF-8 CSV: save it as CSV UTF-8 and "
                         "upload it again.") from None
    header = [h.strip().lower() for h in (names or [])]
    missing = {"grant_id", "access_token"} - set(header)
    if missing:
        raise StoreError(
            "The CSV needs a header row with grant_id, access_token and customer_ref "
            f"(missing: {', '.join(sorted(missing))}).")
    reader.fieldnames = header
    rejected: list[RejectedRow] = []
    valid: list[ImportRow] = []
    seen: dict[str, int] = {}
    try:
        rows: Iterator[dict[str, Any]] = iter(reader)
        for row in rows:
            line = reader.line_num
            gid_raw = (row.get("grant_id") or "").strip()
            # Only a well-formed grant id is echoed: a swapped column must never print a
            # token (or anything else) that happens to sit in the grant_id cell.
            shown = gid_raw if GRANT_ID_RE.match(gid_raw) else None
            if None in row:
                rejected.append(RejectedRow(line, shown, "more cells than header columns"))
                continue
            try:
                gid = valid_grant_id(gid_raw)
                token = valid_token(row.get("access_token"))
                fields = {k: v for k, v in {
                    "customer_ref": clean_field(row.get("customer_ref"), "customer_ref", 320),
                    "workspace_id": clean_field(row.get("workspace_id"), "workspace_id", 200),
                    "kryptos_user_id": clean_field(row.get("kryptos_user_id"),
                                                   "kryptos_user_id", 200),
                    "user_kind": valid_kind(row.get("user_kind")),
                }.items() if v is not None}
            except StoreError as exc:
                rejected.append(RejectedRow(line, shown, exc.user_message))
                continue
            if listed is not None and gid not in listed:
                rejected.append(RejectedRow(line, gid, NOT_LISTED))
                continue
            if gid in seen:
                rejected.append(RejectedRow(
                    line, gid, f"grant_id repeats line {seen[gid]} (first one kept)"))
                continue
            seen[gid] = line
            valid.append((gid, token, fields))
    except csv.Error as exc:
        raise StoreError(f"The CSV cannot be read at line {max(reader.line_num, 1)}: "
                         f"{exc}.") from None
    except UnicodeDecodeError:
        raise StoreError(f"The file is not UTF-8 text (from line {reader.line_num + 1}): "
                         "save the CSV as UTF-8 and upload it again.") from None
    return valid, tuple(rejected)
