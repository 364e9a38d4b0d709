"""Studies on a real PostgreSQL server, the one ``scripts/local_cluster.sh`` starts: workers in
several processes share a study's trials, a killed worker's trial is run again by another, and a
database that cannot be reached is one clear error, not a hang."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest

from src.search import main
from src.storage import masked

psycopg = pytest.importorskip("psycopg", reason='PostgreSQL\'s driver is not installed: pip install -e ".[postgres]"')

ROOT = Path(__file__).resolve().parent.parent
URL_FILE = Path("/etc/hparam-lab/postgres.url")  # where scripts/local_cluster.sh writes the test database's URL
START = "start one with: sudo scripts/local_cluster.sh"
SPACE = "config: adam\npruner: {n_startup_trials: 10}\nspace:\n  model.optimizer.lr: {low: 1.0e-4, high: 1.0e-3}\n"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the local cluster's database, once a 2-second connect shows its server is up."""
    try:
        url = URL_FILE.read_text().strip()
    except OSError as err:
        pytest.skip(f"no PostgreSQL URL to read ({err}); {START}")
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error as err:
        pytest.skip(f"no PostgreSQL server answers at {masked(url)} ({' '.join(str(err).split())}); {START}")
    return url


@pytest.fixture
def study(postgres_url: str, tmp_path: Path) -> Iterator[dict]:
    """A study of its own on the server, deleted afterwards: its name, space file and directory."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    (tmp_path / "space.yaml").write_text(SPACE)
    yield {"name": name, "space": tmp_path / "space.yaml", "dir": tmp_path / "study"}
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=postgres_url)


def start_worker(study: dict, url: str, n_trials: int, args: list[str], log: Path) -> subprocess.Popen:
    """``python -m src.search`` on the study, as on another machine; its output goes to ``log``."""
    command = [sys.executable, "-m", "src.search", str(study["space"]), f"--n_trials={n_trials}",
               f"--study_name={study['name']}", f"--study_dir={study['dir']}", "--storage=env:STUDY_DB", *args]
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "STUDY_DB": url}, stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)


@contextlib.contextmanager
def cleaned_up(*workers: subprocess.Popen) -> Iterator[None]:
    try:
        yield
    finally:  # whatever happened, nothing keeps training
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)


def wait_for(condition, what: str, workers: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert all(w.poll() is None for w in workers) and time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


def started_trials(log: Path) -> list[int]:
    return [int(n) for n in re.findall(r"^trial (\d+) start", log.read_text(), re.MULTILINE)]


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.slow
def test_two_workers_share_a_study_and_run_no_trial_twice(postgres_url, study, tiny_run_args, tmp_path):
    args = [*tiny_run_args, "--trainer.max_epochs=1"]
    logs = [tmp_path / "worker_a.log", tmp_path / "worker_b.log"]
    workers = [start_worker(study, postgres_url, 2, args, log) for log in logs]
    with cleaned_up(*workers):
        for worker, log in zip(workers, logs):
            assert worker.wait(timeout=900) == 0, log.read_text()

    trials = optuna.load_study(study_name=study["name"], storage=postgres_url).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    started = [started_trials(log) for log in logs]
    assert [len(s) for s in started] == [2, 2] and sorted(started[0] + started[1]) == [0, 1, 2, 3]  # each by one worker
    runs = sorted(path.name for path in study["dir"].iterdir() if path.is_dir())
    assert runs == ["trial_000", "trial_001", "trial_002", "trial_003"]
    assert sorted(t.user_attrs["run_dir"] for t in trials) == [str(study["dir"] / r / "seed_42") for r in runs]
    for run in runs:  # one fit each: the run's log has one command line
        assert (study["dir"] / run / "seed_42" / "train.log").read_text().count("\n$ ") == 1
    assert all(t.value == pytest.approx(results_of(Path(t.user_attrs["run_dir"]))["best_val_acc"]) for t in trials)


@pytest.fixture
def empty_schema(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes schemas of its own on the server, each a new database as far as Optuna can tell, and
    returns URLs that work in them; drops them afterwards."""
    schemas = []

    def make() -> str:
        schemas.append(f"test_{uuid.uuid4().hex[:12]}")
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schemas[-1]}")
        return f"{postgres_url}?options={quote(f'-csearch_path={schemas[-1]}')}"

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


OPEN_EACH_URL = """
import sys
from src.storage import open_storage
print("ready", flush=True)
for url in iter(sys.stdin.readline, ""):
    open_storage(url.strip())
    print("opened", flush=True)
"""


@pytest.mark.slow
def test_workers_that_open_a_new_database_at_the_same_moment_all_open_it(empty_schema):
    # without a lock, Optuna's table creation races: most rounds, some of four workers failed
    workers = [subprocess.Popen([sys.executable, "-c", OPEN_EACH_URL], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
               for _ in range(4)]
    with cleaned_up(*workers):
        assert [w.stdout.readline() for w in workers] == ["ready\n"] * 4, [w.communicate()[1] for w in workers]
        for _ in range(5):
            url = empty_schema()
            for worker in workers:  # all at once: each has imported Optuna and waits for the line
                worker.stdin.write(url + "\n")
                worker.stdin.flush()
            answers = [w.stdout.readline() for w in workers]
            assert answers == ["opened\n"] * 4, [w.communicate()[1] for w, a in zip(workers, answers) if not a]


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_and_run_again_by_a_survivor(postgres_url, study, tiny_run_args, tmp_path):
    # beats every second: a trial without one for 2 s is failed by the next worker to ask
    args = [*tiny_run_args, "--trainer.max_epochs=3", "--heartbeat=1"]
    first_run = study["dir"] / "trial_000" / "seed_42"
    doomed = start_worker(study, postgres_url, 1, args, tmp_path / "doomed.log")
    with cleaned_up(doomed):
        wait_for(first_run.is_dir, "the first worker taking trial 0", [doomed])
        # 3 trials: at least one of its asks comes after trial 0 has gone 2 s without a heartbeat
        survivor = start_worker(study, postgres_url, 3, args, tmp_path / "survivor.log")
        with cleaned_up(survivor):
            wait_for(lambda: started_trials(tmp_path / "survivor.log"), "the survivor's first trial",
                     [doomed, survivor])
            wait_for((first_run / "checkpoints" / "last.ckpt").is_file, "trial 0's first epoch", [doomed, survivor])
            os.kill(doomed.pid, signal.SIGKILL)  # the worker alone: its fit stops at a safe point as it dies
            assert survivor.wait(timeout=900) == 0, (tmp_path / "survivor.log").read_text()

    trials = optuna.load_study(study_name=study["name"], storage=postgres_url).trials
    killed = trials[0]
    assert killed.state == optuna.trial.TrialState.FAIL
    (retried,) = [t for t in trials if t.system_attrs.get("failed_trial") == 0]  # Optuna's retry callback's mark
    assert retried.state == optuna.trial.TrialState.COMPLETE and retried.params == killed.params
    assert retried.user_attrs["run_dir"] == str(first_run)  # the killed trial's run, continued
    results = results_of(first_run)
    assert Path(results["resumed_from"]).name == "last.ckpt" and results["stop_reason"] == "max_epochs"
    assert [h["epoch"] for h in results["history"]] == [1, 2, 3]
    assert retried.value == pytest.approx(results["best_val_acc"])
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials[1:])
    runs = sorted(path.name for path in study["dir"].iterdir() if path.is_dir())
    assert len(runs) == 3 and runs[0] == "trial_000"  # the retry made no run of its own
    assert f"trial {retried.number} start: --model.optimizer.lr={killed.params['model.optimizer.lr']} (resuming from" \
        in (tmp_path / "survivor.log").read_text()


def password_of(url: str) -> str:
    return re.search(r":([^:@/]+)@", url).group(1)


def refused(capsys, monkeypatch, study: dict, url: str) -> str:
    """The error ``python -m src.search`` gives for the database at ``url``: exit 2 and one line,
    the driver's reason in it and the fix at its end."""
    monkeypatch.setenv("STUDY_DB", url)
    with pytest.raises(SystemExit) as exit_info:
        main([str(study["space"]), "--study_name", study["name"], "--study_dir", str(study["dir"]),
              "--storage", "env:STUDY_DB"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.endswith("Give a reachable database URL (sqlite:///path/study.db, "
                         "postgresql://user:password@host/db, …).")
    assert not study["dir"].exists()  # nothing written
    return line


@pytest.mark.parametrize("change, message", [
    (lambda url: re.sub(r":[^:@/]+@", ":not-the-password@", url),
     'password authentication failed for user "hparam_lab"'),
    (lambda url: url.rsplit("/", 1)[0] + "/no_such_database", 'database "no_such_database" does not exist'),
], ids=["wrong password", "wrong database"])
def test_a_wrong_password_or_database_is_one_clear_error(capsys, monkeypatch, postgres_url, study, change, message):
    url = change(postgres_url)
    line = refused(capsys, monkeypatch, study, url)
    assert f"Cannot open study {study['name']!r} at {masked(url)}: " in line
    assert message in line
    assert password_of(url) not in line and password_of(postgres_url) not in line


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes connections and never answers, as a hung server does; after a minute it
    closes them, so that a client without a timeout fails (with another message) instead of hanging."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        closing = threading.Timer(60, server.close)
        closing.start()
        yield server.getsockname()[1]
        closing.cancel()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


@pytest.mark.parametrize("server, message", [
    ("down", "Connection refused"),
    ("silent", "connection timeout expired"),
], ids=["down", "not answering"])
def test_a_server_that_is_down_or_does_not_answer_is_one_clear_error(capsys, monkeypatch, tmp_path, request,
                                                                      server, message):
    port = free_port() if server == "down" else request.getfixturevalue("silent_server")
    url = f"postgresql://hparam_lab:s3cret@127.0.0.1:{port}/hparam_lab"
    (tmp_path / "space.yaml").write_text(SPACE)
    line = refused(capsys, monkeypatch, {"name": "unreachable", "space": tmp_path / "space.yaml",
                                         "dir": tmp_path / "study"}, url)
    assert line.startswith(f"error: Cannot open study 'unreachable' at postgresql://hparam_lab:***@127.0.0.1:{port}/")
    assert message in line and "s3cret" not in line
