"""A study's database URL: its password is never shown, and it can come from the environment."""

import pytest

from src.errors import UserInputError
from src.storage import masked, storage_url


@pytest.mark.parametrize("url, shown", [
    ("postgresql://user:s3cret@db.example:5432/studies", "postgresql://user:***@db.example:5432/studies"),
    ("postgresql+psycopg2://user:s3%40cret@host/db?sslmode=require", "postgresql+psycopg2://user:***@host/db?sslmode=require"),
    ("postgresql://user@host/db?password=s3cret&sslmode=require", "postgresql://user@host/db?password=***&sslmode=require"),
    ("postgresql//user:s3cret@host/db", "postgresql//user:***@host/db"),  # not a URL SQLAlchemy reads
    ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),  # nothing to hide
], ids=["password", "driver and encoded password", "password argument", "malformed", "sqlite"])
def test_a_password_in_a_storage_url_is_masked(url, shown):
    assert masked(url) == shown


def test_env_reads_the_url_from_the_environment_and_names_a_missing_variable(monkeypatch):
    monkeypatch.setenv("STUDY_DB", "postgresql://user:s3cret@host/db")
    assert storage_url("env:STUDY_DB") == "postgresql://user:s3cret@host/db"
    assert storage_url("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"
    monkeypatch.delenv("STUDY_DB")
    with pytest.raises(UserInputError, match="environment variable 'STUDY_DB', which is not set"):
        storage_url("env:STUDY_DB")
