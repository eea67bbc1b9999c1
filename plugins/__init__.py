"""First-party retrainbench plugins.

Each module here is registered through the ``retrainbench`` entry-point group in pyproject.toml,
exactly as a third-party package registers its own; the core never imports them.
"""

from benchmark.moved import alias

#: Module paths of the first release, before the plugins were grouped by kind.
MOVED = {
    "plugins.toy_datasets": "plugins.datasets.toy",
    "plugins.image_datasets": "plugins.datasets.images",
    "plugins.analytic_families": "plugins.families.analytic",
    "plugins.flows": "plugins.families.flows",
    "plugins.diffusion": "plugins.families.diffusion",
    "plugins.basic_metrics": "plugins.metrics.basic",
    "plugins.sample_metrics": "plugins.metrics.samples",
    "plugins.image_metrics": "plugins.metrics.images",
    "plugins.feature_extractors": "plugins.features.extractors",
    "plugins.jsonl_logger": "plugins.observers.jsonl",
    "plugins.torch_support": "benchmark.torch_support.training",
}
alias(MOVED)
