"""The demo's last step: owners answer through the real feedback service, and the researcher
looks at what became of each case through the intake's API.

The feedback service (``intelmq-nsm serve``'s server, here in the demo's process) listens
on loopback and serves the mail digest output's ledger; that output puts links to it into
its digests. One owner answer of each kind is made as a browser would: the link taken
from a mail the SMTP sink received, the page fetched for its form token, the form posted.
Then ``GET /v1/cases/<id>`` and its chart with the researcher's own token; each chart is
kept in the charts folder the demo was given.
"""

import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.digest.ledger import Ledger, sqlite_url
from intelmq_nsm.testbed.chain import DIGEST_MODULE
from intelmq_nsm.testbed.client import OwnerClient, Refused
from intelmq_nsm.testbed.pipeline import LOOPBACK, free_port

#: One answer per kind, with the comment an owner might give.
ANSWERS = (
    ("fixed", "Bijgewerkt naar de nieuwste versie."),
    ("accepted-risk", "Alleen bereikbaar vanaf ons beheernetwerk; we laten het zo."),
    ("not-ours", "Dit adres hoort bij onze hostingpartij, niet bij ons."),
    ("false-positive", "Een honeypot van ons eigen SOC."),
)
#: States a finding may be answered from in the demo (not answered before).
ANSWERABLE = ("notified", "reopened")
LINK = re.compile(r"http://[0-9.:\[\]]+/feedback\?link=[A-Za-z0-9_.%-]+")


class FeedbackRound:
    """The feedback service beside the example chain, and the round of answers on it."""

    def __init__(self, workdir: Path, progress):
        self.workdir = Path(workdir)
        self.progress = progress
        self.server = None  # the feedback service, serving the mail output's ledger
        self.output = None  # that output's bot id

    def start(self, runtime: dict) -> None:
        """The feedback service for the first mail digest output of the (localised)
        ``runtime``, whose digests then carry its links."""
        mail = [
            b for b, bot in runtime.items() if bot.get("module") == DIGEST_MODULE and "smtp_port" in bot["parameters"]
        ]
        if not mail:
            return
        self.output = mail[0]
        parameters = runtime[self.output]["parameters"]
        port = free_port()
        secret = self.workdir / "etc" / "nsm" / "feedback-secret"
        secret.parent.mkdir(parents=True, exist_ok=True)
        self.server = start_service(Path(parameters["spool_file"]), self.output, secret, port)
        parameters["feedback_base_url"] = f"http://{LOOPBACK}:{port}"
        parameters["feedback_secret_file"] = str(secret)
        self.progress(f"Started the feedback service on {LOOPBACK}:{port} for the digests of {self.output}.")

    def run(self, chain, charts: Path) -> dict:
        """One owner answer per kind through the feedback service; the researcher's view of each case."""
        self.progress("The owners answer on the feedback service's page, one answer of each kind.")
        parameters = chain.pipeline.runtime[self.output]["parameters"]
        ledger = Ledger(sqlite_url(parameters["spool_file"]), name=self.output)
        try:
            answered = answer_once_per_kind(self.server, chain.sink.messages, ledger, self.progress)
            case_ids = {r["case_id"] for r in ledger.records() if r["case_id"]}
        finally:
            ledger.close()
        for _, other in chain.ledgers():
            try:
                case_ids |= {r["case_id"] for r in other.records() if r["case_id"]}
            finally:
                other.close()
        self.progress("The researcher asks the intake what became of each case (GET /v1/cases/<id>).")
        views, kept = researcher_view(chain.intake, case_ids, charts)
        return {"answers": answered, "cases": views, "charts": kept}

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.context.store.close()


def start_service(spool_file: Path, ledger_name: str, secret_file: Path, port: int):
    """The feedback service on ``port`` for the ledger in ``spool_file`` (started)."""
    from intelmq_nsm.feedback.config import ServiceConfig
    from intelmq_nsm.feedback.links import create_secret
    from intelmq_nsm.feedback.service import build

    create_secret(secret_file)
    spool_file.parent.mkdir(parents=True, exist_ok=True)
    config = ServiceConfig(
        ledger_url=sqlite_url(spool_file),
        ledger_name=ledger_name,
        secret_file=str(secret_file),
        host=LOOPBACK,
        port=port,
    )
    return build(config, logging.getLogger("intelmq-nsm.demo.feedback")).start()


def mailed_links(messages) -> list:
    """Every feedback link in the text of the mails received, newest mail first."""
    links = []
    for received in reversed(messages):
        message = received[-1]  # (recipients, ..., message)
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                links += LINK.findall(part.get_content())
    return links


def answer_once_per_kind(server, messages, ledger, progress) -> list:
    """Post one answer of each kind through the service's page; what was answered."""
    from intelmq_nsm.feedback.links import LinkError

    signer = server.context.signer
    states = {(r["finding_id"], r["org_id"]): r for r in ledger.records()}
    candidates, seen = [], set()
    for url in mailed_links(messages):
        token = parse_qs(urlparse(url).query)["link"][0]
        try:
            link = signer.verify(token)
        except LinkError:
            continue
        key = (link.finding_id, link.org_id)
        if link.finding_id is None or key in seen or states.get(key, {}).get("state") not in ANSWERABLE:
            continue
        seen.add(key)
        candidates.append((url, link))
    if len(candidates) < len(ANSWERS):
        raise DemoError(f"The digests hold {len(candidates)} answerable findings; the demo answers {len(ANSWERS)}.")
    answered = []
    with OwnerClient() as owner:
        for (choice, comment), (url, link) in zip(ANSWERS, candidates):
            try:
                confirmation = owner.answer(url, link.finding_id, choice, comment)
            except Refused as exc:
                raise DemoError(f"{link.org_id}: {exc}") from exc
            record = next(r for r in ledger.records(org_id=link.org_id) if r["finding_id"] == link.finding_id)
            answered.append(
                {
                    "choice": choice,
                    "comment": comment,
                    "organisation": link.org_id,
                    "finding_id": link.finding_id,
                    "target": record["target"],
                    "case_id": record["case_id"],
                    "state": record["state"],
                    "confirmation_status": confirmation,
                }
            )
            progress(f"{link.org_id} answered {choice} for {record['target']} on the owners' page: {record['state']}.")
    return answered


def researcher_view(intake, case_ids, chart_dir: Path) -> tuple:
    """``({case id: GET /v1/cases/<id> JSON}, {case id: path of the saved chart})`` through
    the researcher's IntakeClient ``intake``; the charts are written to ``chart_dir``."""
    chart_dir = Path(chart_dir).resolve()
    chart_dir.mkdir(parents=True, exist_ok=True)
    views, charts = {}, {}
    for case_id in sorted(case_ids):
        try:
            views[case_id] = intake.case(case_id)
            chart = intake.chart(case_id)
        except Refused as exc:
            raise DemoError(str(exc)) from exc
        path = chart_dir / f"{case_id}.svg"
        path.write_bytes(chart)
        charts[case_id] = str(path)
    return views, charts
