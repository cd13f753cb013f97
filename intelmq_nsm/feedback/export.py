"""The answers owners and the ticket system gave, as CSV for a spreadsheet (formula-safe).

A comment is the owner's free text: in a spreadsheet a cell starting with ``=``, ``+``,
``-``, ``@`` (or a tab or carriage return) would be a formula, so such cells get a
leading quote (:func:`intelmq_nsm.digest.render.neutralise`, as the digests' CSV does).
"""

import csv
import datetime
import io
from typing import Optional

from intelmq_nsm.digest.render import neutralise

COLUMNS = (
    "at",
    "organisation",
    "organisation_name",
    "finding_id",
    "target",
    "case_id",
    "old_state",
    "state",
    "answer",
    "kind_of_abuse",
    "source",
    "comment",
    "reference",
)


def answers(ledger, since: Optional[float] = None) -> list:
    """Every answer (the owners', the ticket system's, operators', downstream CERTs') in the
    ledger, oldest first, as dicts of COLUMNS: ``state`` is the finding's after it, ``answer``
    what was asked (the two differ where an answer was kept in the history only, e.g. an
    owner's "fixed" after a verified fix)."""
    return [
        {
            "at": datetime.datetime.fromtimestamp(r["at"], datetime.timezone.utc).isoformat(timespec="seconds"),
            "organisation": r["org_id"],
            "organisation_name": r["org_name"],
            "finding_id": r["finding_id"],
            "target": r["target"],
            "case_id": r["case_id"],
            "old_state": r["old_state"] or "",
            "state": r["state"],
            "answer": r["answer"],
            "kind_of_abuse": r["abuse"],
            "source": r["source"],
            "comment": r["note"],
            "reference": r["reference"],
        }
        for r in ledger.answers(since=since)
    ]


def to_csv(rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([neutralise(row[c]) for c in COLUMNS])
    return out.getvalue()
