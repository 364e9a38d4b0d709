"""``python -m src.cli {fit,validate,test,predict} --config configs/<experiment>.yaml``.

Defaults shared by every experiment live in ``configs/base.yaml``, loaded before any
``--config``; an experiment file says only what differs. Each run writes to
``runs/<config name>/version_N``.
"""

from __future__ import annotations

import sys
from typing import TextIO
from pathlib import Path

from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from src.callbacks.divergence import DivergenceGuard
from src.callbacks.run_results import RunResults
from src.callbacks.tensorboard_hparams import TensorBoardHparams
from src.data.cifar10 import CIFAR10DataModule
from src.errors import UserInputError
from src.module import CifarClassifier

BASE_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "base.yaml"
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class ConciseArgumentParser(LightningArgumentParser):
    """Reports a bad argument as its error and a pointer to ``--help``, without the
    hundred-line usage listing that would bury the error."""

    def print_usage(self, file: TextIO | None = None) -> None:
        pass


class HparamLabCLI(LightningCLI):
    """LightningCLI with the project's defaults, run naming and a final test after ``fit``."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            CifarClassifier,
            CIFAR10DataModule,
            trainer_defaults={"callbacks": [RunResults(), DivergenceGuard(), TensorBoardHparams()]},
            parser_kwargs={
                "prog": "python -m src.cli",
                **{cmd: {"default_config_files": [str(BASE_CONFIG)]} for cmd in SUBCOMMANDS},
            },
            parser_class=ConciseArgumentParser,
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="After fit, evaluate the best checkpoint on the test set (the notebook's evaluate).",
        )
        parser.add_argument(
            "--run_name", type=str | None, default=None,
            help="Name of the run directory under the logger's save_dir; default: the last --config's name.",
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        _drop_disabled_callbacks(config.trainer)
        logger = config.trainer.logger
        if logger and not isinstance(logger, bool) and logger.init_args.get("name") is None:
            config_files = config.get("config") or []
            default_name = Path(str(config_files[-1])).stem if config_files else "default"
            logger.init_args.name = config.run_name or default_name

    def after_fit(self) -> None:
        if not self.config.fit.test_after_fit or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        has_best = checkpoint is not None and bool(checkpoint.best_model_path)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if has_best else None)


def _drop_disabled_callbacks(trainer: Namespace) -> None:
    """Let ``--trainer.enable_progress_bar false`` (and the model summary's flag) switch off
    the progress bar and summary that base.yaml configures, instead of clashing with them."""
    disabled = {
        name
        for name, flag in (("TQDMProgressBar", "enable_progress_bar"), ("ModelSummary", "enable_model_summary"))
        if trainer.get(flag) is False
    }
    if disabled and trainer.callbacks:
        trainer.callbacks = [c for c in trainer.callbacks if c.class_path.rsplit(".", 1)[-1] not in disabled]


def main(args: list[str] | None = None) -> None:
    try:
        HparamLabCLI(args=args)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
