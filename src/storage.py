"""A study's database (``--storage``): its URL, whose password is never shown nor written
down, and the Optuna storage opened on it.

``--storage env:NAME`` reads the URL from the environment variable NAME, so that it stays off
the command line too. Whichever way it is given, the search hands it to its trials' processes
in :data:`STORAGE_VARIABLE`, and their configs say only ``env:HPARAM_LAB_STORAGE``; every
message shows it with the password as ``***``.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from src.errors import UserInputError

ENV_PREFIX = "env:"
STORAGE_VARIABLE = "HPARAM_LAB_STORAGE"  # the trials' processes find the study's URL here
CONNECT_TIMEOUT = 5  # seconds a PostgreSQL server has to answer (libpq's own default: forever)
MAX_RETRY = 3  # times a trial whose worker died is run again
SCHEMA_LOCK = 0x68706172616D  # "hparam": the PostgreSQL advisory lock a worker holds while Optuna sets up its tables


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


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.RDBStorage:
    """Optuna's storage on the database at ``url``.

    A PostgreSQL server gets :data:`CONNECT_TIMEOUT` seconds to answer (unless the URL sets its
    own ``connect_timeout``), so that a wrong host or a hung server is an error, not a hang, and
    workers that open a new one together set up its tables one at a time (:func:`schema_lock`).
    With ``heartbeat`` (seconds), each running trial records that its worker is alive that often;
    a trial that has not for twice as long (Optuna's grace period: its worker was killed, its
    machine lost) is failed by the next worker that asks for a trial and run again, up to
    :data:`MAX_RETRY` times. Only workers that call ``fail_stale_trials`` and keep a heartbeat,
    as :func:`src.search.search` does, take part."""
    parsed = make_url(url)
    postgres = parsed.get_backend_name() == "postgresql"
    engine_kwargs = {}
    if postgres and "connect_timeout" not in parsed.query:
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    with warnings.catch_warnings():  # the heartbeat and its retry callback are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = {}
        if heartbeat:
            # Optuna 4.9 renamed the callback and its argument; 3.2, setup.cfg's floor, has the old names only
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
                retry["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY)
            else:
                retry["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(MAX_RETRY)
        with schema_lock(url, engine_kwargs) if postgres else contextlib.nullcontext():
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat or None,
                                              **retry)


@contextlib.contextmanager
def schema_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    """Hold :data:`SCHEMA_LOCK` on the PostgreSQL server at ``url``, one worker at a time.

    Optuna creates and stamps its tables without a lock, so workers that open a new database at
    the same moment (one search started on several machines, as docs/beyond-one-machine.md shows)
    race, and all but one fail with "duplicate key value violates unique constraint". SQLite
    races the same way but goes without: a SQLite study has one search process, and its trials
    open the study once it exists."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, **engine_kwargs)
    try:
        with engine.connect() as connection:  # a session-level lock: closing the connection releases it
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
            yield
    finally:
        engine.dispose()
