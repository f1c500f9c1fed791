"""The sandbox as a child process: it listens, answers control calls and stops with the block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from wecom_assets.sandbox.org import generate_org, save_org
from wecom_assets.sandbox.process import serve_in_subprocess


@pytest.fixture
def org_path(tmp_path: Path) -> Path:
    path = tmp_path / "org.json"
    save_org(generate_org(users=20, departments=4, seed=3), path)
    return path


def test_the_child_serves_the_api_and_reports_its_calls(org_path: Path) -> None:
    with serve_in_subprocess(org_path, "--latency-ms", "1") as sandbox:
        answer = requests.get(f"{sandbox.url}/cgi-bin/department/list", timeout=10).json()
        assert answer["errcode"] == 41001
        assert sandbox.stats()["calls"] == {"department/list": 1}
        sandbox.reset()
        assert sandbox.stats()["calls"] == {}


def test_the_child_takes_config_changes_live(org_path: Path) -> None:
    with serve_in_subprocess(org_path) as sandbox:
        assert sandbox.configure(fail_after=0)["faults"]["fail_after"] == 0
        answer = requests.get(f"{sandbox.url}/cgi-bin/department/list", timeout=10)
        assert answer.status_code == 503


def test_the_child_stops_when_the_block_ends(org_path: Path) -> None:
    with serve_in_subprocess(org_path) as sandbox:
        pid = sandbox.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_child_that_cannot_start_says_how_to_see_why(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(RuntimeError, match="exited with code 1"):
        with serve_in_subprocess(broken):
            pass
