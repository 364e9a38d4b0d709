"""A study's database URL (``--storage``): its password is never shown nor written down.

``--storage env:NAME`` reads the URL from the environment variable NAME, so that it stays off
the command line too. Whichever way it is given, the search hands it to its trials' processes
in :data:`STORAGE_VARIABLE`, and their configs say only ``env:HPARAM_LAB_STORAGE``; every
message shows it with the password as ``***``.
"""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from src.errors import UserInputError

ENV_PREFIX = "env:"
STORAGE_VARIABLE = "HPARAM_LAB_STORAGE"  # the trials' processes find the study's URL here


def storage_url(storage: str) -> str:
    """The URL that ``storage`` gives: itself, or for ``env:NAME`` the value of NAME."""
    if not storage.startswith(ENV_PREFIX):
        return storage
    name = storage.removeprefix(ENV_PREFIX)
    url = os.environ.get(name, "").strip()
    if not url:
        raise UserInputError(
            f"--storage {storage} reads the study's database URL from the environment variable {name!r}, which is "
            f"{'empty' if name in os.environ else 'not set'}. Set it first, e.g.  "
            f"export {name or 'HPARAM_LAB_STORAGE'}=postgresql://user:password@host/db"
        )
    return url


def masked(url: str) -> str:
    """``url`` with its password, if any, as ``***``: what a message may show of it."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads: hide what sits where a password would
        shown = re.sub(r":[^:/@]*@", ":***@", url)
    return re.sub(r"\b(password|passwd|pwd)=[^&]*", r"\1=***", shown, flags=re.IGNORECASE)  # a driver's query argument
