"""What the demo prints: who got which findings, by kind of abuse and by source (the
researchers' reports, the feed's), and what went to the _default path; for round two (the
rescan a week later) what each organisation got by kind of notice, and the cases'
statistics from the ledger. ``Tally`` reads it from a running chain after each round."""

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from intelmq_nsm.abuse_kinds import KINDS as KINDS_OF_ABUSE
from intelmq_nsm.demo.mails import render as render_mails
from intelmq_nsm.digest.event_findings import NOT_VULNERABLE
from intelmq_nsm.event_contract import RESULT
from intelmq_nsm.testbed.chain import DIGEST_MODULE, FILE_OUTPUT_MODULE
from intelmq_nsm.testbed.pipeline import Pipeline
from intelmq_nsm.testbed.spools import spool_digests

KINDS = ("new", "reminder", "reopened", "fixed", "not-seen")
#: Notices that end a finding's story rather than ask for action.
ENDED = ("fixed", "not-seen")
#: Round two's news per organisation, by kind of notice.
ENDINGS = (("reopened", "found again"), ("fixed", "verified fixed"), ("not-seen", "no longer seen"))


def _table(header: tuple, body: list) -> list:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


@dataclass
class Summary:
    """Who got what: digests per organisation, and what went to the _default path."""

    #: one dict per organisation: organisation, name, constituency, channels, findings
    #: (their addresses, verified fixes left out), kinds (addresses per kind: new,
    #: reminder, reopened, fixed, not-seen), abuse (addresses per kind of abuse: compromised,
    #: misbehaving, vulnerable, exposed), sources (addresses per source: the feed's provider),
    #: cases, digests (ids), failed (digests not delivered)
    rows: list = field(default_factory=list)
    default_findings: list = field(default_factory=list)  # addresses of what went to _default
    mails: int = 0
    files: int = 0
    submitted: list = field(default_factory=list)  # (file name, HTTP status, submission id)
    feeds: list = field(default_factory=list)  # the feed's reports delivered to its collector
    dumped: dict = field(default_factory=dict)  # bot id -> number of dumped messages
    round_no: int = 1
    #: Round two: the owners' answers recorded before the rescan, and per constituency,
    #: per case, the ledger's counts (findings, notified, open, fixed_verified, reopened, by_state).
    answers: list = field(default_factory=list)
    cases: dict = field(default_factory=dict)
    round_two: Optional["Summary"] = None
    refused: list = field(default_factory=list)  # rescan reports the intake refused, with why
    #: The last step: the owners' answers made on the feedback service's page, and per case
    #: the researcher's view (GET /v1/cases/<id>) and the path of its saved chart.
    feedback: dict = field(default_factory=dict)
    #: The mails the SMTP sink received: signed with which key, their TLP labels and
    #: languages, where they are kept, one checked with gpg (demo.mails.mail_report).
    mail_report: dict = field(default_factory=dict)

    def _sorted_rows(self) -> list:
        return sorted(self.rows, key=lambda r: (r["constituency"], r["organisation"]))

    def render(self) -> str:
        lines = [] if self.round_no == 1 else ["Round two: the researchers' rescan a week later", ""]
        if self.round_no == 1:
            header = ("Organisation", "Constituency", "Findings", "By kind", "Cases", "Delivered by", "Digests")
            body = [
                (
                    f"{r['organisation']} {r['name']}",
                    r["constituency"],
                    str(len(r["findings"])),
                    _by_kind(r),
                    ", ".join(r["cases"]) or "-",
                    "+".join(r["channels"]) or "-",
                    ", ".join(d[:12] for d in r["digests"]),
                )
                for r in self._sorted_rows()
            ]
            lines += _table(header, body)
            lines += ["", "By source and kind of abuse:"]
            lines += _table(("Source", *KINDS_OF_ABUSE), self._by_source())
            for r in self._sorted_rows():
                for kind in KINDS_OF_ABUSE:
                    if kind != "vulnerable" and r["abuse"].get(kind):
                        lines.append(f"  {r['organisation']} {r['name']}, {kind}: {', '.join(r['abuse'][kind])}")
        else:
            header = ("Organisation", "Constituency", "New", "Reminders", "Reopened", "Fixed", "Not seen", "Digests")
            body = [
                (
                    f"{r['organisation']} {r['name']}",
                    r["constituency"],
                    *(str(len(r["kinds"].get(kind, []))) for kind in KINDS),
                    ", ".join(d[:12] for d in r["digests"]),
                )
                for r in self._sorted_rows()
            ]
            lines += _table(header, body)
            for r in self._sorted_rows():
                for kind, label in (
                    ("reopened", "found again"),
                    ("fixed", "verified fixed"),
                    ("not-seen", "no longer seen"),
                ):
                    if r["kinds"].get(kind):
                        lines.append(f"  {r['organisation']} {r['name']}, {label}: {', '.join(r['kinds'][kind])}")
                for address in r.get("still_seen", []):
                    lines.append(f"  {r['organisation']} {r['name']}, still seen by the feed: {address} (a reminder)")
        by_kind = collections.Counter({k: sum(len(r["abuse"].get(k, [])) for r in self.rows) for k in KINDS_OF_ABUSE})
        kinds = ", ".join(f"{n} {kind}" for kind, n in by_kind.items() if n) or "none"
        lines += [
            "",
            f"{sum(len(r['findings']) for r in self.rows)} findings ({kinds}) and "
            f"{sum(len(r['kinds'].get('fixed', [])) for r in self.rows)} verified fixes in "
            f"{sum(len(r['digests']) for r in self.rows)} digests to {len(self.rows)} organisations "
            f"({self.mails} mails received by the SMTP sink, {self.files} digest files written).",
            f"{len(self.default_findings)} findings claimed by no constituency went to the _default path: "
            + (", ".join(sorted(self.default_findings)) or "none")
            + ".",
        ]
        lines += [f"NOT DELIVERED to {r['organisation']}: {failure}" for r in self.rows for failure in r["failed"]]
        lines += [f"REFUSED by the intake: {reason}" for reason in self.refused]
        if self.dumped:
            lines.append("Dumped messages (bad records): " + ", ".join(f"{b}: {n}" for b, n in self.dumped.items()))
        if self.cases:
            lines += ["", "Cases in the ledger after round two:"]
            header = ("Constituency", "Case", "Findings", "Notified", "Open", "Fixed (verified)", "Reopened", "States")
            body = [
                (
                    constituency,
                    case,
                    str(c["findings"]),
                    str(c["notified"]),
                    str(c["open"]),
                    str(c["fixed_verified"]),
                    str(c["reopened"]),
                    ", ".join(f"{s} {n}" for s, n in sorted(c["by_state"].items())),
                )
                for constituency, cases in sorted(self.cases.items())
                for case, c in sorted(cases.items())
            ]
            lines += _table(header, body)
        if self.round_two is not None:
            lines += ["", "", self.round_two.render()]
        if self.feedback:
            lines += ["", "", "The owners' answers on the feedback service's page:"]
            for a in self.feedback["answers"]:
                lines.append(f"  {a['organisation']} {a['target']} ({a['case_id']}): {a['choice']} -> {a['state']}")
            for case_id, view in sorted(self.feedback["cases"].items()):
                lines += ["", f"The researcher's view of {case_id} (GET /v1/cases/{case_id}):"]
                lines += json.dumps(view, indent=2, ensure_ascii=False).splitlines()
                lines.append(f"Chart: {self.feedback['charts'][case_id]}")
        if self.mail_report:
            lines += ["", "", *render_mails(self.mail_report)]
        return "\n".join(lines)

    def _by_source(self) -> list:
        """One line per source (the feed's provider): how many findings of each kind of abuse."""
        counts = collections.defaultdict(collections.Counter)
        for r in self.rows:
            for source, by_kind in r["sources"].items():
                for kind, addresses in by_kind.items():
                    counts[source][kind] += len(addresses)
        return [(source, *(str(counts[source][k]) for k in KINDS_OF_ABUSE)) for source in sorted(counts)]

    def as_json(self) -> dict:
        """Both rounds: per organisation the findings by kind; per case the counts by state."""
        rounds = []
        for summary in (self, self.round_two):
            if summary is None:
                continue
            rounds.append({
                "round": summary.round_no,
                "submitted": [{"report": n, "status": s, "submission": i} for n, s, i in summary.submitted],
                "feeds": summary.feeds,
                "organisations": {
                    r["organisation"]: {
                        "name": r["name"],
                        "constituency": r["constituency"],
                        "kinds": {kind: r["kinds"].get(kind, []) for kind in KINDS},
                        "kinds_of_abuse": {kind: r["abuse"].get(kind, []) for kind in KINDS_OF_ABUSE},
                        "sources": r["sources"],
                        "digests": r["digests"],
                        "channels": r["channels"],
                    }
                    for r in summary._sorted_rows()
                },
                "default_path": sorted(summary.default_findings),
                "mails": summary.mails,
                "files": summary.files,
                "answers": summary.answers,
                "refused": summary.refused,
            })  # fmt: skip
        cases = self.round_two.cases if self.round_two is not None else self.cases
        result = {"rounds": rounds, "cases": cases, "dumped": (self.round_two or self).dumped}
        if self.feedback:
            result["feedback"] = self.feedback
        if self.mail_report:
            result["mail"] = self.mail_report
        return result


def _by_kind(row: dict) -> str:
    """``compromised 1, exposed 1``: an organisation's findings per kind of abuse."""
    return ", ".join(f"{kind} {len(row['abuse'][kind])}" for kind in KINDS_OF_ABUSE if row["abuse"].get(kind)) or "-"


def source_of(finding: dict) -> str:
    """Who reported a finding: its feed's provider (``DIVD`` of ``DIVD / Researcher intake``)."""
    return (finding.get("feed") or "unknown").split(" / ")[0]


def finding_address(finding: dict) -> str:
    """What a person recognises a finding by: its URL, else host name, else address and port."""
    if finding.get("url"):
        return finding["url"]
    host = finding.get("fqdn") or finding.get("ip") or "?"
    if not finding.get("port"):
        return host
    return f"[{host}]:{finding['port']}" if ":" in host else f"{host}:{finding['port']}"


def event_finding(event: dict) -> dict:
    """The digest row fields of an IntelMQ event, for findings that left on _default."""
    return {
        "url": event.get("source.url"),
        "fqdn": event.get("source.fqdn"),
        "ip": event.get("source.ip"),
        "port": event.get("source.port"),
    }


class Tally:
    """Reads who got what from a running ExampleChain, round after round: what a round
    added to the SMTP sink and the _default file outputs is counted in that round only."""

    def __init__(self, chain):
        self.chain = chain
        self.mails_before = []  # mails the sink had received in the rounds before
        self.default_seen = collections.Counter()  # events of the _default file outputs summarised

    def summarise(self, summary: Summary, exclude=frozenset()) -> Summary:
        """One row per organisation over all digest bots: its findings (by kind), cases,
        digests, channels; digests in ``exclude`` (an earlier round's) are left out."""
        per_org = {}
        for bot in self.chain.bots(DIGEST_MODULE).values():
            parameters = bot["parameters"]
            channel = parameters.get("channel", "file")
            for state, digest in spool_digests(Path(parameters["spool_file"])):
                if digest.id in exclude:
                    continue
                org = digest.organisation
                entry = per_org.setdefault(
                    (org["id"], digest.constituency),
                    {
                        "organisation": org["id"],
                        "name": org.get("name", ""),
                        "constituency": digest.constituency,
                        "channels": set(),
                        "findings": set(),
                        "cases": set(),
                        "digests": set(),
                        "failed": [],
                        "kinds": {},
                        "abuse": {},
                        "sources": {},
                    },
                )
                if state != "delivered":
                    entry["failed"].append(f"{channel} {digest.id[:12]}: {digest.last_error}")
                    continue
                entry["channels"].add(channel)
                # The same finding reaches several channels: count it once.
                entry["findings"] |= {finding_address(f) for f in digest.findings if f.get("kind") != "fixed"}
                for f in digest.findings:
                    entry["kinds"].setdefault(f.get("kind") or "new", set()).add(finding_address(f))
                    if (f.get("kind") or "new") in ENDED:
                        continue
                    abuse = f.get("kind_of_abuse") or "vulnerable"
                    entry["abuse"].setdefault(abuse, set()).add(finding_address(f))
                    entry["sources"].setdefault(source_of(f), {}).setdefault(abuse, set()).add(finding_address(f))
                entry["cases"] |= {f["case_id"] for f in digest.findings if f.get("case_id")}
                entry["digests"].add(digest.id)
            if channel == "file" and parameters.get("file_directory"):
                written = Path(parameters["file_directory"]).glob("*.json")
                summary.files += len([p for p in written if p.stem not in exclude])
        for entry in per_org.values():
            still = entry["kinds"].get("reminder", set()) & (
                entry["abuse"].get("compromised", set()) | entry["abuse"].get("misbehaving", set())
            )
            entry["still_seen"] = sorted(still)
            entry["kinds"] = {kind: sorted(addresses) for kind, addresses in entry["kinds"].items()}
            entry["abuse"] = {kind: sorted(addresses) for kind, addresses in entry["abuse"].items()}
            entry["sources"] = {
                source: {kind: sorted(addresses) for kind, addresses in by_kind.items()}
                for source, by_kind in entry["sources"].items()
            }
            summary.rows.append({key: sorted(v) if isinstance(v, set) else v for key, v in entry.items()})
        summary.mails = len(self.chain.sink.messages) - sum(self.mails_before)
        self.mails_before.append(summary.mails)
        for bot_id, bot in self.chain.bots(FILE_OUTPUT_MODULE).items():
            events = Pipeline.read_file_output(Path(bot["parameters"]["file"]))
            summary.default_findings += [
                finding_address(event_finding(e)) + (" (not vulnerable)" if e.get(RESULT) == NOT_VULNERABLE else "")
                for e in events[self.default_seen[bot_id] :]
            ]
            self.default_seen[bot_id] = len(events)
        summary.dumped = {bot_id: len(entries) for bot_id, entries in self.chain.pipeline.dumps().items()}
        return summary
