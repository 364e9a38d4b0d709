"""The command line's parser: mistakes reported in one paragraph, flags written in full.

LightningCLI's parser prints a hundred-line usage listing before an error, takes any unique
prefix of a flag (``--trainer.max_epoch`` silently meant ``max_epochs``), and reports a YAML
syntax error in a config file at ``"<unicode string>"``. This one does none of that.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn, TextIO

import yaml
from jsonargparse import Namespace, get_loader, set_loader
from pytorch_lightning.cli import LightningArgumentParser

UNRECOGNIZED = "unrecognized arguments: "


class ConciseArgumentParser(LightningArgumentParser):
    """Reports a bad argument as its error and a pointer to ``--help``, suggesting the flag an
    unknown one may abbreviate; names the file and line of a config file's YAML syntax error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def print_usage(self, file: TextIO | None = None) -> None:
        pass

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if message.startswith(UNRECOGNIZED):
            parser = getattr(ex, "subcommand_parser", None) or self
            unknown = [a.split("=")[0] for a in message.removeprefix(UNRECOGNIZED).split() if a.startswith("--")]
            meant = [m for a in unknown for m in difflib.get_close_matches(a, parser._option_string_actions, n=1)]
            if meant:
                message += f" (flags must be written in full: did you mean {', '.join(meant)}?)"
        super().error(message, ex)

    def parse_path(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Namespace:
        with _reading_config_file(path):
            return super().parse_path(path, *args, **kwargs)

    def get_defaults(self, *args: Any, **kwargs: Any) -> Namespace:
        with _reading_config_file(", ".join(map(str, self.default_config_files))):
            return super().get_defaults(*args, **kwargs)


_config_file: ContextVar[str] = ContextVar("config_file", default="")
_load_yaml = get_loader("yaml")


@contextmanager
def _reading_config_file(path: str | os.PathLike) -> Iterator[None]:
    token = _config_file.set(str(path))
    try:
        yield
    finally:
        _config_file.reset(token)


def _load_yaml_naming_the_file(text: str) -> Any:
    """jsonargparse's YAML loader, whose syntax errors would point at "<unicode string>"."""
    try:
        return _load_yaml(text)
    except yaml.MarkedYAMLError as err:
        if not _config_file.get() or err.problem_mark is None:
            raise
        mark, context = err.problem_mark, err.context_mark
        where = f" ({err.context} at line {context.line + 1}, column {context.column + 1})" if context else ""
        raise yaml.YAMLError(
            f"{_config_file.get()}, line {mark.line + 1}, column {mark.column + 1}: {err.problem}{where}. "
            "Fix the YAML syntax there."
        ) from err


set_loader("yaml", _load_yaml_naming_the_file, (yaml.YAMLError,))
