"""``python -m benchmark`` is the same as the ``retrainbench`` console script."""

from benchmark.cli import main

raise SystemExit(main())
