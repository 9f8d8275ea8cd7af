"""The ``aezoo`` command line. Subcommands register with ``@command``; modules under
``aezoo/commands`` are imported at start-up, so a new command is one new file.

Errors that aezoo raises on purpose (``AezooError``) and every ``OSError`` (a full disk, a folder
that cannot be read) print as one line on stderr with exit code 2; aezoo's warnings print as one
line too. ``AEZOO_DEBUG=1`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from typing import Callable

from .errors import AezooError

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help: str, args: Callable | None = None):
    """Register the decorated ``run(args) -> int | None`` as subcommand ``name``; ``args(parser)``
    adds its arguments."""

    def deco(run):
        COMMANDS[name] = (args or (lambda p: None), run, help)
        return run

    return deco


def _discover() -> None:
    from . import commands

    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}")


def make_parser() -> argparse.ArgumentParser:
    _discover()
    parser = argparse.ArgumentParser(prog="aezoo", description="Train, evaluate and use every kind of autoencoder.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(COMMANDS):
        setup, run, help_ = COMMANDS[name]
        p = sub.add_parser(name, help=help_, description=help_)
        setup(p)
        p.set_defaults(_run=run)
    return parser


def _one_line_warnings():
    """aezoo's warnings (data clipped to the training range, an unfinished run) as one line on stderr."""
    from .errors import DataWarning, RunWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (DataWarning, RunWarning)) and not os.environ.get("AEZOO_DEBUG"):
            print(f"aezoo: warning: {message}".replace("\n", " "), file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    return default


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    default_show = _one_line_warnings()
    try:
        return int(args._run(args) or 0)
    except (AezooError, OSError) as e:
        # the error boundary: aezoo's own errors, and every OSError (a full disk, a folder that cannot
        # be read or written, a file where a folder should be), as one line naming the file
        if os.environ.get("AEZOO_DEBUG"):
            raise
        msg = str(e) if isinstance(e, AezooError) else f"{str(e.filename) + ': ' if e.filename is not None else ''}{e.strerror or e}"
        print(f"aezoo: error: {msg}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aezoo: interrupted; resume with --resume", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = default_show


if __name__ == "__main__":
    sys.exit(main())
