"""What training says while it runs: a bar on stderr at a TTY, INFO log lines without one, never stdout.

A command's stdout is its answer (``clicktune retrain`` prints one line a script may parse). The
Trainer of transformers reports through two callbacks that write there: ``ProgressCallback`` (its
tqdm bar writes each log dict, ``{'loss': ...}``, with ``tqdm.write``, which goes to stdout) and,
with ``disable_tqdm``, ``PrinterCallback`` (``print(logs)``). ``ClickTrainer`` therefore runs with
``disable_tqdm``, removes ``PrinterCallback`` and reports through :class:`TrainingProgress`.

sentence-transformers' model-card callback, when the trainer is built, samples the training set for
the card's widget examples (a "Computing widget examples" bar) and records dataset samples that the
saved model's README then shows: click queries and the documents users clicked. A registry version
is weights plus ``clicktune.json``, which records the training; :func:`quiet_trainer` leaves that
callback out (the trainer's documented way to drop it), so neither the bar nor the samples appear.
"""

from __future__ import annotations

import logging
import sys
from functools import cache
from typing import Any, TypeVar

from tqdm.auto import tqdm
from transformers import TrainerCallback

log = logging.getLogger("clicktune.scheduler.training")

T = TypeVar("T")


@cache
def quiet_trainer(base: type[T]) -> type[T]:
    """``base`` (a sentence-transformers trainer class) without its model-card callback."""

    class QuietTrainer(base):  # type: ignore[valid-type, misc]
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """No model-card data: no widget examples computed, no click samples written to the README."""

    QuietTrainer.__name__ = QuietTrainer.__qualname__ = f"Quiet{base.__name__}"
    return QuietTrainer  # type: ignore[return-value]


class TrainingProgress(TrainerCallback):
    """Steps and loss on stderr: a tqdm bar when ``bar`` (a person watches), else INFO lines."""

    def __init__(self, bar: bool) -> None:
        self.bar = bar
        self._tqdm: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar and state.is_world_process_zero:
            self._tqdm = tqdm(total=state.max_steps, desc="training", unit="step", file=sys.stderr,
                              dynamic_ncols=True)
        else:
            log.info("training: %d steps", state.max_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._tqdm is not None:
            self._tqdm.update(state.global_step - self._tqdm.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        loss, mean = logs.get("loss"), logs.get("train_loss")
        if self._tqdm is not None:
            if loss is not None:
                self._tqdm.set_postfix(loss=f"{loss:.4g}", refresh=False)
            return
        if loss is not None:
            log.info("training step %d of %d: loss %.4g", state.global_step, state.max_steps, loss)
        elif mean is not None:
            log.info("training done: %d steps in %.1fs, mean loss %.4g", state.global_step,
                     logs.get("train_runtime", 0.0), mean)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
