"""The results file and the docs page every benchmark writes, and the arguments that name them.

Each benchmark measures into a JSON file and renders its part of ``docs/benchmarks.md`` from
that file, so ``--report-only`` can rewrite the page without measuring again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser, results: Path, docs: Path) -> None:
    """``--results``, ``--docs`` and ``--report-only``, with this benchmark's defaults."""
    parser.add_argument("--results", type=Path, default=results, help="JSON results file")
    parser.add_argument("--docs", default=str(docs), help="Markdown report to update ('' to skip)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from the results file, measure nothing",
    )


def read(path: Path) -> dict[str, Any]:
    """The results an earlier measurement wrote."""
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return results


def write(path: Path, results: dict[str, Any]) -> None:
    """Store ``results`` as readable JSON, creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def splice_docs(
    docs: str, splice: Callable[[str, dict[str, Any]], str], results: dict[str, Any]
) -> bool:
    """Replace this benchmark's section of the page ``docs`` ('' writes nothing); True if written."""
    if not docs:
        return False
    page = Path(docs)
    page.write_text(splice(page.read_text(encoding="utf-8"), results), encoding="utf-8")
    return True
