"""Which state a finding's record takes when a change is reported for it: one function for
every writer that has to choose (here: a hub applying what a downstream CERT reported).

A minimal rule set until the ledger's full precedence of kinds and sources stands here:
the reported state is taken, except that an owner's or a CERT's unverified word
(``fixed-reported``) never undoes a fix a rescan verified (``fixed-verified``).
"""

from typing import Optional

#: States no unverified report may leave.
VERIFIED = ("fixed-verified",)
#: Reported states that are only someone's word.
UNVERIFIED = ("fixed-reported",)


def decide(old_state: Optional[str], new_state: str, source: str) -> str:
    """The state a record in ``old_state`` (None: a new record) takes when ``source`` (``scan``,
    ``owner``, ``operator``, ``cert:<key>``) reports ``new_state``."""
    if old_state in VERIFIED and new_state in UNVERIFIED:
        return old_state
    return new_state
