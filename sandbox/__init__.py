"""A stateful, deterministic stand-in for the Kryptos Connect and data APIs (stdlib only)."""

from sandbox.handle import (
    ExportedToken,
    PublicTokenAnswer,
    SandboxClient,
    SandboxControlError,
    SandboxHandle,
    start_sandbox,
)

__all__ = ["ExportedToken", "PublicTokenAnswer", "SandboxClient", "SandboxControlError",
           "SandboxHandle", "start_sandbox"]
