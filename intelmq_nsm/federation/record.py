"""The hub's record of what it forwarded to a sectoral CERT's instance.

At the hub, a CERT's constituency path (``ibd``) has two queues: IntelMQ's AMQP output,
which publishes each event to the CERT's virtual host, and the forward-record output,
which records each finding in the hub's ledger as forwarded to that CERT: organisation
``cert:<constituency key>``, state ``forwarded`` until the CERT reports otherwise (the
return leg), never in a digest of the hub's. A researcher's ``GET /v1/cases/<id>`` at the
hub counts them per constituency (``forwarded``).

Every observation counts, vulnerable or not-vulnerable, of any kind: the same event
recorded twice (a repeat after a crash) counts once.
"""

from typing import Optional

from intelmq_nsm.digest import event_findings as ef
from intelmq_nsm.digest.ledger import Observation, cert_org_id


def forwarded(event: dict, constituency: Optional[str] = None) -> Observation:
    """The hub's observation of one event (a flat dict) it forwards to the CERT of the
    event's constituency (``constituency``: the one this output serves). Raises
    FindingError naming the field of an event that cannot be recorded (no constituency,
    another one, nothing to make a finding id of)."""
    key = ef.constituency_of(event, constituency)
    org_id = cert_org_id(key)
    fields = ef.event_fields(event)  # one pass over the event, as the digest output's
    kind = ef.kind_of_abuse(event, fields=fields)
    finding, where, _ = ef.identity_of(fields, kind)
    return Observation(
        finding,
        org_id,
        ef.event_hash(event),
        vulnerable=ef.vulnerable(event),
        org_name=org_id,
        constituency=key,
        case_id=ef.case_id_of(event),
        target=where,
        reporter=ef.reporter_of(event),
        abuse=kind,
        report=ef.report_of(event, fields),
    )


def record(event: dict, ledger, now: float, constituency: Optional[str] = None) -> dict:
    """Record one forwarded event in ``ledger``; its record after it. Raises FindingError
    (see :func:`forwarded`) and LedgerUnavailable."""
    [result] = ledger.record_forwarded([forwarded(event, constituency)], now=now)
    return result
