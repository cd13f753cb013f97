"""What the demo prints: who got which findings, and what went to the _default path."""

from dataclasses import dataclass, field


@dataclass
class Summary:
    """Who got what: digests per organisation, and what went to the _default path."""

    #: one dict per organisation: organisation, name, constituency, channels, findings
    #: (their addresses), cases, digests (ids), failed (digests that could not be delivered)
    rows: list = field(default_factory=list)
    default_findings: list = field(default_factory=list)  # addresses of what went to _default
    mails: int = 0
    files: int = 0
    submitted: list = field(default_factory=list)  # (file name, HTTP status, submission id)
    dumped: dict = field(default_factory=dict)  # bot id -> number of dumped messages

    def render(self) -> str:
        header = ("Organisation", "Constituency", "Findings", "Cases", "Delivered by", "Digests")
        body = [
            (
                f"{r['organisation']} {r['name']}",
                r["constituency"],
                str(len(r["findings"])),
                ", ".join(r["cases"]) or "-",
                "+".join(r["channels"]) or "-",
                ", ".join(d[:12] for d in r["digests"]),
            )
            for r in sorted(self.rows, key=lambda r: (r["constituency"], r["organisation"]))
        ]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [
            "",
            f"{sum(len(r['findings']) for r in self.rows)} findings in {sum(len(r['digests']) for r in self.rows)} "
            f"digests to {len(self.rows)} organisations ({self.mails} mails received by the SMTP sink, "
            f"{self.files} digest files written).",
            f"{len(self.default_findings)} findings claimed by no constituency went to the _default path: "
            + (", ".join(sorted(self.default_findings)) or "none")
            + ".",
        ]
        lines += [f"NOT DELIVERED to {r['organisation']}: {failure}" for r in self.rows for failure in r["failed"]]
        if self.dumped:
            lines.append("Dumped messages (bad records): " + ", ".join(f"{b}: {n}" for b, n in self.dumped.items()))
        return "\n".join(lines)
