"""Learn: featurisers, PSPP forward models, inverse screening and model cards.

Light at import: scikit-learn, pandas and numpy load with the submodules that need them, skops
when a model is saved or loaded, matplotlib only when a plot is drawn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.cards import ModelCard
    from training.datasets import InputKind, InputSpec, TrainingSet
    from training.errors import (
        FormulaError,
        ScreeningError,
        TrainingError,
        TrainingLimitError,
        TrainingSetError,
        UntrustedModelError,
    )
    from training.featurizers import CompositionFeaturizer, WeightPercentFeaturizer
    from training.formula import fractions, parse_formula
    from training.models import ForwardModel, train_forward
    from training.plots import parity_plot, screening_plot
    from training.runs import TrainingRun, run_training
    from training.screening import expected_improvement, screen
    from training.store import dumps_model, load_card, load_model, loads_model, save_model

__all__ = [
    "CompositionFeaturizer",
    "FormulaError",
    "ForwardModel",
    "InputKind",
    "InputSpec",
    "ModelCard",
    "ScreeningError",
    "TrainingError",
    "TrainingLimitError",
    "TrainingRun",
    "TrainingSet",
    "TrainingSetError",
    "UntrustedModelError",
    "WeightPercentFeaturizer",
    "dumps_model",
    "expected_improvement",
    "fractions",
    "load_card",
    "load_model",
    "loads_model",
    "parity_plot",
    "parse_formula",
    "run_training",
    "save_model",
    "screen",
    "screening_plot",
    "train_forward",
]

_HOME = {
    "ModelCard": "cards",
    "InputKind": "datasets",
    "InputSpec": "datasets",
    "TrainingSet": "datasets",
    "FormulaError": "errors",
    "ScreeningError": "errors",
    "TrainingError": "errors",
    "TrainingLimitError": "errors",
    "TrainingSetError": "errors",
    "UntrustedModelError": "errors",
    "CompositionFeaturizer": "featurizers",
    "WeightPercentFeaturizer": "featurizers",
    "fractions": "formula",
    "parse_formula": "formula",
    "ForwardModel": "models",
    "train_forward": "models",
    "parity_plot": "plots",
    "screening_plot": "plots",
    "TrainingRun": "runs",
    "run_training": "runs",
    "expected_improvement": "screening",
    "screen": "screening",
    "dumps_model": "store",
    "load_card": "store",
    "load_model": "store",
    "loads_model": "store",
    "save_model": "store",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use (keeps ``import training`` light)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"training.{module}"), name)
