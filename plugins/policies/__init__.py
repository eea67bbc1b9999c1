"""Entry point ``policies``: the first-party data-mixing policies (defined in plugins/policies/mixing.py)."""

from __future__ import annotations

from benchmark import hookimpl
from plugins.policies.mixing import Accumulate, AccumulateSubsample, Fresh, Mix, Replace

POLICIES = (Mix, Replace, Accumulate, Fresh, AccumulateSubsample)


@hookimpl
def register_policies(register):
    for policy in POLICIES:
        register(policy)
