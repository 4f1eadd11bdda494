"""Deterministic seed data of the sandbox: clients, workspaces, grants, users, integrations.

The grant list is built eagerly (cheap: a few random draws per grant); each user's details
(integrations, balances, names) are generated lazily from `random.Random(f"{seed}:...")`, so
the same seed always gives the same data, and 100,000 grants start in a few seconds.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field

DEFAULT_SCOPES = (
    "openid profile offline_access email portfolios:read transactions:read integrations:read "
    "tax:read accounting:read reports:read workspace:read users:read"
)
KNOWN_SCOPES = frozenset(DEFAULT_SCOPES.split()) | {"balances:read"}
ACCESS_TOKEN_LIFETIME = 473040000
PLATFORM_DEFAULT_LIMIT = 100000

CLIENTS: dict[str, str] = {
    "sandbox_client": "sandbox_secret_do_not_use_live",
    "other_client": "other_secret",
}
MAIN_CLIENT = "sandbox_client"
OTHER_CLIENT = "other_client"
OTHER_CLIENT_GRANTS = 3

# Seeded grants start on this date (UTC), one after the other over a year.
SEED_START = 1704067200.0  # 2024-01-01T00:00:00Z
SEED_SPAN = 365 * 86400.0
# The 'now' of seeded sync times (deterministic): two weeks after the last seeded grant.
SEED_NOW = SEED_START + SEED_SPAN + 14 * 86400.0

REDUCED_SCOPES_NO_INTEGRATIONS = "openid profile email portfolios:read users:read"
REDUCED_SCOPES_INTEGRATIONS_ONLY = "openid offline_access integrations:read"

XSS_ALIAS = '<img src=x onerror="window.__xss=1">Cold <b>wallet</b>'
XSS_MESSAGE = "<script>window.__xss=2</script> **not bold** [link](javascript:alert(1))"

LOGO = "https://assets.kryptos.io/logos/{}.png"


@dataclass(frozen=True)
class AssetDef:
    token_id: str
    symbol: str
    name: str
    chain_id: str | None
    price: float
    change_24h: float
    type: str = "crypto"
    category: str = "crypto"
    qty_range: tuple[float, float] = (1.0, 10.0)
    spam: bool = False

    def to_api(self) -> dict:
        return {
            "tokenId": self.token_id,
            "symbol": self.symbol,
            "publicName": self.name,
            "chainId": self.chain_id,
            "logoUrl": LOGO.format(self.token_id),
            "type": self.type,
            "category": self.category,
        }


ASSETS: dict[str, AssetDef] = {
    a.symbol: a
    for a in (
        AssetDef("bitcoin", "BTC", "Bitcoin", "bitcoin", 64250.0, 2.1, qty_range=(0.005, 2.0)),
        AssetDef("ethereum", "ETH", "Ethereum", "ethereum", 3120.0, -1.4, qty_range=(0.05, 25.0)),
        AssetDef("solana", "SOL", "Solana", "solana", 148.2, 4.8, qty_range=(1.0, 300.0)),
        AssetDef("usd-coin", "USDC", "USD Coin", "ethereum", 1.0, 0.01, qty_range=(50, 20000)),
        AssetDef("tether", "USDT", "Tether", "ethereum", 1.0, -0.02, qty_range=(50, 20000)),
        AssetDef("cardano", "ADA", "Cardano", "cardano", 0.45, -2.3, qty_range=(100, 20000)),
        AssetDef("avalanche-2", "AVAX", "Avalanche", "avalanche", 27.6, 3.1, qty_range=(1, 200)),
        AssetDef("chainlink", "LINK", "Chainlink", "ethereum", 14.3, 1.2, qty_range=(5, 500)),
        AssetDef("matic-network", "MATIC", "Polygon", "polygon", 0.52, -0.8, qty_range=(50, 1e4)),
        AssetDef("polkadot", "DOT", "Polkadot", "polkadot", 6.1, 0.6, qty_range=(10, 1000)),
        AssetDef("usd", "USD", "US Dollar", None, 1.0, 0.0, "fiat", "fiat", (20, 15000)),
    )
}
NFTS: tuple[AssetDef, ...] = (
    AssetDef("bayc-8817", "BAYC", "Bored Ape Yacht Club #8817", "ethereum", 38200.0, -3.2,
             "nft", "nft", (1, 1)),
    AssetDef("punk-3100", "PUNK", "CryptoPunk #3100", "ethereum", 96500.0, 0.4, "nft", "nft",
             (1, 1)),
    AssetDef("azuki-4121", "AZUKI", "Azuki #4121", "ethereum", 6100.0, 1.9, "nft", "nft", (1, 1)),
    AssetDef("ppg-2207", "PPG", "Pudgy Penguin #2207", "ethereum", 31000.0, 5.5, "nft", "nft",
             (1, 1)),
)
SPAM: tuple[AssetDef, ...] = (
    AssetDef("spam-eth-claim", "ETHG", "Visit eth-claim.xyz to claim rewards", "ethereum", 0.0,
             0.0, category="spam", qty_range=(1000, 50000), spam=True),
    AssetDef("spam-usdc-airdrop", "USDC.e-AIRDROP", "USDC Airdrop Voucher", "ethereum", 0.0, 0.0,
             category="spam", qty_range=(100, 9999), spam=True),
    AssetDef("spam-free-sol", "FREESOL", "Free SOL at sol-gift.io", "solana", 0.0, 0.0,
             category="spam", qty_range=(10, 5000), spam=True),
)
ALL_ASSETS: dict[str, AssetDef] = {
    **{a.token_id: a for a in ASSETS.values()},
    **{a.token_id: a for a in NFTS},
    **{a.token_id: a for a in SPAM},
}

# provider, public name, category, assets held, address style
CHAINS = (
    ("ethereum", "Ethereum", ("ETH", "USDC", "USDT", "LINK"), "evm"),
    ("bitcoin", "Bitcoin", ("BTC",), "btc"),
    ("solana", "Solana", ("SOL", "USDC"), "sol"),
    ("cardano", "Cardano", ("ADA",), "ada"),
    ("avalanche", "Avalanche", ("AVAX", "USDC"), "evm"),
    ("polkadot", "Polkadot", ("DOT",), "dot"),
    ("polygon", "Polygon", ("MATIC", "USDC"), "evm"),
)
EXCHANGES = (
    ("binance", "Binance"),
    ("coinbase", "Coinbase"),
    ("kraken", "Kraken"),
    ("kucoin", "KuCoin"),
)
CSV_PROVIDERS = (("coinbase", "Coinbase"), ("custom", "Custom CSV"), ("bitstamp", "Bitstamp"))
ALIASES = ("Main wallet", "Savings", "Trading", "DeFi Wallet", "Cold storage", "Long term",
           "Staking", None, None)
FIRST_NAMES = ("Alice", "Bruno", "Chloé", "Deepa", "Emeka", "Fatima", "Gustav", "Hana", "Ivan",
               "Julia", "Kenji", "Lena", "Mateo", "Nadia", "Oscar", "Priya", "Quentin", "Rosa")
LAST_NAMES = ("Martin", "Okafor", "Nguyen", "Schmidt", "Rossi", "Kowalski", "Haddad", "Silva",
              "Tanaka", "Dubois", "Larsen", "Moreau", "Patel", "García")
WORKSPACE_NAMES = ("Main", "Tax Season", "Premium", "Partners", "EU", "Trial", "Enterprise",
                   "Accountants", "Beta", "Legacy")
WORKSPACE_DEFAULTS = (5000, None, 25000, None, 1000, None)
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def hex_id(rng: random.Random, nbytes: int) -> str:
    return f"{rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def uuid_from(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Workspace:
    workspace_id: str
    name: str
    default_limit: int | None


@dataclass(slots=True)
class GrantRecord:
    grant_id: str
    client_id: str
    user_id: str
    kind: str  # "guest" | "linked"
    workspace_id: str
    scopes: str
    created_at: float
    access_token: str
    customer_ref: str | None
    detail_key: str
    specials: frozenset[str] = frozenset()
    revoked: bool = False
    revoked_at: float | None = None
    exported: bool = True


@dataclass
class IntegrationState:
    wallet_id: str
    provider: str
    provider_public_name: str
    public_address: str | None
    alias: str | None
    category: str
    type: str  # "api" | "csv"
    status: str
    message: str | None
    last_sync_log: dict[str, str] | None
    limit_exceeded: bool
    added_on_ms: int
    last_synced_ms: int | None
    total_transactions: int
    balances: list[tuple[str, float]]  # (token id, quantity)
    csv_has_source: bool = True
    sync_disabled: bool = False
    csv_resync_unsupported: bool = False
    resync_until: float | None = None
    resync_failure: str | None = None  # a resync fault: the message it ends FAILED with

    def refresh(self, now: float) -> bool:
        """Finish a resync once the sandbox clock passed its end; True when it just did."""
        if self.resync_until is None or now < self.resync_until:
            return False
        self.last_synced_ms = int(self.resync_until * 1000)
        self.resync_until = None
        if self.resync_failure is not None:
            self.status = "FAILED"
            self.last_sync_log = {"Balances": "FAILED", "Transactions": "FAILED"}
            self.message, self.resync_failure = self.resync_failure, None
            return True
        self.status = "COMPLETED"
        self.last_sync_log = {"Balances": "COMPLETED", "Transactions": "COMPLETED"}
        self.message = None
        self.limit_exceeded = False
        return True

    def to_api(self) -> dict:
        out: dict = {
            "provider": self.provider,
            "providerPublicName": self.provider_public_name,
            "publicAddress": self.public_address,
            "walletId": self.wallet_id,
            "logoUrl": LOGO.format(self.provider),
            "isContract": False,
            "alias": self.alias,
            "status": self.status,
        }
        if self.message is not None:
            out["message"] = self.message
        if self.last_sync_log is not None:
            out["lastSyncLog"] = dict(self.last_sync_log)
        if self.limit_exceeded:
            out["limitExceeded"] = True
        out.update(
            addedOn=self.added_on_ms,
            lastSyncedAt=self.last_synced_ms,
            category=self.category,
            type=self.type,
            totalTransactions=self.total_transactions,
        )
        return out

    def search_text(self, account_name: str | None) -> str:
        parts = [self.alias, self.public_address, account_name, self.wallet_id, self.provider,
                 self.provider_public_name]
        return " ".join(p for p in parts if p).lower()


@dataclass
class UserState:
    user_id: str
    kind: str
    name: str | None
    email: str | None
    language: str
    integrations: list[IntegrationState]
    cost_ratio: dict[str, float] = field(default_factory=dict)
    limit_override: int | None = None
    limiter_override: bool | None = None

    def integration(self, wallet_id: str) -> IntegrationState | None:
        for integ in self.integrations:
            if integ.wallet_id == wallet_id:
                return integ
        return None


def _address(rng: random.Random, style: str) -> str:
    if style == "evm":
        return "0x" + hex_id(rng, 20)
    if style == "btc":
        return "bc1q" + "".join(rng.choice(BECH32) for _ in range(38))
    if style == "sol":
        return "".join(rng.choice(BASE58) for _ in range(44))
    if style == "ada":
        return "addr1q" + "".join(rng.choice(BECH32) for _ in range(52))
    return "1" + "".join(rng.choice(BASE58) for _ in range(47))


def _qty(rng: random.Random, asset: AssetDef) -> float:
    lo, hi = asset.qty_range
    if lo == hi:
        return lo
    value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return round(value, 2 if asset.price <= 2 else 6)


def _status(rng: random.Random, kind: str, integ: IntegrationState, now: float) -> None:
    r = rng.random()
    synced = max(int((now - rng.uniform(3600, 20 * 86400)) * 1000), integ.added_on_ms)
    synced = min(synced, int(now * 1000))
    if r < 0.68:
        integ.status = "COMPLETED"
        integ.last_sync_log = {"Balances": "COMPLETED", "Transactions": "COMPLETED"}
        integ.last_synced_ms = synced
    elif r < 0.78:
        integ.status = "FAILED"
        integ.message = (
            "Invalid API key: the exchange rejected the credentials"
            if integ.category == "exchange"
            else "Upstream node timeout while fetching transactions"
        )
        integ.last_sync_log = {"Balances": "FAILED", "Transactions": "FAILED"}
        integ.last_synced_ms = synced
    elif r < 0.9 and kind == "guest":
        _partially_synced(integ, synced)
    elif r < 0.9:
        integ.status = "COMPLETED"
        integ.last_sync_log = {"Balances": "COMPLETED", "Transactions": "COMPLETED"}
        integ.last_synced_ms = synced
    else:
        integ.status = "active"
        integ.last_synced_ms = None


def _partially_synced(integ: IntegrationState, synced_ms: int) -> None:
    integ.status = "PARTIALLY SYNCED"
    integ.message = (
        f"Unable to fetch transactions beyond {integ.total_transactions}: "
        "transaction limit reached"
    )
    integ.last_sync_log = {"Balances": "COMPLETED", "Transactions": "FAILED"}
    integ.limit_exceeded = True
    integ.last_synced_ms = synced_ms


def _identity(rng: random.Random, kind: str, name: str | None,
              email: str | None) -> tuple[str | None, str | None]:
    """A Linked user's name and email (drawn when not given); Guests have none by default."""
    if kind == "linked" and name is None:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if kind == "linked" and email is None and name:
        email = name.lower().replace(" ", ".").replace("é", "e").replace("í", "i") + "@example.com"
    return name, email


def _shapes(rng: random.Random, full: bool, specials: frozenset[str]) -> list[str]:
    """Which integrations a user has: a chain first, then an exchange and a CSV, then random."""
    count = 4 if full else rng.randint(1, 5)
    shapes = ["chain", "exchange", "csv"][:max(1, min(count, 3))]
    while len(shapes) < count:
        shapes.append(rng.choice(("chain", "chain", "exchange", "ledger")))
    if ("csv_missing" in specials or "csv_unsupported" in specials) and "csv" not in shapes:
        shapes.append("csv")
    if "limit_exceeded" in specials or "sync_disabled" in specials:
        shapes.append("chain")
    return shapes


def _blank(wallet_id: str, provider: str, public: str, address: str | None, alias: str | None,
           category: str, type_: str, added: int, total: int) -> IntegrationState:
    return IntegrationState(wallet_id, provider, public, address, alias, category, type_,
                            "COMPLETED", None, None, False, added, None, total, [])


def _add_balances(rng: random.Random, integ: IntegrationState, low: int, high: int) -> None:
    crypto = [a for a in ASSETS.values() if a.type == "crypto"]
    for asset in rng.sample(crypto, rng.randint(low, high)):
        integ.balances.append((asset.token_id, _qty(rng, asset)))


def _chain(rng: random.Random, ids: tuple[str, int, int], first_of_full: bool) -> IntegrationState:
    """A blockchain address; a `full` user's first one is an Ethereum address with an NFT and
    a spam token."""
    chain = CHAINS[0] if first_of_full else rng.choice(CHAINS)
    provider, public, symbols, style = chain
    wallet_id, added, total = ids
    integ = _blank(wallet_id, provider, public, _address(rng, style), rng.choice(ALIASES),
                   "blockchain", "api", added, total)
    for sym in symbols:
        if sym == symbols[0] or rng.random() < 0.5:
            integ.balances.append((ASSETS[sym].token_id, _qty(rng, ASSETS[sym])))
    if provider == "ethereum" and (rng.random() < 0.5 or first_of_full):
        integ.balances.append((rng.choice(NFTS).token_id, 1.0))
    if provider in ("ethereum", "solana") and (rng.random() < 0.5 or first_of_full):
        pick = rng.choice([s for s in SPAM if s.chain_id == provider])
        integ.balances.append((pick.token_id, _qty(rng, pick)))
    return integ


def _ledger(rng: random.Random, ids: tuple[str, int, int], _first: bool) -> IntegrationState:
    wallet_id, added, total = ids
    integ = _blank(wallet_id, "ledger", "Ledger", _address(rng, "evm"), rng.choice(ALIASES),
                   "wallet", "api", added, total)
    integ.balances = [("bitcoin", _qty(rng, ASSETS["BTC"])), ("ethereum", _qty(rng, ASSETS["ETH"]))]
    return integ


def _exchange(rng: random.Random, ids: tuple[str, int, int], _first: bool) -> IntegrationState:
    wallet_id, added, total = ids
    provider, public = rng.choice(EXCHANGES)
    integ = _blank(wallet_id, provider, public, None, rng.choice(ALIASES), "exchange", "api",
                   added, total)
    _add_balances(rng, integ, 2, 4)
    integ.balances.append(("usd", _qty(rng, ASSETS["USD"])))
    return integ


def _csv(rng: random.Random, ids: tuple[str, int, int], _first: bool) -> IntegrationState:
    wallet_id, added, total = ids
    provider, public = rng.choice(CSV_PROVIDERS)
    integ = _blank(wallet_id, provider, public, None,
                   rng.choice(("CSV import", "2023 export", None)),
                   "exchange" if provider != "custom" else "unknown", "csv", added, total)
    _add_balances(rng, integ, 1, 3)
    return integ


_BUILDERS = {"chain": _chain, "ledger": _ledger, "exchange": _exchange, "csv": _csv}


def make_integration(rng: random.Random, shape: str, kind: str, created_at: float, now: float,
                     first_of_full: bool = False) -> IntegrationState:
    """One integration of `shape` (chain, ledger, exchange, csv), added within a day of
    `created_at`, with a seeded sync status."""
    window = max(0.0, min(86400.0, now - created_at - 7200))
    added = int((created_at + rng.uniform(0, 1) * window) * 1000)
    wallet_id = "wallet_" + hex_id(rng, 8)
    total = rng.randint(3, 4000)
    integ = _BUILDERS[shape](rng, (wallet_id, added, total), first_of_full)
    _status(rng, kind, integ, now)
    return integ


def _apply_specials(integrations: list[IntegrationState], specials: frozenset[str],
                    now: float) -> None:
    """The seeded special cases (see sandbox/README.md) on a user's integrations."""
    if "xss" in specials:
        first = integrations[0]
        first.alias = XSS_ALIAS
        first.status = "FAILED"
        first.message = XSS_MESSAGE
        first.last_sync_log = {"Balances": "COMPLETED", "Transactions": "FAILED"}
        first.limit_exceeded = False
        first.last_synced_ms = int((now - 7200) * 1000)
    csvs = [i for i in integrations if i.type == "csv"]
    if "csv_missing" in specials:
        csvs[0].csv_has_source = False
        csvs[0].alias = "Old CSV import (original file missing)"
    if "csv_unsupported" in specials:
        csvs[0].csv_resync_unsupported = True
        csvs[0].alias = "CSV import (resync unsupported)"
    if "limit_exceeded" in specials:
        _partially_synced(integrations[-1], int((now - 3600) * 1000))
        integrations[-1].alias = "Capped wallet"
    if "sync_disabled" in specials:
        integrations[-1].sync_disabled = True
        integrations[-1].alias = "Sync disabled wallet"


def _cost_ratios(rng: random.Random) -> dict[str, float]:
    cost_ratio = {token: round(rng.uniform(0.55, 1.3), 4) for token in ALL_ASSETS}
    for nft in NFTS:
        if rng.random() < 0.3:
            cost_ratio[nft.token_id] = 0.0  # cost basis unknown
    return cost_ratio


def _guest_limits(rng: random.Random, user: UserState, specials: frozenset[str]) -> None:
    r = rng.random()
    if "override_limit" in specials:
        user.limit_override = 250
    elif "limiter_off" in specials:
        user.limiter_override = False
    elif r < 0.1:
        user.limit_override = rng.choice((500, 2500, 10000, 50000))


def make_user(
    rng: random.Random,
    user_id: str,
    kind: str,
    created_at: float,
    now: float,
    specials: frozenset[str] = frozenset(),
    full: bool = False,
    name: str | None = None,
    email: str | None = None,
) -> UserState:
    """Generate one user's details. `full`: wallets, an exchange and a CSV import."""
    name, email = _identity(rng, kind, name, email)
    integrations: list[IntegrationState] = []
    for shape in _shapes(rng, full, specials):
        first_of_full = full and not integrations
        integrations.append(make_integration(rng, shape, kind, created_at, now, first_of_full))
    _apply_specials(integrations, specials, now)
    cost_ratio = _cost_ratios(rng)
    user = UserState(user_id, kind, name, email, rng.choice(("en", "en", "fr", "de", "es")),
                     integrations, cost_ratio)
    if kind == "guest":
        _guest_limits(rng, user, specials)
    return user


@dataclass
class SeedWorld:
    seed: int
    workspaces: dict[str, Workspace]
    grants: list[GrantRecord]
    specials: dict[str, str]  # special name -> grant id


def build_world(seed: int, grants: int) -> SeedWorld:
    """Build workspaces and the eager grant list of both clients."""
    rng = random.Random(f"{seed}:grants")
    n_ws = max(3, min(10, grants // 6 + 1))
    workspaces: dict[str, Workspace] = {}
    for i in range(n_ws):
        wid = "ws_" + hex_id(rng, 8)
        workspaces[wid] = Workspace(wid, WORKSPACE_NAMES[i % len(WORKSPACE_NAMES)],
                                    WORKSPACE_DEFAULTS[i % len(WORKSPACE_DEFAULTS)])
    ws_ids = list(workspaces)
    main_ws = ws_ids[:-1]  # the last workspace belongs to the other client
    records: list[GrantRecord] = []
    kinds = ["guest" if rng.random() < 0.6 else "linked" for _ in range(grants)]
    guest_idx = [i for i, k in enumerate(kinds) if k == "guest"]
    linked_idx = [i for i, k in enumerate(kinds) if k == "linked"]
    special_of: dict[int, set[str]] = {}
    guest_specials = ("xss", "csv_missing", "limit_exceeded", "sync_disabled", "csv_unsupported",
                      "integrations_only", "override_limit", "limiter_off")
    for name, idx in zip(guest_specials, guest_idx, strict=False):
        special_of.setdefault(idx, set()).add(name)
    for name, idx in zip(("no_integrations_scope",), linked_idx, strict=False):
        special_of.setdefault(idx, set()).add(name)
    step = SEED_SPAN / max(grants, 1)
    for i, kind in enumerate(kinds):
        user_id = "anon_" + hex_id(rng, 12) if kind == "guest" else uuid_from(rng)
        specials = frozenset(special_of.get(i, ()))
        scopes = DEFAULT_SCOPES
        if "integrations_only" in specials:
            scopes = REDUCED_SCOPES_INTEGRATIONS_ONLY
        elif "no_integrations_scope" in specials:
            scopes = REDUCED_SCOPES_NO_INTEGRATIONS
        ref = f"cust-{i + 1:04d}" if rng.random() < 0.7 else f"customer{i + 1}@example.org"
        records.append(GrantRecord(
            grant_id="cgrant_" + hex_id(rng, 12),
            client_id=MAIN_CLIENT,
            user_id=user_id,
            kind=kind,
            workspace_id=rng.choice(main_ws),
            scopes=scopes,
            created_at=SEED_START + i * step + rng.uniform(0, step),
            access_token="cat_" + hex_id(rng, 16),
            customer_ref=ref,
            detail_key=f"{seed}:{MAIN_CLIENT}:{i}",
            specials=specials,
        ))
    plain = [i for i in range(grants) if i not in special_of]
    n_revoked = max(1, round(grants * 0.1)) if grants >= 5 else 0
    revoked = rng.sample(plain, min(n_revoked, len(plain)))
    for i in revoked:
        rec = records[i]
        rec.revoked = True
        rec.revoked_at = rec.created_at + rng.uniform(86400, 30 * 86400)
    revoked_set = set(revoked)
    keep = [i for i in plain if i not in revoked_set]
    for i in rng.sample(keep, min(3, max(len(keep) - 1, 0))):
        records[i].exported = False

    orng = random.Random(f"{seed}:{OTHER_CLIENT}")
    for j in range(OTHER_CLIENT_GRANTS):
        kind = "guest" if j % 2 == 0 else "linked"
        records.append(GrantRecord(
            grant_id="cgrant_" + hex_id(orng, 12),
            client_id=OTHER_CLIENT,
            user_id="anon_" + hex_id(orng, 12) if kind == "guest" else uuid_from(orng),
            kind=kind,
            workspace_id=ws_ids[-1],
            scopes=DEFAULT_SCOPES,
            created_at=SEED_START + j * 86400.0,
            access_token="cat_" + hex_id(orng, 16),
            customer_ref=f"other-{j + 1:03d}",
            detail_key=f"{seed}:{OTHER_CLIENT}:{j}",
        ))
    specials_map = {name: records[i].grant_id for i, names in special_of.items() for name in names}
    return SeedWorld(seed, workspaces, records, specials_map)
