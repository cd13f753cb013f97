"""What an operator must see of a digest output's spool: failed digests, unreachable contacts.

One reading for every place that shows it: ``intelmq-nsm spool FILE list``, the bot's
``check`` (``intelmq-nsm``'s and ``intelmqctl check``), the operators' overview.
"""

from intelmq_nsm.digest.contacts import ContactBook
from intelmq_nsm.digest.spool import DigestSpool

#: Failed digests named one by one at most; the rest are counted.
SHOWN = 5


def summary(path) -> dict:
    """``{"failed": [digest rows], "unreachable": [contact rows]}`` of the spool file ``path``."""
    spool = DigestSpool(path)
    try:
        return {"failed": spool.digests("failed"), "unreachable": ContactBook(spool.db).rows()}
    finally:
        spool.close()


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
    for contact in found["unreachable"]:
        lines.append(
            f"Contact {contact['address']} of {contact['org_id'] or 'an unknown organisation'} is unreachable"
            f" ({contact['source']}, {contact['failures']} failure(s)): {contact['reason']}"
        )
    return lines
