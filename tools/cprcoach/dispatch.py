"""Command dispatch that imports only the module of the command being run.

A resize job runs once per video: it must not pay for importing pandas, matplotlib
or torch that other commands need.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence

# command -> (module, help); `entry` names what to call in the module.
Commands = Mapping[str, tuple[str, str]]


def dispatch(
    prog: str, description: str | None, commands: Commands, argv: Sequence[str] | None, entry: Callable
) -> None:
    """Parse `COMMAND ARGS...`, import COMMAND's module and hand ARGS to `entry(module, prog, args)`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<10} {help_text}" for name, (_, help_text) in commands.items()),
    )
    parser.add_argument("command", choices=list(commands), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parsed = parser.parse_args(argv)
    module = importlib.import_module(commands[parsed.command][0])
    entry(module, f"{prog} {parsed.command}", parsed.args)


def run_module_parser(module, prog: str, args: Sequence[str]) -> None:
    """Entry for modules with build_parser(parser) and run(namespace)."""
    parser = module.build_parser(argparse.ArgumentParser(prog=prog, description=module.__doc__))
    module.run(parser.parse_args(args))


def run_module_main(module, prog: str, args: Sequence[str]) -> None:
    """Entry for modules with main(argv) (whole stages with commands of their own)."""
    module.main(args)
