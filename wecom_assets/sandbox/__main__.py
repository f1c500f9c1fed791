"""Command line: ``python -m wecom_assets.sandbox generate|serve|stats``.

``serve`` is meant to be started by scripts and tests: it announces its URL on stdout and, with
``--port-file``, writes it to a file only once the socket is bound (atomically, so a reader
polling for the file never sees it half-written), and it exits cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from wecom_assets.sandbox.config import FaultConfig, SandboxConfig
from wecom_assets.sandbox.org import generate_org, load_org, save_org
from wecom_assets.sandbox.process import SandboxControl
from wecom_assets.sandbox.server import SandboxServer


def _department_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``generate``, ``serve`` and ``stats``."""
    parser = argparse.ArgumentParser(
        prog="python -m wecom_assets.sandbox",
        description="Local simulator of the WeCom (企业微信) contact API, for demos and tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate",
        help="write a generated org to a JSON file",
        description="Write a deterministic, realistic org (same seed, same org) to a JSON file.",
    )
    generate.add_argument("--users", type=int, default=3000, help="number of users (3000)")
    generate.add_argument(
        "--departments", type=int, default=300, help="number of departments incl. the top (300)"
    )
    generate.add_argument("--seed", type=int, default=0, help="random seed (0)")
    generate.add_argument("--max-depth", type=int, default=8, help="levels of the tree (8)")
    generate.add_argument("--corp-id", help="corp id to use instead of the generated one")
    generate.add_argument("--corp-secret", help="secret to use instead of the generated one")
    generate.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="org JSON file to write"
    )

    serve = commands.add_parser(
        "serve",
        help="serve the contact API from an org file",
        description=(
            "Serve the WeCom contact API under /cgi-bin/ from an org file until SIGTERM or "
            "SIGINT. The corp id and secret are those in the org file. Control endpoints: "
            "GET /sandbox/stats, POST /sandbox/reset, POST /sandbox/config, POST /sandbox/org, "
            "GET /sandbox/webhook (messages the group robots delivered)."
        ),
        epilog=(
            "example: python -m wecom_assets.sandbox serve --org org.json --port-file url.txt "
            "--latency-ms 20 --busy-rate 0.03 --invalidate-every 120"
        ),
    )
    serve.add_argument(
        "--org", type=Path, required=True, metavar="FILE", help="org JSON file (see generate)"
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface (127.0.0.1); others warn: the sandbox has no authentication",
    )
    serve.add_argument(
        "--port", type=int, default=0, metavar="N", help="port; 0 picks a free one (0)"
    )
    serve.add_argument(
        "--port-file",
        type=Path,
        metavar="FILE",
        help="write the URL here once listening (atomically)",
    )
    behaviour = serve.add_argument_group("API behaviour")
    behaviour.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="delay per API answer"
    )
    behaviour.add_argument(
        "--rate-limit-per-minute",
        type=int,
        metavar="N",
        help="calls per API path per window (errcode 45009)",
    )
    behaviour.add_argument(
        "--rate-limit-window",
        type=float,
        default=60.0,
        metavar="S",
        help="minute window in seconds (60)",
    )
    behaviour.add_argument(
        "--rate-limit-per-hour",
        type=int,
        metavar="N",
        help="calls per API path per hour window (WeCom: 150000; errcode 45009)",
    )
    behaviour.add_argument(
        "--rate-limit-hour-window",
        type=float,
        default=3600.0,
        metavar="S",
        help="hour window in seconds (3600)",
    )
    behaviour.add_argument(
        "--ip-rate-limit-per-minute",
        type=int,
        metavar="N",
        help="calls per client IP per minute window, all paths (WeCom: 20000; errcode 45009)",
    )
    behaviour.add_argument(
        "--ip-rate-limit-per-hour",
        type=int,
        metavar="N",
        help="calls per client IP per hour window, all paths (WeCom: 600000; errcode 45009)",
    )
    behaviour.add_argument(
        "--rate-limit-blocks",
        action="store_true",
        help="going over a limit blocks the API or IP for the whole window, as WeCom does",
    )
    behaviour.add_argument(
        "--new-app",
        action="store_true",
        help=(
            "answer as to an app created after 2022-06-20: no avatar, mobile, email, biz_mail, "
            'qr_code or address, gender "0"'
        ),
    )
    behaviour.add_argument(
        "--tags-forbidden",
        action="store_true",
        help="answer as to an app without access to tags: tag/list and tag/get say 48002",
    )
    behaviour.add_argument(
        "--token-ttl", type=int, default=7200, metavar="S", help="token life, s (7200)"
    )
    behaviour.add_argument(
        "--invalidate-every",
        type=int,
        metavar="N",
        help="invalidate the token after N API calls (40014)",
    )
    behaviour.add_argument(
        "--visible",
        type=_department_ids,
        metavar="IDS",
        help="visible range: comma-separated root department ids, e.g. 2,5 (whole org)",
    )
    robots = serve.add_argument_group("group robots (webhook/send)")
    robots.add_argument(
        "--webhook-key",
        action="append",
        default=[],
        metavar="KEY",
        help="key of a group robot that exists (repeatable); other keys get errcode 93000",
    )
    robots.add_argument(
        "--webhook-limit-per-minute",
        type=int,
        default=20,
        metavar="N",
        help="messages per robot per minute (20, as WeCom); beyond: errcode 45009",
    )
    faults = serve.add_argument_group("injected faults (probability per API call)")
    faults.add_argument(
        "--busy-rate", type=float, default=0.0, metavar="P", help='errcode -1 "system busy"'
    )
    faults.add_argument(
        "--http-5xx-rate", type=float, default=0.0, metavar="P", help="HTTP 502/503 page"
    )
    faults.add_argument(
        "--drop-rate", type=float, default=0.0, metavar="P", help="close without answering"
    )
    faults.add_argument(
        "--truncate-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="send half the body, then close",
    )
    faults.add_argument(
        "--bad-json-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="complete answer with cut-off JSON",
    )
    faults.add_argument(
        "--fail-after", type=int, metavar="N", help="HTTP 503 for every call after N calls"
    )
    faults.add_argument(
        "--gettoken-faults", action="store_true", help="inject faults into gettoken too"
    )
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault generator (0)")

    stats = commands.add_parser(
        "stats",
        help="print a running sandbox's call counts as JSON",
        description="Print the call counts of a running sandbox as JSON.",
    )
    stats.add_argument("--url", required=True, help="sandbox URL, e.g. http://127.0.0.1:43123")
    stats.add_argument("--reset", action="store_true", help="zero the counts after printing")
    return parser


def _generate(args: argparse.Namespace) -> int:
    org = generate_org(
        users=args.users,
        departments=args.departments,
        seed=args.seed,
        max_depth=args.max_depth,
        corp_id=args.corp_id,
        corp_secret=args.corp_secret,
    )
    save_org(org, args.out)
    print(f"wrote {args.out}: {len(org['departments'])} departments, {len(org['users'])} users")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def serve_config(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox settings that ``serve``'s options ask for."""
    return SandboxConfig(
        latency_ms=args.latency_ms,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limit_window=args.rate_limit_window,
        rate_limit_per_hour=args.rate_limit_per_hour,
        rate_limit_hour_window=args.rate_limit_hour_window,
        ip_rate_limit_per_minute=args.ip_rate_limit_per_minute,
        ip_rate_limit_per_hour=args.ip_rate_limit_per_hour,
        rate_limit_blocks=args.rate_limit_blocks,
        new_app=args.new_app,
        tags_forbidden=args.tags_forbidden,
        token_ttl=args.token_ttl,
        invalidate_every=args.invalidate_every,
        visible_department_ids=args.visible,
        faults=FaultConfig(
            busy_rate=args.busy_rate,
            http_5xx_rate=args.http_5xx_rate,
            drop_rate=args.drop_rate,
            truncate_rate=args.truncate_rate,
            bad_json_rate=args.bad_json_rate,
            fail_after=args.fail_after,
            gettoken_faults=args.gettoken_faults,
        ),
        seed=args.seed,
        webhook_keys=args.webhook_key,
        webhook_limit_per_minute=args.webhook_limit_per_minute,
    )


def _serve(args: argparse.Namespace) -> int:
    org = load_org(args.org)
    config = serve_config(args)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # The server's warnings (listening beyond loopback) and errors go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = SandboxServer(org, config, host=args.host, port=args.port).start()
    try:
        if args.port_file is not None:
            _write_atomically(args.port_file, server.url)
        print(f"WeCom sandbox listening on {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def _stats(args: argparse.Namespace) -> int:
    control = SandboxControl(args.url.rstrip("/"))
    print(json.dumps(control.stats(), ensure_ascii=False, indent=2))
    if args.reset:
        control.reset()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "serve":
            return _serve(args)
        return _stats(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
