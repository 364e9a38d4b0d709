"""The config sections and flags ``python -m src.cli`` adds to LightningCLI's: the project's
callbacks, each under a key of its own (``early_stopping``, ``checkpoint``, …), and its own flags."""

from __future__ import annotations

from pytorch_lightning.cli import LightningArgumentParser

from src.callbacks.checkpoints import ResumeCheckpoint, RunCheckpoint
from src.callbacks.divergence import DivergenceGuard
from src.callbacks.early_stopping import StagedEarlyStopping
from src.callbacks.run_results import RunResults
from src.callbacks.tensorboard_hparams import TensorBoardHparams
from src.run_messages import LogLevel

# The callbacks every run needs (results.json, the HPARAMS tab, and below: the divergence stop and
# last.ckpt for resuming) have config keys of their own, like early_stopping and checkpoint: they
# show in --print_config and config.yaml, and a config's own trainer.callbacks list cannot drop
# them. These two take no arguments and show as their class.
REQUIRED_CALLBACKS = {"run_results": RunResults, "tensorboard_hparams": TensorBoardHparams}


def add_run_arguments(parser: LightningArgumentParser) -> None:
    """The project's callbacks as config sections (``early_stopping``, ``checkpoint``, …) and its
    own flags (``--fast``, ``--run_name``, ``--new_stage_from``, …) beside LightningCLI's."""
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
