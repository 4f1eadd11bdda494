"""`Backend`: what the routes share, one per application (`app.state.backend`, handed to the
routes by the `backend.deps.get_backend` dependency)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text

from backend.auth import JwtConfig
from backend.service import CustomerService
from backend.webhook_auth import WebhookVerifier
from backend.webhooks import WebhookHub
from services.kryptos.client import KryptosClient
from services.settings import Settings
from services.store import AuditLog, Database, TokenVault


@dataclass
class Backend:
    """What the routes share (`app.state.backend`)."""

    settings: Settings
    client: KryptosClient
    db: Database
    vault: TokenVault
    audit: AuditLog
    jwt: JwtConfig
    service: CustomerService
    hub: WebhookHub
    #: Checks webhook signatures (backend/webhook_auth.py); None: no secret, all refused.
    webhook_verifier: WebhookVerifier | None = None
    sandbox_url: str | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def demo_on(self) -> bool:
        """The demo customer app is served (BACKEND_DEMO, sandbox mode, a sandbox known)."""
        return bool(self.settings.backend_demo and self.settings.sandbox_mode
                    and self.sandbox_url is not None)

    def problems(self) -> list[str]:
        """What keeps the backend from serving (no secret ever in the text)."""
        out = []
        if not self.jwt.complete:
            out.append("Set BACKEND_JWT_SECRET or BACKEND_JWT_PUBLIC_KEY (customer sign-in).")
        if not self.settings.effective_webhook_secret:
            out.append("Set KRYPTOS_WEBHOOK_SECRET (webhook signatures).")
        try:
            with self.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            out.append(f"The database is not reachable ({type(exc).__name__}).")
        return out

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()
