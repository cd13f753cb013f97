"""The example in two tiers (``intelmq-nsm demo --tiers 2``, what ``scripts/main`` runs): the
Meldpunt hub and the sectoral CERTs' own instances of ``runtime-examples/two-tiers``.

Each instance is an IntelMQ root of its own (the test bed's ``Tiers``); the hub's private
RabbitMQ carries the forward leg (a virtual host per CERT), the hub's feedback service takes
the return leg (``POST /v1/outcomes``). The CERTs publish their claims, the hub's expert
takes them. Researchers submit the sample reports (and the feed its reports) to the hub; the
hub routes to the IBD's and SURFcert's instances; the IBD mails its municipalities (an SMTP
sink) and its owners answer on its feedback service's page, one answer of each kind; a week
later the rescan, submitted to the hub, is verified at the CERTs; what each CERT's ledger
says goes back to the hub, and the researcher's ``GET /v1/cases/<id>`` on the hub's intake
shows it per constituency (the ``downstream`` block).

Both feedback services run on the example's own configurations where an instance's folder
has one (``hub/feedback.yaml``, ``ibd/feedback.yaml``), laid out as the runtimes are; they
are read and checked against the runtimes before anything starts.
"""

import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.example import preflight_signing
from intelmq_nsm.demo.feedback_round import FeedbackRound, researcher_view
from intelmq_nsm.demo.mails import FOLDER, prepare
from intelmq_nsm.demo.rounds import RESCAN, ROUND_TWO_CLOCK, case_statistics, deliver_feeds, submit_all
from intelmq_nsm.demo.summary import Summary, Tally
from intelmq_nsm.testbed.chain import example_reports
from intelmq_nsm.testbed.pipeline import VENV_BIN, Pipeline
from intelmq_nsm.testbed.rabbitmq import RabbitMQServer, rabbitmq_available
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from intelmq_nsm.testbed.tiers import Tiers, read_tiers

CHECKOUT = Path(__file__).resolve().parents[2] / "runtime-examples"
TWO_TIERS = CHECKOUT / "two-tiers"
SNIPPETS = CHECKOUT / "forward-leg"
#: The CERT whose owners answer on its feedback service's page.
ANSWERING = "ibd"


class TwoTierDemo:
    """One run of the two-tier example; ``run()`` returns ``{"hub": ..., <CERT key>: Summary}``."""

    def __init__(
        self,
        workdir: Path,
        folder: Path = TWO_TIERS,
        progress: Callable[[str], None] = print,
        timeout: float = 300.0,
        charts: Optional[Path] = None,
        rabbitmq=None,
        pipeline_class=Pipeline,
    ):
        self.workdir, self.folder, self.progress = Path(workdir), Path(folder), progress
        self.timeout, self.charts = timeout, Path(charts) if charts is not None else Path("charts")
        self.rabbitmq, self._own_rabbitmq = rabbitmq, False
        self.pipeline_class = pipeline_class
        self.mails = (self.workdir / FOLDER).resolve()
        self.feedback = FeedbackRound(self.workdir / ANSWERING, progress)  # the IBD's owners' page
        self.tiers: Optional[Tiers] = None

    def preflight(self) -> tuple:
        """Check what the demo needs before starting anything; ``(hub, [CERTs])``, the
        example's tiers, their feedback services' configurations read and checked."""
        if not (VENV_BIN / "intelmqctl").exists():
            raise DemoError(f"intelmqctl is not in {VENV_BIN}: install intelmq-nsm (scripts/main does).")
        if not (self.folder / "hub" / "runtime.yaml").exists():
            raise DemoError(f"No two-tier example in {self.folder} (runtime-examples/two-tiers of a source checkout).")
        hub, certs = read_tiers(self.folder)
        answering = [tier for tier in certs if tier.name == ANSWERING]
        if not answering:
            raise DemoError(f"No {ANSWERING}/ instance in {self.folder}: the demo's owners answer on its page.")
        # The IBD's owners' page as its folder configures it (else one the demo writes).
        self.feedback.configured = answering[0].feedback
        for tier in certs:
            preflight_signing(tier.runtime)
        if self.rabbitmq is None and not rabbitmq_available():
            raise DemoError(
                "The two tiers need Debian's rabbitmq-server (/usr/lib/rabbitmq/bin) between the hub and the "
                "CERTs' instances (scripts/main as root installs it)."
            )
        return hub, certs

    def run(self) -> dict:
        hub, certs = self.preflight()
        prepare(self.mails)
        try:
            if self.rabbitmq is None:
                self.progress("Starting the hub's private RabbitMQ (/usr/lib/rabbitmq/bin/rabbitmq-server).")
                # Its management API off port 15672: no intelmqctl reads this node's queues.
                self.rabbitmq, self._own_rabbitmq = RabbitMQServer(intelmqctl_port=False).start(), True
            self.tiers = tiers = Tiers(
                hub,
                certs,
                SNIPPETS,
                self.workdir,
                self.rabbitmq,
                return_leg=True,
                pipeline_class=self.pipeline_class,
                sink_factory=lambda: SmtpSink(keep=self.mails),
                progress=self.progress,
                timeout=self.timeout,
            )
            tiers.start(before={ANSWERING: self.feedback.start})
            return self.play(tiers)
        finally:
            self.close()

    def play(self, tiers: Tiers) -> dict:
        hub, certs = tiers.hub, {t.name: tiers.chains[t.name] for t in tiers.cert_tiers}
        tallies = {key: Tally(chain) for key, chain in certs.items()}
        submitted, feeds = [], []
        submit_all(hub, hub.reports(), submitted, self.progress)
        deliver_feeds(hub, hub.feeds(), feeds, self.progress)
        self.progress("Waiting until the hub has forwarded every finding and each CERT has delivered it.")
        tiers.wait_until_delivered()
        summaries = {key: tallies[key].summarise(Summary()) for key in certs}
        for summary in summaries.values():
            summary.submitted, summary.feeds = submitted, feeds
        answered = self.answer(certs[ANSWERING])
        # The researchers' view is the hub's (below), not the IBD's.
        summaries[ANSWERING].feedback = {"answers": answered, "cases": {}, "charts": {}}
        before = {key: {d.id for _, d in chain.digests()} for key, chain in certs.items()}
        self.progress(f"Round two: the rescan, {ROUND_TWO_CLOCK // 86400} days later on the CERTs' outputs' clock.")
        for chain in certs.values():
            chain.set_clock(ROUND_TWO_CLOCK)
        second, second_feeds = [], []
        submit_all(hub, example_reports(hub.example, RESCAN), second, self.progress)
        deliver_feeds(hub, hub.feeds(RESCAN), second_feeds, self.progress)
        tiers.wait_until_delivered()
        for key, chain in certs.items():
            summary = Summary(round_no=2, submitted=second, feeds=second_feeds)
            summaries[key].round_two = tallies[key].summarise(summary, exclude=before[key])
            summaries[key].round_two.cases = case_statistics(chain)
        self.progress("Waiting until every CERT's outbox has reached the hub.")
        tiers.wait_until_returned()
        return {"hub": self.hub_view(tiers), **summaries}

    def answer(self, chain) -> list:
        self.progress(f"The {ANSWERING.upper()}'s owners answer on its feedback service's page, one of each kind.")
        return self.feedback.answer(chain)

    def hub_view(self, tiers: Tiers) -> dict:
        """At the hub: what it forwarded to each CERT and in which state each CERT says it is,
        and the researcher's view of each case."""
        ledger = tiers.outcomes.ledger()
        try:
            records = ledger.records()
        finally:
            ledger.close()
        forwarded = Counter(r["constituency"] for r in records)
        states = {key: dict(Counter(r["state"] for r in records if r["constituency"] == key)) for key in forwarded}
        case_ids = {r["case_id"] for r in records if r["case_id"]}
        self.progress("The researcher asks the hub's intake what became of each case (GET /v1/cases/<id>).")
        views, charts = researcher_view(tiers.hub.intake, case_ids, self.charts)
        return {"forwarded": dict(forwarded), "by_state": states, "cases": views, "charts": charts}

    def close(self) -> None:
        if self.tiers is not None:
            self.tiers.close()
        with contextlib.suppress(Exception):
            self.feedback.stop()
        if self._own_rabbitmq and self.rabbitmq is not None:
            self.rabbitmq.stop()


def render(result: dict) -> list:
    """The printed summary: each CERT's as the one-installation demo prints it, then the hub's."""
    lines = []
    for key, summary in result.items():
        if key == "hub":
            continue
        lines += [f"== {key.upper()}'s instance", "", *summary.render().splitlines(), ""]
    hub = result["hub"]
    lines += ["== The Meldpunt hub", ""]
    for key in sorted(hub["forwarded"]):
        states = ", ".join(f"{s} {n}" for s, n in sorted(hub["by_state"][key].items()))
        lines.append(f"Forwarded to {key}: {hub['forwarded'][key]} findings; as {key} reports them: {states}")
    for case_id, view in sorted(hub["cases"].items()):
        lines += ["", f"The researcher's view of {case_id} at the hub (GET /v1/cases/{case_id}):"]
        for constituency in view.get("constituencies", []):
            down = constituency.get("downstream") or {}
            states = ", ".join(f"{s} {n}" for s, n in sorted(down.get("by_state", {}).items()))
            lines.append(
                f"  {constituency['constituency']}: forwarded {constituency.get('findings', 0)}, "
                f"reported on by the CERT {down.get('reported', 0)}: {states or '-'}"
            )
            for org in down.get("organisations", []):
                org_states = ", ".join(f"{s} {n}" for s, n in sorted(org.get("by_state", {}).items()))
                lines.append(f"    {org.get('name') or org.get('id')}: {org_states}")
        lines += json.dumps(view, indent=2, ensure_ascii=False).splitlines()
    return lines


def as_json(result: dict) -> dict:
    return {"tiers": 2, **{key: value if key == "hub" else value.as_json() for key, value in result.items()}}
