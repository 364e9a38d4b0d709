"""What every ``python -m src.<tool>`` command line shares."""

from __future__ import annotations

import argparse

from src.compat import option_strings


def command_parser(tool: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m src.<tool>``: flags must be written in full, as everywhere in the
    project (an abbreviation would silently mean whichever flag it happens to prefix)."""
    return argparse.ArgumentParser(prog=f"python -m src.{tool}", description=description, allow_abbrev=False)


def parse_passing_on(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The tool's own arguments, and the rest, which it passes on to every run's ``fit``.

    An abbreviation of one of the tool's own flags (``--seed`` for a sweep's ``--seeds``) is
    refused rather than passed on: each run would refuse it as a flag it does not know, with a
    message that never names the flag that was meant.
    """
    args, rest = parser.parse_known_args(argv)
    rest = [arg for arg in rest if arg != "--"]
    for flag in (arg.split("=")[0] for arg in rest if arg.startswith("--")):
        meant = [option for option in option_strings(parser) if option.startswith(flag) and option != flag]
        if meant:
            parser.error(f"{flag} abbreviates {meant[0]}; write it in full.")
    return args, rest
