"""retrainbench core: the harness that retrains generative models on their own samples.

The core holds no model code: datasets, model families, policies, metrics and executors all
come from plugins (first-party ones live in the top-level ``plugins`` package).
"""

__version__ = "0.1.0"

#: Version of the stored result layout. Runs are keyed by it and reports refuse to mix versions.
SCHEMA_VERSION = 1

from benchmark import moved as _moved  # noqa: E402,F401  (old import paths keep working)
from benchmark.api.components import (  # noqa: E402  (the public API plugins import)
    Dataset,
    DataSplits,
    Evaluation,
    Executor,
    FeatureExtractor,
    Measured,
    Metric,
    Model,
    ModelFamily,
    Policy,
    PolicyStep,
    RunContext,
    TrainingSet,
)
from benchmark.api.hookspecs import hookimpl  # noqa: E402
from benchmark.api.params import Param, ParamError  # noqa: E402

__all__ = [
    "SCHEMA_VERSION",
    "DataSplits",
    "Dataset",
    "Evaluation",
    "Executor",
    "FeatureExtractor",
    "Measured",
    "Metric",
    "Model",
    "ModelFamily",
    "Param",
    "ParamError",
    "Policy",
    "PolicyStep",
    "RunContext",
    "TrainingSet",
    "__version__",
    "hookimpl",
]
