"""What can make ``retrainbench compare`` fail, by the name ``--fail-on`` gives it.

Apart from ``benchmark.report.compare`` so that the command line can list the rules in its help without
importing pandas (``--help`` starts instantly).
"""

from __future__ import annotations

FAIL_RULES: dict[str, str] = {
    "failure": "a larger share of its runs failed or diverged than in the baseline",
    "verdict": "its verdict turned worse (to worsening, settled-worse, worse or collapsed) and its level rose "
    "significantly",
    "level": "its level (late worsening) rose significantly by more than the tolerance",
    "quality": "its generation-0 quality worsened significantly by more than the tolerance",
}
