"""A local simulator of the WeCom contact API, for the demo, tests and benchmarks.

Production code never falls back to it: it is used only where a base URL points at it.
"""

from wecom_assets.sandbox.config import FaultConfig, SandboxConfig
from wecom_assets.sandbox.org import generate_org, load_org, save_org, visible_view
from wecom_assets.sandbox.server import SandboxServer

__all__ = [
    "FaultConfig",
    "SandboxConfig",
    "SandboxServer",
    "generate_org",
    "load_org",
    "save_org",
    "visible_view",
]
