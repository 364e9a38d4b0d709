"""``python -m src.cli {fit,validate,test,predict} --config configs/<experiment>.yaml``.

Defaults shared by every experiment live in ``configs/base.yaml``, loaded before any
``--config``; an experiment file says only what differs. Each run writes to
``runs/<config name>/version_N``.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from pydoc import locate
from typing import Any

import torch
from jsonargparse import Namespace
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.callbacks.progress import ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException
from tqdm.contrib.logging import logging_redirect_tqdm

from src.arguments import ConciseArgumentParser
from src.callbacks.checkpoints import ResumeCheckpoint, RunCheckpoint, RunInterrupted
from src.callbacks.divergence import DivergenceGuard, has_diverged
from src.callbacks.early_stopping import StagedEarlyStopping
from src.callbacks.run_results import RunResults
from src.callbacks.tensorboard_hparams import TensorBoardHparams
from src.checkpoints import SafeCheckpointIO, best_checkpoint, last_checkpoint, load_checkpoint
from src.compat import set_max_epochs
from src.console import LogLevel, log_partial_evaluation, log_run_result, log_run_start, quiet_lightning
from src.data.cifar10 import CIFAR10DataModule
from src.errors import CannotWrite, UserInputError, exit_on_user_error, write_failure
from src.fast import apply_fast
from src.module import CifarClassifier
from src.paths import BASE_CONFIG, CONFIG_DIR
from src.preflight import check_run, lightning_config_errors
from src.results import read_record, write_atomic
from src.run_dir import SETTINGS_KEY, RunClaim, check_resume, claim, experiment_settings, release_all, version_number
from src.stages import stage_checkpoint

SUBCOMMANDS = ("fit", "validate", "test", "predict")
# The callbacks every run needs (results.json, the HPARAMS tab, and below: the divergence stop and
# last.ckpt for resuming) have config keys of their own, like early_stopping and checkpoint: they
# show in --print_config and config.yaml, and a config's own trainer.callbacks list cannot drop
# them. These two take no arguments and show as their class.
REQUIRED_CALLBACKS = {"run_results": RunResults, "tensorboard_hparams": TensorBoardHparams}


class SaveRunConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml``, written whole or not at all (a resumed run rewrites it, and a
    full disk must not leave it cut off), and the run's settings in every checkpoint: a resume is
    checked against the checkpoint's copy, which an edit of ``config.yaml`` does not change."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.already_saved:
            return
        log_dir = trainer.log_dir  # a collective call: on every rank
        if trainer.is_global_zero and log_dir:
            write_atomic(Path(log_dir) / self.config_filename, self.parser.dump(self.config, skip_unset=False))
        self.already_saved = trainer.strategy.broadcast(True)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[SETTINGS_KEY] = experiment_settings(self.config)


class HparamLabCLI(LightningCLI):
    """LightningCLI with the project's defaults, run naming and a final test after ``fit``."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        self.given_args = sys.argv[1:] if args is None else args  # for the command that resumes the run
        if not BASE_CONFIG.is_file():  # jsonargparse would skip it silently: every run would lose its defaults
            raise UserInputError(
                f"The shared defaults {BASE_CONFIG} are missing, so this hparam-lab installation is incomplete "
                f"(looked in {CONFIG_DIR} and in the package's configs/). Reinstall it with `pip install .` from "
                "a checkout, which ships configs/ inside the package, or run from the checkout itself."
            )
        quiet_lightning("WARNING")  # until the arguments say otherwise
        defaults = {"default_config_files": [str(BASE_CONFIG)]}
        super().__init__(
            CifarClassifier,
            CIFAR10DataModule,
            parser_kwargs={
                "prog": "python -m src.cli",
                # base.yaml belongs to each subcommand's parser, or to the only one without subcommands
                **({cmd: defaults for cmd in SUBCOMMANDS} if run else defaults),
            },
            parser_class=ConciseArgumentParser,
            save_config_callback=SaveRunConfig,
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(StagedEarlyStopping, "early_stopping")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        # last.ckpt after every epoch, and at the next safe point on Ctrl-C/SIGTERM, for --ckpt_path last
        parser.add_lightning_class_args(ResumeCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        for key, callback in REQUIRED_CALLBACKS.items():
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=True)
            parser.set_defaults({key: {"class_path": f"{callback.__module__}.{callback.__qualname__}"}})
        parser.add_argument(
            "--log_level", type=LogLevel, default="WARNING",
            help="Lightning's own messages: WARNING shows only its warnings; INFO adds its tips, accelerator "
            "report and checkpoint restores, and the warnings its own use of torch and other libraries raises.",
        )
        parser.add_argument(
            "--fast", type=bool, default=False,
            help="Everything that trains faster without changing what is trained: bf16-mixed where this machine "
            "computes bf16 natively (float32 on a CPU without avx512_bf16 or amx_bf16; on a GPU bf16-mixed, or "
            "16-mixed without bf16), model.fast_dropout and model.compile_update. A --trainer.precision given "
            "in a config file or here is kept.",
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="After fit, evaluate the best checkpoint on the test set (the notebook's evaluate).",
        )
        parser.add_argument(
            "--run_name", type=str | None, default=None,
            help="Name of the run directory under the logger's save_dir; default: the last --config's name.",
        )
        parser.add_argument(
            "--new_stage_from", type=str | None, default=None,
            help="fit only: start a new stage from this checkpoint's weights with this config's optimizer "
            "and lr (Keras' recompile); epochs and steps continue, max_epochs counts this stage's epochs.",
        )
        parser.add_argument(
            "--keep_optimizer_state", type=bool, default=False,
            help="With --new_stage_from: keep the optimizer's moments and decay counter instead of starting "
            "them afresh; with an unchanged config this continues a finished run for more epochs.",
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, reading checkpoints through :func:`src.checkpoints.load_checkpoint`."""
        with lightning_config_errors():
            trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a plugin the user chose
            trainer.strategy.checkpoint_io = SafeCheckpointIO()
        return trainer

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        quiet_lightning(config.log_level)
        self.fast = apply_fast(config)  # before the checks, which then see the precision it chose
        check_run(subcommand, config)  # before LightningCLI reads the --ckpt_path file's hyperparameters
        # as given: LightningCLI then replaces the model's settings by those of a --ckpt_path file
        self.given_settings = experiment_settings(config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        _drop_disabled_callbacks(config.trainer)
        logger = config.trainer.logger
        if logger and not isinstance(logger, bool) and logger.init_args.get("name") is None:
            config_files = config.get("config") or []
            default_name = Path(str(config_files[-1])).stem if config_files else "default"
            logger.init_args.name = config.run_name or default_name
        if self.subcommand == "fit":
            if config.ckpt_path and config.new_stage_from:
                raise UserInputError(
                    "Give either --ckpt_path (resume exactly where a run stopped) or --new_stage_from "
                    "(start a new stage from a checkpoint's weights), not both."
                )
            if config.ckpt_path == "last" and logger and logger.init_args.get("version") is None:
                logger.init_args.version = _latest_version(Path(logger.init_args.save_dir) / logger.init_args.name)
            if logger and rank_zero_only.rank == 0:  # the other DDP ranks write nothing of their own
                self._claim_run_dir(config)

    def _claim_run_dir(self, config: Namespace) -> None:
        """Owns the run directory before anything is written to it; a resume must match its checkpoint."""
        logger = config.trainer.logger.init_args
        self.run_claim = claim(Path(logger.save_dir) / logger.name, logger.get("version"))
        logger.version = self.run_claim.run_dir.name
        run_dir = self.run_claim.run_dir
        try:
            if config.ckpt_path:
                checkpoint = last_checkpoint(run_dir) if config.ckpt_path == "last" else Path(config.ckpt_path)
                if checkpoint and checkpoint.is_file():  # not Lightning's "best", "hpc", …
                    check_resume(checkpoint, load_checkpoint(checkpoint), self.given_settings, run_dir)
            elif not self.run_claim.created:
                _check_nothing_to_overwrite(run_dir)
        except UserInputError:
            self._abandon_run_dir()
            raise

    def _abandon_run_dir(self) -> None:
        """Releases the run directory, and removes it when this start made it and nothing was trained."""
        run_claim: RunClaim | None = getattr(self, "run_claim", None)
        if run_claim is None:
            return
        run_claim.release()
        if run_claim.made and not any(run_claim.made.rglob("*.ckpt")):
            shutil.rmtree(run_claim.made, ignore_errors=True)
        self.run_claim = None

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except BaseException:
            self._abandon_run_dir()
            raise

    def _load_data(self) -> None:
        """Bad data (a damaged archive, a hold-out that leaves too little to train on) and a
        ``--trainer.limit_*_batches`` fraction of less than one batch fail here, before anything is
        written into the run directory; then the run says what runs."""
        try:
            self.datamodule.prepare_data()
            self.datamodule.setup(self.subcommand)
            with lightning_config_errors():
                evaluated = {split: self.datamodule.evaluated_images(split, self.trainer)
                             for split in self._evaluated_splits()}
        except UserInputError:
            self._abandon_run_dir()
            raise
        if rank_zero_only.rank == 0:
            if self.subcommand == "fit":
                config = self.config.fit
                config_files = [config.get("__default_config__"), *(config.get("config") or [])]
                log_run_start([f for f in config_files if f], config.seed_everything, self.datamodule, self.trainer,
                              self.fast)
            log_partial_evaluation(self.datamodule, self.trainer, evaluated)
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunResults):
                callback.fast = self.fast.record() if self.fast else None

    before_fit = before_validate = before_test = _load_data

    def _evaluated_splits(self) -> tuple[str, ...]:
        if self.subcommand == "fit":
            return ("val", "test") if self.config.fit.test_after_fit else ("val",)
        return ("val",) if self.subcommand == "validate" else ("test",)

    def fit(self, **kwargs: Any) -> None:
        """``Trainer.fit`` in the claimed run directory; a failed start leaves no new directory behind."""
        try:
            with self._failed_writes():
                self._fit(**kwargs)
        except SystemExit as exit_:
            if self.trainer.interrupted:  # Lightning's answer to a second Ctrl-C: sys.exit(1)
                raise RunInterrupted(signal.SIGINT, "at once (Ctrl-C twice); last.ckpt holds the last safe point") from exit_
            raise
        except CannotWrite:  # not a failed start: the run directory stays, its results.json says why
            raise
        except UserInputError:
            self._abandon_run_dir()
            raise

    @contextmanager
    def _failed_writes(self) -> Iterator[None]:
        """A file the run could not write, however a library wrapped the error (Lightning's logger
        raises a ValueError, TensorBoard's writer thread raises it again at the next event), as one
        :class:`CannotWrite` naming the file, or else the run directory, and the resume command."""
        try:
            yield
        except Exception as err:
            logger = self.trainer.logger
            failure = write_failure(err, logger.log_dir if logger and logger.log_dir else self.trainer.default_root_dir)
            if failure is None:
                raise
            run_claim: RunClaim | None = getattr(self, "run_claim", None)
            if run_claim and last_checkpoint(run_claim.run_dir):
                failure = CannotWrite(failure.path, failure.error,
                                      f"then resume the run with: {resume_command(self.given_args)}")
            raise failure from err

    def _fit(self, **kwargs: Any) -> None:
        """Begun as a new stage when ``--new_stage_from`` names a checkpoint."""
        stage_from = self.config.fit.new_stage_from
        if not stage_from:
            self.trainer.fit(**kwargs)
            return
        checkpoint = load_checkpoint(stage_from)
        staged = stage_checkpoint(checkpoint, self.model, self.config.fit.keep_optimizer_state, stage_from)
        set_max_epochs(self.trainer, checkpoint["epoch"] + 1 + self.trainer.max_epochs)
        with tempfile.TemporaryDirectory(prefix="stage-start-") as folder:  # removed even if interrupted
            path = Path(folder) / "stage_start.ckpt"
            torch.save(staged, path)
            self.trainer.fit(**{**kwargs, "ckpt_path": str(path)})

    def before_predict(self) -> None:
        raise UserInputError(
            "`python -m src.cli predict` has no images to classify: the data module serves only CIFAR-10's "
            "own splits. Use `python -m src.predict RUN_DIR_OR_MODEL IMAGES...` (folders or image files); "
            "it writes a CSV of file, class and probabilities."
        )

    def after_fit(self) -> None:
        record = next((cb.record for cb in self.trainer.callbacks if isinstance(cb, RunResults)), None)
        if self.config.fit.test_after_fit and not self.trainer.interrupted and not has_diverged(self.trainer):
            best = best_checkpoint(record.run_dir, record) if record and record.run_dir else None
            # the result is printed below, in one line with the run's other numbers
            with self._failed_writes():
                self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=str(best) if best else None,
                                  verbose=False)
        if record and self.trainer.is_global_zero:
            log_run_result(record)


def _latest_version(run_dir: Path) -> str:
    """The newest ``version_N`` of a run, where ``--ckpt_path last`` finds its ``last.ckpt``."""
    versions = [p for p in run_dir.glob("version_*") if version_number(p) is not None and last_checkpoint(p)]
    if not versions:
        raise UserInputError(
            f"--ckpt_path last found no run to resume in {run_dir}/version_*/checkpoints/last.ckpt. Check the "
            "config name (or --run_name) and the logger's save_dir, or give the checkpoint's path."
        )
    return max(versions, key=version_number).name


def _check_nothing_to_overwrite(run_dir: Path) -> None:
    """Refuses a new run in a folder that holds one: it would overwrite that run's last.ckpt and
    results.json, and mix their TensorBoard curves."""
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


def _drop_disabled_callbacks(trainer: Namespace) -> None:
    """Let ``--trainer.enable_progress_bar false`` (and the model summary's flag) switch off
    the progress bar and summary that base.yaml configures, instead of clashing with them."""
    disabled = tuple(
        kind for kind, flag in ((ProgressBar, "enable_progress_bar"), (ModelSummary, "enable_model_summary"))
        if trainer.get(flag) is False
    )
    if disabled and trainer.callbacks:
        trainer.callbacks = [c for c in trainer.callbacks if not issubclass(locate(c.class_path), disabled)]


def resume_command(args: list[str]) -> str:
    """The command that continues this run: the same arguments, with ``--ckpt_path last``."""
    kept = [a for i, a in enumerate(args) if not a.startswith("--ckpt_path") and (i == 0 or args[i - 1] != "--ckpt_path")]
    return shlex.join(["python", "-m", "src.cli", *kept, "--ckpt_path", "last"])


def main(args: list[str] | None = None) -> None:
    project_log = logging.getLogger("src")
    project_log.setLevel(logging.INFO)
    given = sys.argv[1:] if args is None else args
    try:
        # the project's messages to stderr as it is now, above any progress bar
        with exit_on_user_error(), logging_redirect_tqdm([project_log]):
            HparamLabCLI(args=args)
    except SIGTERMException:  # SIGTERM before our handler took over (during start-up)
        raise _interrupted(RunInterrupted(signal.SIGTERM, "while starting"), given) from None
    except RunInterrupted as interrupt:
        raise _interrupted(interrupt, given) from None
    except KeyboardInterrupt:
        raise _interrupted(RunInterrupted(signal.SIGINT, "before training started"), given) from None
    finally:
        release_all()


def _interrupted(interrupt: RunInterrupted, args: list[str]) -> SystemExit:
    print(f"Interrupted by {interrupt}. Resume with: {resume_command(args)}", file=sys.stderr, flush=True)
    return SystemExit(interrupt.exit_code)


if __name__ == "__main__":
    main()
