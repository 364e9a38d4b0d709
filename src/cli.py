"""``python -m src.cli {fit,validate,test,predict} --config configs/<experiment>.yaml``.

Defaults shared by every experiment live in ``configs/base.yaml``, loaded before any
``--config``; an experiment file says only what differs. Each run writes to
``runs/<config name>/version_N``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from pydoc import locate
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.callbacks.progress import ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_only
from tqdm.contrib.logging import logging_redirect_tqdm

from src.allocator import keep_freed_memory
from src.arguments import ConciseArgumentParser
from src.callbacks.divergence import has_diverged
from src.callbacks.run_config import SaveRunConfig
from src.callbacks.run_results import RunResults
from src.checkpoint_files import SafeCheckpointIO, best_checkpoint
from src.cli_arguments import add_run_arguments
from src.data.cifar10 import CIFAR10DataModule
from src.errors import UserInputError, exit_on_user_error
from src.fast import FastChoice, apply_fast
from src.module import CifarClassifier
from src.paths import BASE_CONFIG, CONFIG_DIR
from src.preflight import check_run, lightning_config_errors
from src.results import RunRecord
from src.run_dir import latest_version, owned_run_dir, release_all
from src.run_exits import ctrl_c_twice, exits_resumably, failed_writes
from src.run_messages import log_partial_evaluation, log_run_result, log_run_start, quiet_lightning
from src.run_settings import experiment_settings
from src.stages import fit_new_stage

SUBCOMMANDS = ("fit", "validate", "test", "predict")
class HparamLabCLI(LightningCLI):
    """LightningCLI with the project's parser, defaults and trainer set-up. One fit's story is
    :meth:`fit`; the run directory it writes is owned by :func:`src.run_dir.owned_run_dir` from its
    claim, as the classes are built, to the command's end."""

    def __init__(self, args: list[str] | None = None, run: bool = True, resolve_only: bool = False) -> None:
        self.given_args = sys.argv[1:] if args is None else args  # for the command that resumes the run
        self.resolve_only = resolve_only
        _check_defaults_exist()
        quiet_lightning("WARNING")  # until the arguments say otherwise
        # base.yaml belongs to each subcommand's parser, or to the only one without subcommands; resolving
        # a config raises its mistakes instead of printing them
        defaults = {"default_config_files": [str(BASE_CONFIG)], "exit_on_error": not resolve_only}
        self._run_dir_owner = ExitStack()
        with self._run_dir_owner:
            super().__init__(
                CifarClassifier,
                CIFAR10DataModule,
                parser_kwargs={
                    "prog": "python -m src.cli", "exit_on_error": not resolve_only,
                    **({cmd: defaults for cmd in SUBCOMMANDS} if run else defaults),
                },
                parser_class=ConciseArgumentParser,
                save_config_callback=SaveRunConfig,
                auto_configure_optimizers=False,
                args=args,
                run=run,
            )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_run_arguments(parser)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, reading checkpoints through :func:`src.checkpoint_files.load_checkpoint`."""
        with lightning_config_errors():
            trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a plugin the user chose
            trainer.strategy.checkpoint_io = SafeCheckpointIO()
        return trainer

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if self.resolve_only:
            raise ConfigResolved(yaml.safe_load(parser.dump(self.config, skip_unset=False))[subcommand])
        config = self.config[subcommand] if subcommand else self.config
        quiet_lightning(config.log_level)
        self.fast = apply_fast(config)  # before the checks, which then see the precision it chose
        check_run(subcommand, config)  # before LightningCLI reads the --ckpt_path file's hyperparameters
        # as given: LightningCLI then replaces the model's settings by those of a --ckpt_path file
        self.given_settings = experiment_settings(config)

    def before_instantiate_classes(self) -> None:
        """Names the run; a fit claims its run directory here, before any class can write to it."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        _drop_disabled_callbacks(config.trainer)
        logger = config.trainer.logger
        if logger and not isinstance(logger, bool) and logger.init_args.get("name") is None:
            logger.init_args.name = config.run_name or _config_name(config)
        if self.subcommand != "fit":
            return
        if config.ckpt_path and config.new_stage_from:
            raise UserInputError(
                "Give either --ckpt_path (resume exactly where a run stopped) or --new_stage_from "
                "(start a new stage from a checkpoint's weights), not both."
            )
        if config.ckpt_path == "last" and logger and logger.init_args.get("version") is None:
            logger.init_args.version = latest_version(Path(logger.init_args.save_dir) / logger.init_args.name)
        if logger and rank_zero_only.rank == 0:  # the other DDP ranks write nothing of their own
            run_dir = self._run_dir_owner.enter_context(owned_run_dir(
                Path(logger.init_args.save_dir) / logger.init_args.name, logger.init_args.get("version"),
                config.ckpt_path, self.given_settings,
            )).run_dir
            logger.init_args.version = run_dir.name

    def fit(self, **kwargs: Any) -> None:
        """One run, top to bottom: its data and what runs, training (or a new lr stage), the test of
        its best checkpoint, its result."""
        keep_freed_memory()  # every step reuses the last one's memory instead of faulting in fresh pages
        self._load_data()
        with failed_writes(self.trainer, self.given_args), ctrl_c_twice(self.trainer):
            self._train(**kwargs)
            record = self._record()
            if self.config.fit.test_after_fit and not self.trainer.interrupted and not has_diverged(self.trainer):
                best = best_checkpoint(record.run_dir, record) if record and record.run_dir else None
                # the result is printed below, in one line with the run's other numbers
                self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=str(best) if best else None,
                                  verbose=False)
        if record and self.trainer.is_global_zero:
            log_run_result(record)

    def _load_data(self) -> None:
        load_data(self.datamodule, self.trainer, self.subcommand, self.config[self.subcommand], self.fast)

    before_validate = before_test = _load_data

    def _train(self, **kwargs: Any) -> None:
        """``Trainer.fit``, begun as a new stage when ``--new_stage_from`` names a checkpoint."""
        stage_from = self.config.fit.new_stage_from
        if stage_from:
            fit_new_stage(self.trainer, stage_from, self.config.fit.keep_optimizer_state, **kwargs)
        else:
            self.trainer.fit(**kwargs)

    def _record(self) -> RunRecord | None:
        return next((cb.record for cb in self.trainer.callbacks if isinstance(cb, RunResults)), None)

    def before_predict(self) -> None:
        raise UserInputError(
            "`python -m src.cli predict` has no images to classify: the data module serves only CIFAR-10's "
            "own splits. Use `python -m src.predict RUN_DIR_OR_MODEL IMAGES...` (folders or image files); "
            "it writes a CSV of file, class and probabilities."
        )


def load_data(datamodule: CIFAR10DataModule, trainer: Trainer, subcommand: str, config: Namespace,
              fast: FastChoice | None) -> None:
    """Bad data (a damaged archive, a hold-out that leaves too little to train on) and a
    ``--trainer.limit_*_batches`` fraction of less than one batch fail here, before anything is
    written into the run directory; then the run says what runs."""
    datamodule.prepare_data()
    datamodule.setup(subcommand)
    if subcommand == "fit":
        splits = ("val", "test") if config.test_after_fit else ("val",)
    else:
        splits = ("val",) if subcommand == "validate" else ("test",)
    with lightning_config_errors():
        evaluated = {split: datamodule.evaluated_images(split, trainer) for split in splits}
    if rank_zero_only.rank == 0:
        if subcommand == "fit":
            config_files = [config.get("__default_config__"), *(config.get("config") or [])]
            log_run_start([f for f in config_files if f], config.seed_everything, datamodule, trainer, fast)
        log_partial_evaluation(datamodule, trainer, evaluated)
    for callback in trainer.callbacks:
        if isinstance(callback, RunResults):
            callback.fast = fast.record() if fast else None


class ConfigResolved(Exception):
    """Ends a parse that only resolves a config (:func:`resolve_fit_config`), before any class is built."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__("resolved")
        self.config = config


def resolve_fit_config(args: Sequence[str]) -> dict[str, Any]:
    """The config ``python -m src.cli fit ARGS`` is given, as the plain values its ``config.yaml``
    keeps (before ``--fast`` chooses for the machine it runs on); a mistake the parser finds raises
    :class:`UserInputError`. Nothing is built, loaded or written: a sweep and a search resolve every
    run so before any starts, and check it with :func:`src.preflight.check_resolved_run`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's warning about args given beside sys.argv
        try:
            HparamLabCLI(["fit", *args], resolve_only=True)
        except ConfigResolved as resolved:
            return resolved.config
        except ArgumentError as err:
            raise UserInputError(f"{' '.join(str(err).split())} (see python -m src.cli fit --help).") from None
    raise AssertionError("a resolve-only parse ends in ConfigResolved or an error")


def _check_defaults_exist() -> None:
    if not BASE_CONFIG.is_file():  # jsonargparse would skip it silently: every run would lose its defaults
        raise UserInputError(
            f"The shared defaults {BASE_CONFIG} are missing, so this hparam-lab installation is incomplete "
            f"(looked in {CONFIG_DIR} and in the package's configs/). Reinstall it with `pip install .` from "
            "a checkout, which ships configs/ inside the package, or run from the checkout itself."
        )


def _config_name(config: Namespace) -> str:
    """A run's default name: its last ``--config`` file's."""
    config_files = config.get("config") or []
    return Path(str(config_files[-1])).stem if config_files else "default"


def _drop_disabled_callbacks(trainer: Namespace) -> None:
    """Let ``--trainer.enable_progress_bar false`` (and the model summary's flag) switch off
    the progress bar and summary that base.yaml configures, instead of clashing with them."""
    disabled = tuple(
        kind for kind, flag in ((ProgressBar, "enable_progress_bar"), (ModelSummary, "enable_model_summary"))
        if trainer.get(flag) is False
    )
    if disabled and trainer.callbacks:
        trainer.callbacks = [c for c in trainer.callbacks if not issubclass(locate(c.class_path), disabled)]


def main(args: list[str] | None = None) -> None:
    project_log = logging.getLogger("src")
    project_log.setLevel(logging.INFO)
    try:
        # the project's messages to stderr as it is now, above any progress bar
        with exits_resumably(sys.argv[1:] if args is None else args), exit_on_user_error(), \
                logging_redirect_tqdm([project_log]):
            HparamLabCLI(args=args)
    finally:
        release_all()


if __name__ == "__main__":
    main()
