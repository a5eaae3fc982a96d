"""Command dispatch that imports only the module of the command being run.

A resize job runs once per video: it must not pay for importing pandas, matplotlib
or torch that other commands need.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence

# command -> (module, help): the module's `build_parser(parser)` and `run(namespace)`;
# (module, help, entry): the module's `entry(argv)`, for a whole stage with commands of its own;
# (module, help, builder, runner): named ones, where a module holds several commands.
Commands = Mapping[str, tuple[str, ...]]


def dispatch(prog: str, description: str | None, commands: Commands, argv: Sequence[str] | None = None) -> None:
    """Parse `COMMAND ARGS...`, import COMMAND's module and run it on ARGS as `prog COMMAND`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<16} {spec[1]}" for name, spec in commands.items()),
    )
    parser.add_argument("command", choices=list(commands), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parsed = parser.parse_args(argv)
    spec = commands[parsed.command]
    module = importlib.import_module(spec[0])
    if len(spec) == 3:
        getattr(module, spec[2])(parsed.args)
        return
    build, run = spec[2:] if len(spec) == 4 else ("build_parser", "run")
    command = argparse.ArgumentParser(prog=f"{prog} {parsed.command}", description=module.__doc__)
    getattr(module, run)(getattr(module, build)(command).parse_args(parsed.args))
