"""The benchmark report's sections: each benchmark rewrites its own and keeps the others'."""

from __future__ import annotations

import pytest

from benchmarks import doc_sections
from benchmarks.postgres import commit_seconds

DOCUMENT = "# Benchmarks\n\nintro\n\n## Many corps\n\nold corps\n\n## Other\n\nother\n"


def test_replacing_a_section_leaves_the_sections_around_it_as_they_were() -> None:
    updated = doc_sections.replace(DOCUMENT, "## Many corps", "## Many corps\n\nnew corps\n")
    assert updated == "# Benchmarks\n\nintro\n\n## Many corps\n\nnew corps\n\n## Other\n\nother\n"


def test_a_section_the_document_lacks_is_appended_at_its_end() -> None:
    updated = doc_sections.replace(DOCUMENT, "## PostgreSQL", "## PostgreSQL\n\nnumbers\n")
    assert updated == DOCUMENT + "\n## PostgreSQL\n\nnumbers\n"


def test_a_rewritten_report_carries_over_the_other_benchmarks_sections() -> None:
    rewritten = doc_sections.carry_over(DOCUMENT, "# Benchmarks\n\nnew intro\n", ("## Many corps",))
    assert rewritten == "# Benchmarks\n\nnew intro\n\n## Many corps\n\nold corps\n"


def test_only_the_commits_logged_within_the_window_are_summed() -> None:
    server_log = "\n".join(
        [
            "2026-12-01 08:00:00.500 UTC [10] LOG:  duration: 100.000 ms  statement: COMMIT",
            "2026-12-01 08:00:01.500 UTC [10] LOG:  duration: 900.000 ms  statement: SELECT 1",
            "2026-12-01 08:00:02.000 UTC [10] LOG:  duration: 250.500 ms  statement: COMMIT",
            "2026-12-01 08:00:09.000 UTC [10] LOG:  duration: 40.000 ms  statement: COMMIT",
        ]
    )
    start = 1_796_112_000.0  # 2026-12-01 08:00:00 UTC
    assert commit_seconds(server_log, start, start + 5) == pytest.approx(0.3505)
