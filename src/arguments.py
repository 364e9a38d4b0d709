"""The command line's parser: mistakes reported in one paragraph, flags written in full, and
no config that can run code.

LightningCLI's parser prints a hundred-line usage listing before an error, takes any unique
prefix of a flag (``--trainer.max_epoch`` silently meant ``max_epochs``), and reports a YAML
syntax error in a config file at ``"<unicode string>"``. This one does none of that.

jsonargparse lets a field typed ``Callable`` (the optimizer is one) take any function by its
import path, ``os.system`` included, and calls it when the classes are built. This parser
accepts only classes, each a subclass of what its field declares, and checks them as it
parses: before ``--print_config`` prints, before anything is built or called.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import os
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pydoc import locate
from typing import Any, NoReturn, TextIO

import yaml
from jsonargparse import ActionSubCommands, Namespace, get_loader, set_loader
from pytorch_lightning.cli import LightningArgumentParser

from src.compat import CheckEveryParse, option_strings, parser_actions, type_hint

UNRECOGNIZED = "unrecognized arguments: "
FULL_FLAGS = "flags must be written in full"


class ConciseArgumentParser(CheckEveryParse, LightningArgumentParser):
    """Reports a bad argument as its error and a pointer to ``--help``, suggesting the flag an
    unknown one may abbreviate; names the file and line of a config file's YAML syntax error;
    refuses, in every parse, a value that names a function or a class its setting does not take."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def print_usage(self, file: TextIO | None = None) -> None:
        pass

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if message.startswith(UNRECOGNIZED) and FULL_FLAGS not in message:  # a subcommand's, passed up
            parser = getattr(ex, "subcommand_parser", None) or self
            unknown = [a.split("=")[0] for a in message.removeprefix(UNRECOGNIZED).split() if a.startswith("--")]
            meant = [m for a in unknown for m in difflib.get_close_matches(a, option_strings(parser), n=1)]
            if meant:
                message += f" ({FULL_FLAGS}: did you mean {', '.join(meant)}?)"
        super().error(message, ex)

    def parse_path(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Namespace:
        with _reading_config_file(path):
            return super().parse_path(path, *args, **kwargs)

    def get_defaults(self, *args: Any, **kwargs: Any) -> Namespace:
        with _reading_config_file(", ".join(map(str, self.default_config_files))):
            return super().get_defaults(*args, **kwargs)

    def check_values(self, cfg: Namespace) -> None:
        """Refuses a class or function that a value names and its setting does not take."""
        for key, typehint, default, value in _typed_values(self, cfg):
            if value is not default:  # what the code declares is not the config's to answer for
                _check_named_classes(key, typehint, value)


def _typed_values(parser: ConciseArgumentParser, cfg: Namespace) -> Iterator[tuple[str, Any, Any, Any]]:
    """Key, type hint, default and parsed value of each typed argument of ``parser`` and of its
    subcommands."""
    for action in parser_actions(parser):
        if isinstance(action, ActionSubCommands):
            for name, subparser in action.choices.items():
                if isinstance(cfg.get(name), Namespace):
                    yield from _typed_values(subparser, cfg[name])
        elif (typehint := type_hint(action)) is not None:
            yield action.dest, typehint, action.default, cfg.get(action.dest)


def _check_named_classes(key: str, typehint: Any, value: Any) -> None:
    """Refuses a value that names a function, or a class that is not one ``typehint`` accepts."""
    accepted = _accepted_classes(typehint)
    for named in _named(value):
        path = named if isinstance(named, str) else f"{named.__module__}.{named.__qualname__}"
        found = locate(named) if isinstance(named, str) else named
        if inspect.isclass(found) and issubclass(found, accepted):
            continue
        problem = "a class" if inspect.isclass(found) else "a function" if callable(found) else "not a class"
        takes = " or ".join(f"a subclass of {c.__module__}.{c.__qualname__}" for c in accepted) or "no class"
        raise TypeError(
            f"{key}: {path} is {problem}, but {key} takes {takes}. A config or flag may name only the classes "
            "its settings take, so that opening one cannot run code: functions (os.system, subprocess.run, eval) "
            "and any other class are refused before anything is built."
        )


def _accepted_classes(typehint: Any) -> tuple[type, ...]:
    """The classes whose subclasses a type hint accepts: those it names, in unions and containers;
    for a ``Callable``, those it returns. ``Any``, ``object`` and a bare ``Callable`` accept none."""
    args = typing.get_args(typehint)
    if typing.get_origin(typehint) is collections.abc.Callable:
        return _accepted_classes(args[-1]) if args else ()
    if args:
        return tuple(c for arg in args for c in _accepted_classes(arg))
    if not inspect.isclass(typehint) or typehint in (object, type(None), collections.abc.Callable):
        return ()
    return (typehint,)


def _named(value: Any) -> Iterator[str | Any]:
    """What a parsed value names: the class_path of each class given with its init_args (its
    arguments are checked by the parser of that class), and each function or class given by name."""
    if isinstance(value, (Namespace, dict)) and "class_path" in value:
        yield value["class_path"]
    elif isinstance(value, (Namespace, dict)):
        for item in value.values():
            yield from _named(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _named(item)
    elif inspect.isroutine(value) or inspect.isclass(value):
        yield value


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
