"""What an operator must see of a digest output's spool: failed digests, unreachable contacts,
and (at a CERT with a hub, the ledger in the spool's file) the changes the hub refused.

One reading for every place that shows it: ``intelmq-nsm spool FILE list``, the bot's
``check`` (``intelmq-nsm``'s and ``intelmqctl check``), the operators' overview.
"""

from intelmq_nsm.digest.contacts import ContactBook
from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from intelmq_nsm.digest.spool import DigestSpool

#: Failed digests named one by one at most; the rest are counted.
SHOWN = 5


def summary(path) -> dict:
    """``{"failed": [digest rows], "unreachable": [contact rows], "refused": [refused changes]}``
    of the spool file ``path``."""
    spool = DigestSpool(path)
    try:
        found = {"failed": spool.digests("failed"), "unreachable": ContactBook(spool.db).rows()}
    finally:
        spool.close()
    return {**found, "refused": refused_changes(path)}


def refused_changes(path) -> list:
    """The changes a hub refused for good, of every ledger in the spool file ``path`` (none
    where the ledger lives elsewhere: ``intelmq-nsm ledger URL outbox`` shows those)."""
    if not Ledger.in_file(path):
        return []
    ledger = Ledger(sqlite_url(path), name="")
    try:
        return ledger.refused_outgoing(every_ledger=True)
    finally:
        ledger.close()


def problems(path) -> list:
    """The summary as sentences, one per failed digest (up to SHOWN) and unreachable contact."""
    found = summary(path)
    lines = []
    for digest in found["failed"][:SHOWN]:
        lines.append(
            f"Digest {digest['id'][:16]} for {digest['org_id']} failed and waits for an operator"
            f" (intelmq-nsm spool {path} retry): {digest['last_error']}"
        )
    if len(found["failed"]) > SHOWN:
        lines.append(
            f"{len(found['failed']) - SHOWN} more failed digests: intelmq-nsm spool {path} list --state failed."
        )
    for change in found["refused"][:SHOWN]:
        lines.append(
            f"The hub {change['upstream']} refused change {change['change_id']} (its finding"
            f" {change['upstream_finding_id']}, {change['state']}; HTTP {change['status']}): {change['reason']}."
            " It is kept and not sent again."
        )
    if len(found["refused"]) > SHOWN:
        lines.append(f"{len(found['refused']) - SHOWN} more refused changes: intelmq-nsm spool {path} list.")
    for contact in found["unreachable"]:
        lines.append(
            f"Contact {contact['address']} of {contact['org_id'] or 'an unknown organisation'} is unreachable"
            f" ({contact['source']}, {contact['failures']} failure(s)): {contact['reason']}"
        )
    return lines
