"""Kinds of abuse: what a finding is, from IntelMQ's classification (RSIT taxonomy and type).

The Meldpunt shares *abuse information*: concrete information about hacked or vulnerable
systems, or systems that unmistakably act unlawfully. The product treats four kinds apart,
each with its own finding identity (:mod:`intelmq_nsm.finding_id`), life in the ledger
(:mod:`intelmq_nsm.digest.ledger.policy`) and words in a digest:

- ``vulnerable``: a weakness a scan can verify as fixed (vulnerable-system, weak-crypto,
  ddos-amplifier, misconfiguration);
- ``compromised``: infected, defaced, backdoored (malicious-code's infected-system, the
  intrusions, unauthorised access or modification of information) and vulnerable systems
  with evidence of compromise (an implant, a webshell, a malware name);
- ``misbehaving``: the system attacks or abuses others (abusive content, spam, scanners,
  brute force, DDoS, phishing and malware hosting, C2 servers, block lists);
- ``exposed``: open services and leaks, informational (potentially-unwanted-accessible,
  information-disclosure, data-leak, data-loss, proxies, Tor, other).

A feed or a rule may say it: ``extra.nsm.kind`` on the event (IntelMQ's modify expert or a
parser's constant field), else the digest output's ``kinds_of_abuse`` parameter (a field's
value → kind); otherwise the mapping below decides. The table is documented in
``harmonization/kinds-of-abuse.md``. Plain Python, no IntelMQ: the digest output, the
ledger and the commands read it alike.
"""

from collections.abc import Mapping
from typing import Optional

from intelmq_nsm import event_contract as ec

VULNERABLE, COMPROMISED, MISBEHAVING, EXPOSED = "vulnerable", "compromised", "misbehaving", "exposed"
#: The kinds in the order a digest shows them: the most urgent first.
KINDS = (COMPROMISED, MISBEHAVING, VULNERABLE, EXPOSED)
#: Where a feed or a rule names the kind explicitly.
FIELD = ec.KIND
#: Kinds whose life in the ledger follows what feeds keep seeing: no feed sends "not
#: infected", so absence is never a verified fix (see the ledger's policy).
SEEN_BY_FEEDS = (COMPROMISED, MISBEHAVING)

#: ``classification.type`` → kind. IntelMQ 3.5's types (RSIT with IntelMQ's extensions).
BY_TYPE = {
    # vulnerable: a scan can verify the fix
    "vulnerable-system": VULNERABLE,
    "weak-crypto": VULNERABLE,
    "ddos-amplifier": VULNERABLE,
    "misconfiguration": VULNERABLE,
    # exposed or informational: open services, leaks
    "potentially-unwanted-accessible": EXPOSED,
    "information-disclosure": EXPOSED,
    "data-leak": EXPOSED,
    "data-loss": EXPOSED,
    "proxy": EXPOSED,
    "tor": EXPOSED,
    "outage": EXPOSED,
    "sabotage": EXPOSED,
    "other": EXPOSED,
    "undetermined": EXPOSED,
    "test": EXPOSED,
    # compromised: infected, defaced, backdoored, broken into
    "infected-system": COMPROMISED,
    "system-compromise": COMPROMISED,
    "application-compromise": COMPROMISED,
    "privileged-account-compromise": COMPROMISED,
    "unprivileged-account-compromise": COMPROMISED,
    "burglary": COMPROMISED,
    "unauthorised-information-access": COMPROMISED,
    "unauthorised-information-modification": COMPROMISED,
    # misbehaving: it attacks or abuses others
    "spam": MISBEHAVING,
    "harmful-speech": MISBEHAVING,
    "violence": MISBEHAVING,
    "ddos": MISBEHAVING,
    "dos": MISBEHAVING,
    "phishing": MISBEHAVING,
    "masquerade": MISBEHAVING,
    "copyright": MISBEHAVING,
    "unauthorized-use-of-resources": MISBEHAVING,
    "scanner": MISBEHAVING,
    "sniffing": MISBEHAVING,
    "social-engineering": MISBEHAVING,
    "brute-force": MISBEHAVING,
    "exploit": MISBEHAVING,
    "ids-alert": MISBEHAVING,
    "c2-server": MISBEHAVING,
    "malware-distribution": MISBEHAVING,
    "malware-configuration": MISBEHAVING,
    "malware": MISBEHAVING,
    "blacklist": MISBEHAVING,
    "dga-domain": MISBEHAVING,
}
#: Types whose source is a server that was found serving (a scanner or a crawler saw it):
#: its port is a service port. For every other compromised or misbehaving event the source
#: made the connection (to a sinkhole, a honeypot, a spam trap) and its port is the
#: client's, ephemeral, shown as such and never part of the finding (``finding_id``).
SERVING_TYPES = frozenset({
    "c2-server",
    "malware-distribution",
    "malware-configuration",
    "phishing",
    "system-compromise",
    "application-compromise",
    "unauthorised-information-modification",
    "proxy",
})  # fmt: skip
#: ``classification.taxonomy`` → kind, for an event that names no (known) type.
BY_TAXONOMY = {
    "vulnerable": VULNERABLE,
    "malicious-code": COMPROMISED,
    "intrusions": COMPROMISED,
    "abusive-content": MISBEHAVING,
    "availability": MISBEHAVING,
    "fraud": MISBEHAVING,
    "information-gathering": MISBEHAVING,
    "intrusion-attempts": MISBEHAVING,
    "information-content-security": EXPOSED,
    "other": EXPOSED,
    "test": EXPOSED,
}
#: Words in ``classification.identifier`` that are evidence of compromise on a vulnerable
#: system (Shadowserver's ``exchange-server-webshell``, an SMB implant, a backdoor).
COMPROMISE_MARKERS = ("webshell", "backdoor", "implant", "compromise", "doublepulsar")
#: Extra fields of feeds that say a scanned system carries an implant (Shadowserver's SMB
#: report: ``extra.smb_implant``).
IMPLANT_FIELDS = ("extra.smb_implant",)
#: What an event without any classification is: researchers' findings were vulnerable
#: before kinds existed, and a finding id of theirs keeps its meaning.
DEFAULT = VULNERABLE
#: Fields the digest output's ``kinds_of_abuse`` parameter may name.
RULE_FIELDS = (
    "feed.provider",
    "feed.name",
    "feed.code",
    "classification.taxonomy",
    "classification.type",
    "classification.identifier",
    "malware.name",
)
#: The fields :func:`kind_of` reads.
FIELDS = (FIELD, "classification.taxonomy", "classification.type", "classification.identifier", "malware.name")


class UnknownKind(ValueError):
    """A kind named explicitly is not one of :data:`KINDS`; ``field`` says where it was."""

    def __init__(self, field: str, value):
        super().__init__(f"{value!r} is not a kind of abuse: use {', '.join(KINDS)}")
        self.field, self.value = field, value


def check(value, field: str = FIELD) -> str:
    """``value`` as a kind; raises UnknownKind naming ``field``."""
    kind = str(value).strip().lower() if value is not None else ""
    if kind not in KINDS:
        raise UnknownKind(field, value)
    return kind


def check_rules(rules) -> dict:
    """The ``kinds_of_abuse`` parameter (``{field: {value: kind}}``) checked; raises
    ValueError saying which part is wrong."""
    if not rules:
        return {}
    if not isinstance(rules, Mapping):
        raise ValueError("kinds_of_abuse must map a field to {value: kind}")
    checked = {}
    for field, values in rules.items():
        if field not in RULE_FIELDS:
            raise ValueError(f"kinds_of_abuse names {field!r}; it may name {', '.join(RULE_FIELDS)}")
        if not isinstance(values, Mapping):
            raise ValueError(f"kinds_of_abuse[{field!r}] must map a value to a kind")
        try:
            checked[field] = {str(v).lower(): check(k) for v, k in values.items()}
        except UnknownKind as exc:
            raise ValueError(f"kinds_of_abuse[{field!r}]: {exc}") from None
    return checked


def _truthy(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "y", "1")


def kind_of(event: Mapping, rules: Optional[Mapping] = None) -> str:
    """The kind of abuse of ``event`` (a mapping of IntelMQ's flat keys): ``extra.nsm.kind``,
    else the first rule of ``rules`` (checked by :func:`check_rules`) whose field has a
    listed value, else the mapping of its type (or taxonomy). Raises UnknownKind for an
    ``extra.nsm.kind`` that names none."""
    explicit = event.get(FIELD)
    if explicit not in (None, ""):
        return check(explicit)
    for field, values in (rules or {}).items():
        value = event.get(field)
        if value not in (None, "") and str(value).lower() in values:
            return values[str(value).lower()]
    kind = BY_TYPE.get(event.get("classification.type") or "")
    if kind is None:
        kind = BY_TAXONOMY.get(event.get("classification.taxonomy") or "", DEFAULT)
    if kind == VULNERABLE and _compromised(event):
        return COMPROMISED
    return kind


def _compromised(event: Mapping) -> bool:
    """A vulnerable system with evidence of compromise."""
    identifier = str(event.get("classification.identifier") or "").lower()
    if any(marker in identifier for marker in COMPROMISE_MARKERS):
        return True
    if event.get("malware.name"):
        return True
    return any(_truthy(event.get(field)) for field in IMPLANT_FIELDS if event.get(field) not in (None, ""))
