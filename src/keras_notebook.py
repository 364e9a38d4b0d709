"""What the 2017 Keras notebook reported, in its own figures and words, which every table of ours is set beside.

Its figures are test accuracies of one run each, as it printed them (``0.7722``), used exactly in
every statistic and rounded only for display. Where it gave words instead of a number ("just above
77%", "~40%") the figure is the range those words allow, and a verdict against it can come out
"partly"; where it gave neither (decay 1e-5) there is no figure, and nothing is compared.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NotebookFigure:
    """One experiment's test accuracy as the notebook reported it (accuracies as fractions)."""

    text: str  # as the notebook said it, for tables
    exact: float | None = None  # the number it printed
    low: float | None = None  # the range its words allow, for a figure it gave only in words
    high: float | None = None

    @property
    def value(self) -> float | None:
        """The figure one number stands for: the printed one, or the middle of the range its words allow."""
        if self.exact is not None:
            return self.exact
        return None if self.low is None or self.high is None else (self.low + self.high) / 2

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The figure as a range: a printed number is a range of one point."""
        if self.exact is not None:
            return self.exact, self.exact
        return None if self.low is None or self.high is None else (self.low, self.high)


# "~40%" is read as a figure that rounds to 40 at the nearest 5 points, "just above 77%" as 77 to 78:
# what the words allow, not a guess at what the run gave.
NOTEBOOK: dict[str, NotebookFigure] = {
    "rmsprop_baseline": NotebookFigure("0.7722 (34 epochs)", exact=0.7722),
    "rmsprop_lr_1e-3": NotebookFigure("0.5186", exact=0.5186),
    "rmsprop_lr_1e-5": NotebookFigure("0.7323 (~150 epochs)", exact=0.7323),
    "rmsprop_decay_1e-7": NotebookFigure('"just above 77%" (53 epochs)', low=0.77, high=0.78),
    "rmsprop_decay_1e-5": NotebookFigure('no figure ("does not seem to help or hinder")'),
    "rmsprop_decay_1e-2": NotebookFigure('"~40%"', low=0.375, high=0.425),
    "sgd": NotebookFigure("0.8075", exact=0.8075),
    "sgd_momentum": NotebookFigure("0.7975", exact=0.7975),
    "sgd_nesterov": NotebookFigure("0.802", exact=0.802),
    "adam_auto_staged": NotebookFigure("0.815 (Adam 1e-3, then 1e-4, then 1e-5)", exact=0.815),
}
