"""`make demo` and `make ui`: the product end to end on a laptop, against the bundled sandbox.

The demo generates an org, serves it with the sandbox and syncs it twice through the real
``dg launch`` CLI into ``data/demo.duckdb``, changing the org in between (joins, leaves, moves,
renames, tags) so the history has something to show; then it prints a few analyst queries and stops the
sandbox. ``--ui`` instead starts the Dagster UI (``dg dev``) wired to the sandbox until
Ctrl-C. Both use a persistent, git-ignored ``.dagster_home`` holding this repository's
``dagster.yaml``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from wecom_assets.dev.dev_ui import DEFAULT_PORT, DevServer, free_port, port_is_free
from wecom_assets.sandbox.evolve import OrgEditor, evolve_org
from wecom_assets.sandbox.org import generate_org, save_org
from wecom_assets.sandbox.process import SandboxProcess, serve_in_subprocess
from wecom_assets.sandbox.tags import evolve_tags

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
DAGSTER_HOME = ROOT / ".dagster_home"
# Not data/wecom.duckdb: the demo starts its file afresh and must never touch a real sync's tables.
DATABASE = DATA / "demo.duckdb"

EXAMPLE_QUERIES: dict[str, str] = {
    "Headcount by status": """
        SELECT CASE status WHEN 1 THEN 'active' WHEN 2 THEN 'disabled'
                           WHEN 4 THEN 'not activated' WHEN 5 THEN 'left' END AS status,
               count(*) AS users
        FROM wecom_users GROUP BY ALL ORDER BY users DESC
    """,
    "Largest departments (direct members)": """
        SELECT d.id, d.name, count(*) AS members
        FROM dept_membership AS m JOIN wecom_departments AS d ON d.id = m.department_id
        GROUP BY ALL ORDER BY members DESC, d.id LIMIT 5
    """,
    "Department leaders": """
        SELECT d.name AS department, u.name AS leader
        FROM dept_membership AS m
        JOIN wecom_users AS u USING (userid)
        JOIN wecom_departments AS d ON d.id = m.department_id
        WHERE m.is_leader ORDER BY d.id, u.userid LIMIT 5
    """,
    "People in more than one department": """
        SELECT count(*) AS users FROM wecom_users WHERE len(departments) > 1
    """,
    "Members per tag (wecom_tags, tag_membership)": """
        SELECT t.tag_id, t.tag_name, count(m.userid) AS members
        FROM wecom_tags AS t
        LEFT JOIN tag_membership AS m ON m.corp_id = t.corp_id AND m.tag_id = t.tag_id
        GROUP BY t.tag_id, t.tag_name ORDER BY t.tag_id
    """,
    "What changed between the two syncs (wecom_org_changes)": """
        SELECT entity, event, count(*) AS events, any_value(entity_id) AS example
        FROM wecom_org_changes GROUP BY ALL ORDER BY entity, event
    """,
}


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)  # noqa: T201 - a CLI talking to its user


def prepare_dagster_home() -> Path:
    """A persistent instance directory with this repository's instance config."""
    DAGSTER_HOME.mkdir(exist_ok=True)
    # Each demo starts a new sandbox, which never issued the tokens cached by the previous one.
    shutil.rmtree(DAGSTER_HOME / ".wecom", ignore_errors=True)
    shutil.copyfile(ROOT / "dagster.yaml", DAGSTER_HOME / "dagster.yaml")
    return DAGSTER_HOME


def sandbox_env(org: dict[str, object], url: str) -> dict[str, str]:
    """Environment pointing the code location at the sandbox and the repo-local instance."""
    return {
        **os.environ,
        "WECOM_CORP_ID": str(org["corp_id"]),
        "WECOM_CORP_SECRET": str(org["corp_secret"]),
        "WECOM_API_BASE_URL": url,
        "WECOM_DUCKDB_PATH": str(DATABASE),
        "DAGSTER_HOME": str(prepare_dagster_home()),
        "VIRTUAL_ENV": sys.prefix,
    }


def dagster_command(*args: str, tool: str = "dagster") -> list[str]:
    """The ``dagster`` (or ``dg``) CLI of this interpreter's environment."""
    return [str(Path(sys.executable).with_name(tool)), *args]


def print_examples(database: Path) -> None:
    """Run the README's example queries against the demo database."""
    with duckdb.connect(str(database), read_only=True) as conn:
        for title, sql in EXAMPLE_QUERIES.items():
            _log(title)
            print(conn.sql(sql), flush=True)  # noqa: T201 - a CLI talking to its user


def main(argv: list[str] | None = None) -> int:
    """Run the demo, or the UI with ``--ui``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ui", action="store_true", help="start the Dagster UI until Ctrl-C")
    parser.add_argument(
        "--port", type=int, help=f"port of the UI ({DEFAULT_PORT}, or a free one if it is taken)"
    )
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--departments", type=int, default=50)
    args = parser.parse_args(argv)
    if not (ROOT / "dagster.yaml").is_file():
        # Installed from a wheel, the package has no project around it to write data/ into.
        parser.error(
            f"the demo runs from a clone of the wecom_assets repository (`make demo`), not from "
            f"an installed package: {ROOT} holds no dagster.yaml"
        )

    DATA.mkdir(exist_ok=True)
    if not args.ui:
        for stale in (DATABASE, DATABASE.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
    org = generate_org(users=args.users, departments=args.departments, seed=7)
    org_path = DATA / "demo_org.json"
    save_org(org, org_path)
    _log(f"generated {args.users} users in {args.departments} departments -> {org_path}")
    with serve_in_subprocess(org_path) as sandbox:
        url = sandbox.url
        env = sandbox_env(org, url)
        _log(f"sandbox at {url}; DAGSTER_HOME={env['DAGSTER_HOME']}")
        if args.ui:
            return run_ui(env, args.port)
        subprocess.run(dagster_command("instance", "migrate"), env=env, check=True)
        sync(env, sandbox, "first sync")
        editor = OrgEditor(org)
        changes = evolve_org(editor, random.Random(7), scale=max(1, args.users // 100))
        changes.update(evolve_tags(editor.data, random.Random(7)))
        sandbox.replace_org(editor.snapshot())
        _log(f"changed the org in the sandbox: {changes}")
        sync(env, sandbox, "second sync")
    print_examples(DATABASE)
    _log(f"done: query {DATABASE} with duckdb, or run `make ui`")
    return 0


def sync(env: dict[str, str], sandbox: SandboxProcess, title: str) -> None:
    """Materialize every asset through ``dg launch`` and report the sandbox's call counts."""
    sandbox.reset()
    started = time.monotonic()
    subprocess.run(dagster_command("launch", "--assets", "*", tool="dg"), env=env, check=True)
    stats = sandbox.stats()
    _log(
        f"{title}: materialized all assets in {time.monotonic() - started:.1f}s; the sandbox "
        f"saw {stats['gettoken']} gettoken call(s) and API calls {stats['calls']}"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_ui(env: dict[str, str], port: int | None = None) -> int:
    """The Dagster UI (``dg dev``) on this workspace until Ctrl-C; the sandbox stops with it.

    The UI listens on ``port``, else on 3000, else (3000 taken) on a free port. Ctrl-C, SIGTERM
    and a closed terminal all stop the webserver, the daemon, their code servers and any run
    in flight, and then the sandbox.
    """
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    server = DevServer(env, Path(env["DAGSTER_HOME"]), port)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        server.start()
        try:
            server.wait_until_ready()
        except RuntimeError as error:
            if server.process is None or server.process.poll() is not None:
                raise
            _log(f"{error}; the UI shows the details")
        _log(f"Dagster UI at {server.url} (DAGSTER_HOME={env['DAGSTER_HOME']}); Ctrl-C stops it")
        return server.wait()
    except KeyboardInterrupt:
        _log("stopping the Dagster UI and the sandbox")
        return 0
    finally:
        try:
            server.stop()
        except KeyboardInterrupt:
            server.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
