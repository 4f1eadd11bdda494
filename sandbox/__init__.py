"""A stateful, deterministic stand-in for the Kryptos Connect and data APIs (stdlib only)."""

from sandbox.handle import SandboxClient, SandboxControlError, SandboxHandle, start_sandbox

__all__ = ["SandboxClient", "SandboxControlError", "SandboxHandle", "start_sandbox"]
