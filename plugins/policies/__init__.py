"""Entry point ``policies``: the first-party policies (mixing.py: mix, replace, ...; curation.py: curate)."""

from __future__ import annotations

from benchmark import hookimpl
from plugins.policies.curation import Curate
from plugins.policies.mixing import Accumulate, AccumulateSubsample, Fresh, Mix, Replace

POLICIES = (Mix, Replace, Accumulate, Fresh, AccumulateSubsample, Curate)


@hookimpl
def register_policies(register):
    for policy in POLICIES:
        register(policy)
