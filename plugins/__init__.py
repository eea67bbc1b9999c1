"""First-party retrainbench plugins.

Each module here is registered through the ``retrainbench`` entry-point group in pyproject.toml,
exactly as a third-party package registers its own; the core never imports them.
"""
