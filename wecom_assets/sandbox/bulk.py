"""Building large orgs and indexes fast: pause the cyclic garbage collector meanwhile.

Generating or indexing a 100,000-user org creates millions of dicts and lists and no reference
cycles. The collector's repeated full passes over them would otherwise take most of the time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector inside the block (re-enabled only if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
