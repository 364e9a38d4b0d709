"""Errors a user can act on: a failed write named with its file and cause, however a library wrapped it."""

import errno

import pytest
from pytorch_lightning.loggers import TensorBoardLogger

from src.errors import CannotWrite, UserInputError, write_failure


def test_a_tensorboard_event_that_could_not_be_written_is_named_though_lightning_wraps_it(small_disk):
    logger = TensorBoardLogger(small_disk.path, name="run")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.flush()
    small_disk.fill()
    with pytest.raises(Exception) as raised:  # the writer's thread fails; a later call raises it, wrapped
        for step in range(1, 10_000):
            logger.log_metrics({"loss": 1.0}, step=step)
            logger.experiment.flush()
    failure = write_failure(raised.value, logger.log_dir)
    assert isinstance(failure, CannotWrite)
    assert str(failure).startswith(f"Cannot write {logger.log_dir} (no space left on the device). Free some space")


def test_a_mistake_that_a_read_error_caused_is_not_taken_for_a_failed_write():
    try:
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "shared.ckpt")
        except OSError as err:
            raise UserInputError("shared.ckpt is not a readable checkpoint") from err
    except UserInputError as err:
        assert write_failure(err, ".") is None
