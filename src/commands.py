"""What every ``python -m src.<tool>`` command line shares."""

from __future__ import annotations

import argparse


def command_parser(tool: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m src.<tool>``: flags must be written in full, as everywhere in the
    project (an abbreviation would silently mean whichever flag it happens to prefix)."""
    return argparse.ArgumentParser(prog=f"python -m src.{tool}", description=description, allow_abbrev=False)
