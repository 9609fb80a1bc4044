"""Container entry point: fill a node config's ``${NAME}`` placeholders, then run the command.

A node config is a file mounted read-only from ``deploy/``; the secrets it needs (store passwords,
the mask salt) come from the container's environment, as compose passes them. Every argument of
the command that names a ``.toml`` file (``--config FILE`` or ``--config=FILE``) is replaced by a
rendered copy in a private temporary folder (mode 0700, files 0600), and the command is exec'd.
A placeholder whose variable is unset or empty stops the container with its name: a node never
starts on a half-filled config.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["main", "render", "rendered_argv"]

PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def render(text: str, env: Mapping[str, str]) -> str:
    """``text`` with each ``${NAME}`` replaced by ``env[NAME]``; ValueError names what is unset."""
    missing = sorted({n for n in PLACEHOLDER.findall(text) if not env.get(n)})
    if missing:
        raise ValueError(f"unset environment variable(s): {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: env[m.group(1)], text)


def _render_file(path: Path, env: Mapping[str, str], out: Path) -> Path:
    target = out / path.name
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render(path.read_text(encoding="utf-8"), env))
    return target


def rendered_argv(argv: Sequence[str], env: Mapping[str, str], out: Path) -> list[str]:
    """The command with every existing ``.toml`` argument replaced by its rendered copy."""
    args = list(argv)
    for i, arg in enumerate(args):
        prefix, _, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
        if value.endswith(".toml") and Path(value).is_file():
            rendered = _render_file(Path(value), env, out)
            args[i] = f"{prefix}={rendered}" if prefix else str(rendered)
    return args


def main(argv: Sequence[str]) -> int:
    """Render the configs named in ``argv`` and exec it (``matgate serve`` by default)."""
    command = list(argv) or ["matgate", "serve", "--config", "/etc/matgate/node.toml"]
    out = Path(tempfile.mkdtemp(prefix="matgate-config-"))
    try:
        args = rendered_argv(command, os.environ, out)
    except ValueError as exc:
        print(f"matgate-entrypoint: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG
    os.execvp(args[0], args)  # noqa: S606 - the container's own command, replacing this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
