"""Sections of ``docs/benchmarks.md`` that belong to one benchmark each.

``benchmarks.run`` writes the file; ``benchmarks.many_corps`` and ``benchmarks.postgres`` each
own one ``## `` section of it (from its heading to the next ``## `` heading). Each replaces only
its own, and ``benchmarks.run`` carries theirs over, so no benchmark undoes another's numbers.
"""

from __future__ import annotations


def find(document: str, heading: str) -> str | None:
    """The section under ``heading`` (heading line included, up to the next ``## ``), if any."""
    start = document.find(f"\n{heading}\n")
    if start < 0:
        return None
    end = document.find("\n## ", start + 1)
    return document[start + 1 : end if end >= 0 else len(document)]


def replace(document: str, heading: str, section: str) -> str:
    """``document`` with the section under ``heading`` replaced by ``section``, else appended."""
    old = find(document, heading)
    if old is None:
        return document.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    return document.replace(old, section.rstrip("\n") + "\n", 1)


def carry_over(old: str, new: str, headings: tuple[str, ...]) -> str:
    """``new`` with the sections under ``headings`` that ``old`` has, as ``old`` has them."""
    for heading in headings:
        section = find(old, heading)
        if section is not None:
            new = replace(new, heading, section)
    return new
