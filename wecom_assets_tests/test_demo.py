"""`make demo` outside a clone of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from wecom_assets.dev import demo


def test_the_demo_outside_a_clone_says_where_it_runs_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    monkeypatch.setattr(demo, "DATA", tmp_path / "data")
    with pytest.raises(SystemExit) as exited:
        demo.main([])
    assert exited.value.code == 2
    assert "runs from a clone of the wecom_assets repository" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
