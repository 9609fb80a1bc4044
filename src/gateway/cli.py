"""The ``matgate`` command: run a node or the demo, mint tokens, search and pull data.

Client commands read the node's URL and token from ``--url``/``--token`` or from
``MATGATE_URL``/``MATGATE_TOKEN`` (the demo prints both).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``matgate`` console command."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    from gateway.errors import MatgateError

    try:
        return handler(args)
    except MatgateError as exc:
        print(f"matgate: {exc.title}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Start-up and config failures: one line that says what and where, exit status 2.
        message = _startup_failure(exc)
        if message is None or getattr(args, "debug", False):
            raise
        for line in message.splitlines():
            print(f"matgate: {line}", file=sys.stderr)
        return 2


def _startup_failure(exc: Exception) -> str | None:
    """The one-line account of a start-up failure, or None for an error that is not one."""
    import errno

    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.config import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return "\n".join(
            f"setting MATGATE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors()
        )
    if isinstance(exc, SQLAlchemyError):
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"node database: {cause} (check MATGATE_DATABASE_URL or --database-url)"
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE and exc.strerror and "port" in exc.strerror:
            return exc.strerror
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matgate", description="Governed, federated access to materials research data."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a start-up or config error"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run a node", description="Run a node from its config file."
    )
    serve.add_argument("--config", type=Path, required=True, help="the node's TOML config")
    serve.add_argument("--host", default=None, help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    serve.add_argument("--data-dir", type=Path, default=None, help="key and node database folder")
    serve.add_argument("--database-url", default=None, help="SQLAlchemy URL of the node database")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port, the node database and its audit log (default 1;"
        " one per core on a machine serving many small requests)",
    )
    _debug_arg(serve)
    serve.set_defaults(handler=_serve)

    demo = sub.add_parser(
        "demo",
        help="run the demo",
        description="Start demo nodes on embedded stores with real data.",
    )
    demo.add_argument("--data-dir", type=Path, default=Path(".demo"), help="where the demo lives")
    demo.add_argument("--port", type=int, default=8000, help="port of the first node")
    _debug_arg(demo)
    demo.set_defaults(handler=_demo)

    token = sub.add_parser(
        "token",
        help="mint a token",
        description="Mint a token with the node's own development issuer (needs the node's key).",
    )
    token.add_argument("subject", help="user name (the token's sub)")
    token.add_argument("--config", type=Path, required=True, help="the node's TOML config")
    token.add_argument("--data-dir", type=Path, default=None, help="folder of the node's key")
    token.add_argument("--institution", default=None, help="home institution (default: the node's)")
    token.add_argument("--roles", default="", help="comma-separated roles")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    _debug_arg(token)
    token.set_defaults(handler=_token)

    keys = sub.add_parser(
        "keys", help="manage the node's keys", description="Manage the node's own keys."
    )
    keys_sub = keys.add_subparsers(title="key commands", metavar="KEYCOMMAND")
    rotate = keys_sub.add_parser(
        "rotate-mask-secret",
        help="replace the hash-mask secret",
        description="Replace the node's hash-mask secret with a fresh one. Hashes made after "
        "the node restarts no longer match earlier ones; manifests and decisions name the key "
        "id each output was hashed with.",
    )
    rotate.add_argument("--data-dir", type=Path, default=None, help="folder of the node's keys")
    rotate.add_argument("--mask-secret-file", type=Path, default=None, help="the secret's file")
    rotate.set_defaults(handler=_rotate_mask_secret)

    from gateway.cli_client import add_client_commands
    from gateway.cli_verify import add_verify_command

    add_client_commands(sub)
    add_verify_command(sub)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print the completion script of matgate for a shell, e.g. "
        '`eval "$(matgate completion bash)"` in ~/.bashrc, or '
        "`matgate completion zsh > ~/.zfunc/_matgate`.",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell")
    completion.set_defaults(handler=_completion)
    return parser


def _completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(_parser(), shell=args.shell))
    return 0


def _debug_arg(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: when not given here, the value of `matgate --debug COMMAND` stands.
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of a start-up or config error",
    )


def _free_port(host: str, port: int) -> None:
    """Raise OSError(EADDRINUSE) naming the port if another process listens on it."""
    import errno
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(
                errno.EADDRINUSE, f"port {port} on {host} is in use (give --port)"
            ) from exc


def _settings(args: argparse.Namespace) -> Any:
    from gateway.settings import Settings

    overrides: dict[str, Any] = {"config": args.config}
    for key in ("host", "port", "data_dir", "database_url"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app, prepare_workers
    from gateway.memory import settle

    settings = _settings(args)
    _free_port(settings.host, settings.port)  # before the node opens its database
    if args.workers < 1:
        raise SystemExit("matgate: --workers must be at least 1")
    if args.workers == 1:
        app = create_app(settings)
        settle()  # what start-up built stays: later collections need not walk it
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
        return 0
    # Each worker builds its node from the environment (its settings, as given here), on a
    # node database the start-up below has migrated and seeded once.
    os.environ.update(prepare_workers(settings, args.workers))
    uvicorn.run(
        "gateway.app:create_served_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level="info",
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import main as demo_main

    return demo_main(args.data_dir, args.port)


def _token(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.identity import TokenIssuer
    from gateway.keys import NodeKey

    settings = _settings(args)
    config = load_config(args.config)
    key_file = settings.resolved_key_file()
    if not key_file.exists():
        raise SystemExit(
            f"matgate: no node key at {key_file}; start the node once, or give --data-dir"
        )
    url = (
        settings.public_url or config.node.public_url or f"http://{settings.host}:{settings.port}"
    ).rstrip("/")
    issuer = TokenIssuer(NodeKey.load_or_create(key_file), url, url, config.node.institution)
    roles = [r for r in args.roles.split(",") if r]
    print(
        issuer.mint(args.subject, roles=roles, institution=args.institution, ttl_seconds=args.ttl)
    )
    return 0


def _rotate_mask_secret(args: argparse.Namespace) -> int:
    from gateway.keys import MaskSecret
    from gateway.settings import Settings

    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.mask_secret_file is not None:
        overrides["mask_secret_file"] = args.mask_secret_file
    path = Settings(**overrides).resolved_mask_secret_file()
    try:
        old, new = MaskSecret.rotate(path)
    except (OSError, ValueError) as exc:
        print(f"matgate: cannot rotate the mask secret: {exc}", file=sys.stderr)
        return 1
    print(f"mask secret {path}: {old or '(none)'} -> {new.kid}; restart the node to use it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
