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

#: Every state a finding can be in. ``open``: seen, not yet notified. ``notified``: in a
#: delivered digest. ``fixed-verified``: a rescan said not vulnerable. ``reopened``: seen
#: vulnerable again after a fix. The owners' answers: ``fixed-reported`` (says fixed, not
#: yet verified), ``disputed``, ``accepted-risk``, ``false-positive``. ``forwarded``: a
#: hub handed the finding to a sectoral CERT's instance (the record's organisation is
#: ``cert:<constituency key>``); what became of it there is the CERT's to say.
STATES = (
    "open",
    "notified",
    "fixed-verified",
    "reopened",
    "fixed-reported",
    "disputed",
    "accepted-risk",
    "false-positive",
    "forwarded",
)
#: Who changed a state: a rescan (or the output acting on one), the owner, an operator.
SOURCES = ("scan", "owner", "operator")
#: What a finding is in a digest.
KINDS = ("new", "reminder", "reopened", "fixed")
#: States an owner's (or operator's) answer may set.
ANSWERS = ("fixed-reported", "disputed", "accepted-risk", "false-positive", "open")


def _one_of(column: str, values) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=f"{column}_known")


#: The name of ledger_findings' constraint on its states (made again when STATES grows).
STATE_CHECK = "state_known"


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
    #: At a sectoral CERT's instance, for a finding a hub forwarded: the hub's finding id
    #: and the hub's instance name (``extra.nsm.upstream``), by which the CERT reports the
    #: finding's changes back to that hub; empty for a finding of the CERT's own.
    Column("upstream_finding_id", String(64), nullable=False, default=""),
    Column("upstream_instance", String(200), nullable=False, default=""),
    PrimaryKeyConstraint("ledger", "finding_id", "org_id"),
    _one_of("state", STATES),
)
# The statistics read one covering index in its order: counts per case, constituency and
# organisation come from one pass over it; the days to a fix read only the fixed findings
# (a partial index). One index rather than one per level: every new finding writes a page
# of each index of this table in its event's commit. (Lookups by finding id use the
# primary key, which starts with the ledger and the finding id.)
c = ledger_findings.c
Index("ledger_findings_counts", c.ledger, c.case_id, c.constituency, c.org_id, c.state, c.first_notified, c.org_name)
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
    Column("source", String(10), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("reference", Text, nullable=False, default=""),
    ForeignKeyConstraint(
        ["ledger", "finding_id", "org_id"],
        [ledger_findings.c.ledger, ledger_findings.c.finding_id, ledger_findings.c.org_id],
    ),
    _one_of("source", SOURCES),
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
