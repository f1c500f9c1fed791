"""Search everything a test left behind for secrets: instance storage, DuckDB files, logs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


def find_leaks(
    roots: Iterable[Path], needles: Mapping[str, str], *, exclude: Iterable[Path] = ()
) -> list[str]:
    """Every file under ``roots`` that contains one of ``needles``, as ``"path: label"`` lines.

    Files are read as bytes, so SQLite databases, DuckDB files and logs are all searched, for the
    raw text and its percent-encoded form (as it would appear in a URL).

    Args:
        roots: Files or directories to search (recursively).
        needles: ``label -> secret text``; labels, not values, appear in the result.
        exclude: Files or directories to skip (a token cache holds a token by design).
    """
    skipped = [path.resolve() for path in exclude]
    patterns: list[tuple[str, bytes]] = []
    for label, value in needles.items():
        if not value:
            continue
        raw = value.encode()
        encoded = "".join(
            ch if ch.isalnum() or ch in "-_.~" else f"%{ord(ch):02X}" for ch in value
        ).encode()
        patterns += [(label, raw)] + ([(label, encoded)] if encoded != raw else [])
    hits: list[str] = []
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            resolved = path.resolve()
            if any(resolved == s or s in resolved.parents for s in skipped):
                continue
            try:
                content = path.read_bytes()
            except OSError:
                continue
            hits += [f"{path}: {label}" for label, pattern in patterns if pattern in content]
    return sorted(set(hits))
