"""The event contract between intelmq-nsm's bots: which fields each bot writes and reads.

Core IntelMQ 3.5 fields carry everything they can (``classification.*``, ``severity``,
``product.*``, ``source.*``, ``event_description.*``, ``tlp``, ``constituency``). What the
core harmonization has no field for lives under ``extra.nsm.*``; these constants are the
only place the key names are spelled, and ``harmonization/extra-nsm-keys.md`` documents
each of them for operators.
"""

PREFIX = "extra.nsm."

# -- Report (intake collector → report parser) ------------------------------------------
#: str: the intake's submission id (sha256 of researcher and content), for tracing.
SUBMISSION_ID = "extra.nsm.submission_id"
#: str: the media type the researcher declared: application/json, application/x-ndjson, text/csv.
CONTENT_TYPE = "extra.nsm.content_type"
#: dict: case metadata given with a CSV submission (keys as in the NSM report's case block).
CASE = "extra.nsm.case"
#: int: the first record of this report within its submission (a split submission), 1-based.
FIRST_RECORD = "extra.nsm.first_record"
#: str: the researcher who owns the report's case, as the intake that accepted it knows
#: it (the submitter is the owner or one the case is shared with); copied onto every event
#: of the report. A finding is spoken for by its reporter: this, else ``feed.provider``.
CASE_OWNER = "extra.nsm.case_owner"

# -- Event, written by the report parser ------------------------------------------------
#: str: the case id, e.g. ``DIVD-2024-00012``; groups findings of one investigation.
CASE_ID = "extra.nsm.case_id"
#: str: the case title.
CASE_TITLE = "extra.nsm.case_title"
#: str: what the owner should do (the case's recommendation text).
RECOMMENDATION = "extra.nsm.recommendation"
#: list[str]: affected product versions as the case states them.
AFFECTED_VERSIONS = "extra.nsm.affected_versions"
#: str: the researcher's evidence for this finding (truncated by the parser).
EVIDENCE = "extra.nsm.evidence"
#: str: the input format: ``nsm-report/1``, ``nuclei`` or ``divd-csv``.
REPORT_FORMAT = "extra.nsm.report_format"
#: int: the record's number within its report, 1-based (with FIRST_RECORD: within the submission).
RECORD = "extra.nsm.record"
#: str: the scanner's template or check id (nuclei ``template-id``).
TEMPLATE_ID = "extra.nsm.template_id"
#: dict: the reporter block of an NSM report: ``{"organisation": "...", "contact": "..."}``
#: (self-declared by the researcher; ``feed.*`` stays what the collector set).
REPORTER = "extra.nsm.reporter"
#: str: where the DIVD CSV's abuse contact came from (its ``abuse_source`` column).
ABUSE_SOURCE = "extra.nsm.abuse_source"
#: str: the stable id of the vulnerable thing (case, target, port, transport), the same in
#: every rescan; see ``intelmq_nsm.finding_id`` and ``harmonization/finding-id.md``.
FINDING_ID = "extra.nsm.finding_id"
#: str: the case's Traffic Light Protocol label by its TLP 2.0 name (CLEAR, GREEN, AMBER,
#: AMBER+STRICT, RED), beside IntelMQ's ``tlp`` field, which knows the 1.0 names only
#: (CLEAR → WHITE, AMBER+STRICT → AMBER); see ``intelmq_nsm.tlp``.
TLP = "extra.nsm.tlp"
#: str: what the scan found: ``vulnerable`` (also when unset) or ``not-vulnerable`` (a
#: rescan that found the system fixed). No output presents a not-vulnerable event as a
#: vulnerability.
RESULT = "extra.nsm.result"
#: dict: at a CERT, a finding its hub forwarded: ``{"instance": "<the hub's instance name>",
#: "finding_id": "<the hub's finding id>", "case_id", "reporter": {...}, "forwarded_at"}``
#: (keys absent when unknown). The CERT's ledger keeps the hub's finding id and instance, and
#: the finding's changes go back to the hub under that id (``harmonization/federation.md``).
UPSTREAM = "extra.nsm.upstream"

# -- Event, written by a feed's rules (IntelMQ's modify expert, a parser's constant field) --
#: str: the kind of abuse, when a feed or a rule says it: ``vulnerable``, ``compromised``,
#: ``misbehaving`` or ``exposed``; without it the digest output decides from the
#: classification (``intelmq_nsm.abuse_kinds``, ``harmonization/kinds-of-abuse.md``).
KIND = "extra.nsm.kind"

# -- Event, written by the constituency expert ------------------------------------------
#: list[dict]: the organisations the finding belongs to within this event's constituency,
#: in a stable order: ``{"id": "GM0363", "name": "Amsterdam", "kind": "municipality",
#: "contacts": ["..."]}``. A municipality and its shared-service organisation both appear.
ORGANISATIONS = "extra.nsm.organisations"
#: list[dict]: why: ``{"field", "value", "kind" (network|domain|asn), "matched",
#: "organisation", "source", "note"}`` for each match that decided the routing.
MATCHES = "extra.nsm.matches"
#: list[str]: organisation ids that tie (same specificity, same precedence) and were not
#: resolved; the event still carries all of them in ORGANISATIONS.
TIE = "extra.nsm.tie"
#: str: version (or content hash) of the constituency registry that made the decision.
REGISTRY_VERSION = "extra.nsm.registry_version"
