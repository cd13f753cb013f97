"""The ledger's tables, in SQLAlchemy Core, the same on SQLite and PostgreSQL.

One row per (ledger, finding id, organisation) in ``ledger_findings``; every change of
state in ``ledger_history``; every digest a finding was in (first notification,
reminders, reopened, fixed) in ``ledger_notifications``. ``ledger`` names the ledger
inside one database: the digest outputs that share a database with one name share the
life of their findings (several hosts of one output); outputs with different names (a
mail output and an archive output of one constituency) keep theirs apart.
"""

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from intelmq_nsm.abuse_kinds import DEFAULT as DEFAULT_KIND
from intelmq_nsm.cert_ids import CERT_PREFIX
from intelmq_nsm.digest.ledger.precedence import ANSWERS as OWNERS_ANSWERS
from intelmq_nsm.digest.ledger.precedence import SOURCES as NOT_CERTS
from intelmq_nsm.digest.ledger.precedence import STATES as ALL_STATES

#: Every state a finding can be in (see :mod:`.precedence`, where who may move it is decided).
STATES = ALL_STATES
#: Who changed a state: the output on a scan's result, the owner, the ticket system, an
#: operator; a downstream CERT's change is stored as ``cert:<key>`` or ``cert:<key>/<origin>``
#: (:data:`CERT_SOURCE` and the CERT's constituency key), one per CERT.
SOURCES = NOT_CERTS
CERT_SOURCE = CERT_PREFIX
#: What a finding is in a digest; ``not-seen``: a compromised or misbehaving system that a
#: rescan no longer found (never a verified fix).
KINDS = ("new", "reminder", "reopened", "fixed", "not-seen")
#: States an owner's (or operator's) answer may set.
ANSWERS = (*OWNERS_ANSWERS, "open")


def _one_of(column: str, values, *more: str) -> CheckConstraint:
    """``column IN (values)`` (or one of ``more`` conditions), named ``<column>_known``. A
    ledger made before a value was added has the narrower check: the store widens it."""
    text = " OR ".join((f"{column} IN ({', '.join(repr(v) for v in values)})", *more))
    return CheckConstraint(text, name=f"{column}_known")


#: A downstream CERT's source in the history.
CERT_SOURCE_CHECK = f"source LIKE '{CERT_SOURCE}%'"


metadata = MetaData()

ledger_findings = Table(
    "ledger_findings",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("org_name", Text, nullable=False, default=""),
    Column("constituency", String(200), nullable=False, default=""),
    Column("case_id", String(200), nullable=False, default=""),
    Column("target", Text, nullable=False, default=""),
    Column("state", String(20), nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("times_seen", Integer, nullable=False, default=1),
    Column("first_notified", Float),
    Column("last_notified", Float),
    Column("notifications", Integer, nullable=False, default=0),
    Column("reminders", Integer, nullable=False, default=0),
    Column("reopened", Integer, nullable=False, default=0),
    #: The first verified fix after the first notification (days to fix are counted to it).
    Column("fixed_at", Float),
    #: What is waiting in a spool for this finding (new, reminder, reopened, fixed), cleared
    #: when the digest holding it was delivered: nothing is spooled twice meanwhile.
    Column("pending", String(10)),
    #: The last event seen and what it made of it: a message that IntelMQ hands over again
    #: after a crash gets the same answer and counts once.
    Column("last_event", String(64)),
    Column("last_kind", String(10)),
    #: The registry's matches that routed the finding to this organisation (JSON list of
    #: ``extra.nsm.matches`` entries), as last seen: what a dispute of it is about.
    Column("matches", Text, nullable=False, default=""),
    #: Who reported the finding vulnerable first (the case's owner, else the feed's
    #: provider): only a not-vulnerable result of the same reporter closes it; "" (a
    #: ledger of an earlier version, or a finding never seen vulnerable): any may.
    Column("reporter", Text, nullable=False, default=""),
    #: At a CERT, a finding a hub forwarded (``extra.nsm.upstream``): the hub's finding id
    #: and instance name, "" for the CERT's own findings. Its changes go back to that hub
    #: (the outbox, :mod:`intelmq_nsm.digest.outbox`) under the hub's id.
    Column("upstream_finding_id", String(200), nullable=False, default=""),
    Column("upstream_instance", String(200), nullable=False, default=""),
    #: The kind of abuse (vulnerable, compromised, misbehaving, exposed): its life and words.
    Column("abuse", String(20), nullable=False, default=DEFAULT_KIND),
    #: The report (a submission, a feed's report) of the last observation counted: the events
    #: of one report are one observation (``times_seen``), however many it holds.
    Column("last_report", Text, nullable=False, default=""),
    PrimaryKeyConstraint("ledger", "finding_id", "org_id"),
    _one_of("state", STATES),
)
# The statistics read one covering index in its order: counts per case, constituency and
# organisation come from one pass over it; the days to a fix read only the fixed findings
# (a partial index). One index rather than one per level: every new finding writes a page
# of each index of this table in its event's commit. (Lookups by finding id use the
# primary key, which starts with the ledger and the finding id.)
c = ledger_findings.c
Index(
    "ledger_findings_tally",
    c.ledger,
    c.case_id,
    c.constituency,
    c.org_id,
    c.abuse,
    c.state,
    c.first_notified,
    c.org_name,
)
_fixed = c.state == "fixed-verified"
Index(
    "ledger_findings_fixed_days",
    c.ledger,
    c.state,  # in the index, so that the query reads nothing else
    c.case_id,
    c.constituency,
    c.org_id,
    c.first_notified,
    c.fixed_at,
    sqlite_where=_fixed,
    postgresql_where=_fixed,
)
#: Indexes of earlier versions that the ones above replace; dropped when a ledger opens.
SUPERSEDED_INDEXES = (
    "ledger_findings_counts",
    "ledger_findings_case",
    "ledger_findings_constituency",
    "ledger_findings_org",
    "ledger_findings_id",
    "ledger_findings_fixed",
)

ledger_history = Table(
    "ledger_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ledger", String(200), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("old_state", String(20)),
    Column("state", String(20), nullable=False),
    Column("source", String(200), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("reference", Text, nullable=False, default=""),
    #: What the source asked for when the state stayed (an answer kept in the history only,
    #: see :mod:`.precedence`); "" when ``state`` is what it asked for.
    Column("requested", String(20), nullable=False, default=""),
    ForeignKeyConstraint(
        ["ledger", "finding_id", "org_id"],
        [ledger_findings.c.ledger, ledger_findings.c.finding_id, ledger_findings.c.org_id],
    ),
    _one_of("source", SOURCES, CERT_SOURCE_CHECK),
)
Index("ledger_history_finding", ledger_history.c.ledger, ledger_history.c.finding_id, ledger_history.c.org_id)
#: The ticket system's references (``POST /v1/feedback``) are looked up on every call.
Index("ledger_history_reference", ledger_history.c.ledger, ledger_history.c.reference)

ledger_notifications = Table(
    "ledger_notifications",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("digest_id", String(64), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("delivered_at", Float, nullable=False),
    PrimaryKeyConstraint("ledger", "digest_id", "finding_id", "org_id"),
    ForeignKeyConstraint(
        ["ledger", "finding_id", "org_id"],
        [ledger_findings.c.ledger, ledger_findings.c.finding_id, ledger_findings.c.org_id],
    ),
    _one_of("kind", KINDS),
)
#: The operators' decisions on disputed findings (``intelmq-nsm constituency disputes``):
#: ``accepted`` (with the registry correction written) or ``rejected`` (with a note).
ledger_disputes = Table(
    "ledger_disputes",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("decision", String(10), nullable=False),
    Column("at", Float, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("correction", Text, nullable=False, default=""),
    PrimaryKeyConstraint("ledger", "finding_id", "org_id"),
    _one_of("decision", ("accepted", "rejected")),
)

Index(
    "ledger_notifications_finding",
    ledger_notifications.c.ledger,
    ledger_notifications.c.finding_id,
    ledger_notifications.c.org_id,
)

# -- across installations: a CERT's outbox to its hub, a hub's changes from its CERTs ----

#: A CERT's outbox to one upstream (a hub): how far its history was sent (the last history
#: id the hub answered for, or that needed no sending), and the key of the opaque
#: organisation ids it sends where it shares no names. The history itself is the outbox.
ledger_outbox = Table(
    "ledger_outbox",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("upstream", String(200), nullable=False),
    Column("sent_to", Integer, nullable=False, default=0),
    Column("org_key", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("ledger", "upstream"),
)
#: Changes an upstream refused for good (per change, or a batch of one it would not take):
#: kept for an operator (``intelmq-nsm spool FILE list``, the output's check); the cursor
#: moved past them, so they hold nothing up.
ledger_outbox_refused = Table(
    "ledger_outbox_refused",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("upstream", String(200), nullable=False),
    Column("history_id", Integer, nullable=False),
    Column("change_id", Text, nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("upstream_finding_id", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("status", Integer, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("at", Float, nullable=False),
    PrimaryKeyConstraint("ledger", "upstream", "history_id"),
)
#: At a hub: the changes applied from each CERT, by the CERT's change id (``<instance>/
#: <ledger>/<history id>``): the same change again is a duplicate. Keyed by the source
#: (``cert:<key>``) too, so that one CERT's ids can never shadow another's.
ledger_received = Table(
    "ledger_received",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("change_id", String(300), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("applied_at", Float, nullable=False),
    PrimaryKeyConstraint("ledger", "source", "change_id"),
)
#: At a hub: what a CERT reported per organisation of its own for a finding the hub
#: forwarded to it (the hub's record ``org_id`` is ``cert:<key>``): the organisation's id
#: (opaque where the CERT shares no names), its name ("" where it shares none), its state.
ledger_downstream = Table(
    "ledger_downstream",
    metadata,
    Column("ledger", String(200), nullable=False),
    Column("finding_id", String(64), nullable=False),
    Column("org_id", String(200), nullable=False),
    Column("downstream_id", String(200), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("state", String(20), nullable=False),
    Column("at", Float, nullable=False),
    Column("instance", String(200), nullable=False, default=""),
    PrimaryKeyConstraint("ledger", "finding_id", "org_id", "downstream_id"),
    ForeignKeyConstraint(
        ["ledger", "finding_id", "org_id"],
        [ledger_findings.c.ledger, ledger_findings.c.finding_id, ledger_findings.c.org_id],
    ),
)
