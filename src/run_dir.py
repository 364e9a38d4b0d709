"""Run directories: one process owns a run at a time, and a failed start leaves nothing behind.

``runs/<name>/version_N`` is claimed under a lock on ``runs/<name>``, so two fits started at once
get different versions, and the claimed version stays locked while its process lives. The locks
are ``flock`` locks: the system drops them when a process ends, even by ``kill -9``, so none is
ever left stuck. :func:`owned_run_dir` is a fit's one owner of its directory: it claims it,
refuses a resume that would not continue its run or a new run over an old one, and takes back
what a failed start made.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from src.errors import CannotWrite, UserInputError
from src.results import RESULTS_FILE, read_record
from src.run_settings import check_resume

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not guarded there
    fcntl = None

LOCK_FILE = ".lock"


def _open_lock_file(path: Path) -> IO[str]:
    """The lock file ``path``, made with its folders where missing; :class:`CannotWrite` names a
    folder that is read-only, not ours, or full."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+")
    except OSError as err:
        raise CannotWrite(err.filename or path, err) from err


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (waiting for it) while the block runs."""
    with _open_lock_file(path) as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def lock_if_free(path: Path) -> Iterator[bool]:
    """Holds an exclusive lock on ``path`` while the block runs when no other process holds it; yields
    whether it does (always where there is no flock)."""
    with _open_lock_file(path) as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


class RunClaim:
    """Ownership of one run directory, until released or until this process ends.

    ``made`` is the outermost folder the claim created (the run's, or its name's, or the save
    directory), so a start that fails can take back all it made.
    """

    def __init__(self, run_dir: Path, made: Path | None, handle: IO[str]) -> None:
        self.run_dir, self.made, self._handle = run_dir, made, handle

    @property
    def created(self) -> bool:
        return self.made is not None

    def release(self) -> None:
        self._handle.close()
        _held.pop(self.run_dir.resolve(), None)

    def abandon(self) -> None:
        """Releases the run directory, and removes what the claim made when nothing was trained there."""
        self.release()
        if self.made and not any(self.made.rglob("*.ckpt")):
            shutil.rmtree(self.made, ignore_errors=True)


_held: dict[Path, RunClaim] = {}  # this process's claims: a later fit in the same process takes them over


def release_all() -> None:
    """Releases this process's claims (a command's end; the system would at the process's end)."""
    for run_claim in list(_held.values()):
        run_claim.release()


def version_number(run_dir: Path) -> int | None:
    """N of a ``version_N`` folder, the logger's numbering of a config's runs; None for other names."""
    number = run_dir.name.removeprefix("version_")
    return int(number) if number != run_dir.name and number.isdigit() else None


def latest_version(run_dir: Path) -> str:
    """The newest ``version_N`` of a run, where ``--ckpt_path last`` finds its ``last.ckpt``."""
    from src.checkpoint_files import last_checkpoint  # here: torch; a sweep's locks need none

    versions = [p for p in run_dir.glob("version_*") if version_number(p) is not None and last_checkpoint(p)]
    if not versions:
        raise UserInputError(
            f"--ckpt_path last found no run to resume in {run_dir}/version_*/checkpoints/last.ckpt. Check the "
            "config name (or --run_name) and the logger's save_dir, or give the checkpoint's path."
        )
    return max(versions, key=version_number).name


def claim(name_dir: Path, version: int | str | None) -> RunClaim:
    """Claims ``name_dir/version_N`` (the next free N when ``version`` is None) for this process.

    Raises :class:`UserInputError` when another process is running that version.
    """
    missing = [d for d in (name_dir, *name_dir.parents) if not d.exists()]
    with exclusive_lock(name_dir / LOCK_FILE):
        if version is None:
            taken = [version_number(p) for p in name_dir.glob("version_*")]
            version = max((n for n in taken if n is not None), default=-1) + 1
        run_dir = name_dir / (version if isinstance(version, str) else f"version_{version}")
        made = missing[-1] if missing else (None if run_dir.exists() else run_dir)
        if run_dir.resolve() in _held:
            _held[run_dir.resolve()].release()
        handle = _open_lock_file(run_dir / LOCK_FILE)
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise UserInputError(
                    f"{run_dir} is in use by another running fit (it holds {run_dir / LOCK_FILE}). Wait for it "
                    "to end, stop it, or give this run another --run_name."
                ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        except OSError as err:
            handle.close()
            raise CannotWrite(run_dir / LOCK_FILE, err) from err
        _held[run_dir.resolve()] = RunClaim(run_dir, made, handle)
        return _held[run_dir.resolve()]


@contextmanager
def owned_run_dir(name_dir: Path, version: int | str | None, ckpt_path: str | None,
                  given_settings: dict[str, Any]) -> Iterator[RunClaim]:
    """A fit's run directory, claimed (:func:`claim`) for the block: a resume (``ckpt_path``) is
    checked against its checkpoint's settings, a new run must find no run there to overwrite. A
    user's mistake anywhere in the block, or any failure before the run wrote anything of its
    own, takes back what the claim made (a file that could not be written keeps the run: its
    ``results.json`` says why)."""
    from src.checkpoint_files import last_checkpoint, load_checkpoint  # here: torch; a sweep's locks need none

    run_claim = claim(name_dir, version)
    try:
        if ckpt_path:
            checkpoint = last_checkpoint(run_claim.run_dir) if ckpt_path == "last" else Path(ckpt_path)
            if checkpoint and checkpoint.is_file():  # not Lightning's "best", "hpc", …
                check_resume(checkpoint, load_checkpoint(checkpoint), given_settings, run_claim.run_dir)
        elif not run_claim.created:
            _check_nothing_to_overwrite(run_claim.run_dir)
        yield run_claim
    except BaseException as err:
        mistake = isinstance(err, UserInputError) and not isinstance(err, CannotWrite)
        wrote = last_checkpoint(run_claim.run_dir) or (run_claim.run_dir / RESULTS_FILE).is_file()
        if mistake or not wrote:
            run_claim.abandon()
        raise


def _check_nothing_to_overwrite(run_dir: Path) -> None:
    """Refuses a new run in a folder that holds one: it would overwrite that run's last.ckpt and
    results.json, and mix their TensorBoard curves."""
    from src.checkpoint_files import last_checkpoint

    record = read_record(run_dir)
    held = []
    if last_checkpoint(run_dir):
        held.append("a last.ckpt to resume from")
    if record and record.is_complete:
        held.append("a finished run's results.json")
    if held:
        raise UserInputError(
            f"{run_dir} already holds a run ({' and '.join(held)}); a new run there would overwrite it. Resume it "
            "with --ckpt_path last, or start the new run in a folder of its own: another --run_name, or no "
            "--trainer.logger.init_args.version (the next free version_N). To start over, delete the folder first."
        )
