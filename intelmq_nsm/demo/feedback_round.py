"""The demo's last step: owners answer through the real feedback service, and the researcher
looks at what became of each case through the intake's API.

The feedback service (``intelmq-nsm serve``'s server, here in the demo's process) listens
on loopback and serves the mail digest output's ledger; that output puts links to it into
its digests. It runs on the files an operator's would: its configuration, secret, the
ticket system's and the operators' token files, and for the demo the two tokens in clear
(``feedback-token.txt``, ``operator-token.txt``, beside their token files). The
configuration is the example's own feedback.yaml where the demo is given one (the two-tier
demo: an instance's folder; laid out by the test bed's ``FeedbackFile``, it names the
ledger and so the output), else one the demo writes (``etc/nsm/feedback.yaml`` in the
demo's folder, paths relative to it). ``--workdir`` keeps them with the ledger, so that
``intelmq-nsm serve --config <workdir>/etc/nsm/feedback.yaml`` serves the kept state
again. One owner answer of each kind is made as a browser would: the link taken
from a mail the SMTP sink received, the page fetched for its form token, the form posted.
Then ``GET /v1/cases/<id>`` and its chart with the researcher's own token; each chart is
kept in the charts folder the demo was given.
"""

import logging
import os
import re
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlparse

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.digest.ledger import sqlite_path
from intelmq_nsm.testbed.chain import DIGEST_MODULE
from intelmq_nsm.testbed.client import OwnerClient, Refused
from intelmq_nsm.testbed.feedback_file import FeedbackFile
from intelmq_nsm.testbed.layout import bots_of
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
#: The service's files in the demo's folder, as an operator keeps them under /opt/intelmq/etc/nsm/.
SERVICE_FOLDER = Path("etc") / "nsm"
CONFIG_FILE = "feedback.yaml"
#: The tokens the demo makes for the service where its configuration names their files,
#: each also in clear beside its file (this is a demo): ``(key, clear file's name, who, feed code)``.
DEMO_TOKENS = (
    ("tokens_file", "feedback-token.txt", "IBD-tickets", "feedback"),
    ("operator_tokens_file", "operator-token.txt", "IBD operator", "operators"),
)


class FeedbackRound:
    """The feedback service beside the example chain, and the round of answers on it."""

    def __init__(self, workdir: Path, progress, configured: Optional[FeedbackFile] = None):
        self.workdir = Path(workdir)
        self.progress = progress
        #: The example's feedback.yaml (paths as it writes them), laid out in ``workdir`` at
        #: start; None: the demo writes a configuration of its own.
        self.configured = configured
        self.server = None  # the feedback service, serving the mail output's ledger
        self.output = None  # that output's bot id
        self.config_file = None  # its configuration, kept with --workdir

    def start(self, runtime: dict) -> None:
        """The feedback service for a digest output of the (localised) ``runtime``, whose
        digests then carry its links: the output whose ledger the example's feedback.yaml
        names, else the first mail digest output."""
        port = free_port()
        if self.configured is not None:
            configured = self.configured.localised(self.workdir, port)
            self.output = configured.served_by(runtime, DIGEST_MODULE)
            config, said = configured.config, f"its configuration {self.configured.path}, laid out in {self.workdir}"
        else:
            mail = [b for b in bots_of(runtime, DIGEST_MODULE) if "smtp_port" in runtime[b]["parameters"]]
            if not mail:
                return
            self.output = mail[0]
            spool_file = Path(runtime[self.output]["parameters"]["spool_file"])
            self.config_file = write_service_file(self.workdir / SERVICE_FOLDER, spool_file, self.output, port)
            config, said = load_config(self.config_file), f"intelmq-nsm serve --config {self.config_file}"
        make_credentials(config)
        self.server = start_service(config)
        parameters = runtime[self.output]["parameters"]
        parameters["feedback_base_url"] = config.base_url
        parameters["feedback_secret_file"] = str(config.secret_file)
        self.progress(f"Started the feedback service on {LOOPBACK}:{port} for the digests of {self.output} ({said}).")

    def run(self, chain, charts: Path) -> dict:
        """One owner answer per kind through the feedback service; the researcher's view of each case."""
        self.progress("The owners answer on the feedback service's page, one answer of each kind.")
        answered = self.answer(chain)
        case_ids = set()
        for _, ledger in chain.ledgers():  # the service's output's among them
            try:
                case_ids |= {r["case_id"] for r in ledger.records() if r["case_id"]}
            finally:
                ledger.close()
        self.progress("The researcher asks the intake what became of each case (GET /v1/cases/<id>).")
        views, kept = researcher_view(chain.intake, case_ids, charts)
        return {"answers": answered, "cases": views, "charts": kept}

    def answer(self, chain) -> list:
        """One owner answer per kind through the service's page, for findings in the ledger
        of the output it serves (of ``chain``, running); what was answered."""
        ledger = chain.ledger(self.output)
        try:
            return answer_once_per_kind(self.server, chain.sink.messages, ledger, self.progress)
        finally:
            ledger.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.context.store.close()


def make_credentials(config) -> None:
    """The secret and the ticket system's and operators' token files the service's
    configuration ``config`` names, made where it says unless they are there; each token
    made here also in clear beside its file (this is a demo)."""
    from intelmq_nsm.auth.tokens import add_token
    from intelmq_nsm.feedback.links import create_secret

    Path(config.secret_file).parent.mkdir(parents=True, exist_ok=True)
    create_secret(config.secret_file)
    for key, clear_name, who, code in DEMO_TOKENS:
        tokens = Path(getattr(config, key) or "")
        if not getattr(config, key) or tokens.exists():
            continue
        tokens.parent.mkdir(parents=True, exist_ok=True)
        _, token = add_token(tokens, who, [code], comment="made by intelmq-nsm demo")
        clear = tokens.parent / clear_name
        clear.write_text(token + "\n", encoding="utf-8")
        clear.chmod(0o600)


def write_service_file(folder: Path, spool_file: Path, ledger_name: str, port: int) -> Path:
    """The feedback service's configuration in ``folder`` for the ledger in ``spool_file``
    (its secret and token files beside it: :func:`make_credentials`); returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    # Relative to the configuration's folder: the demo's folder may be moved and served again.
    ledger = Path(os.path.relpath(spool_file.resolve(), folder.resolve()))
    config_file = folder / CONFIG_FILE
    config_file.write_text(
        "# The feedback service as intelmq-nsm demo ran it; serve the kept state again with\n"
        f"#   intelmq-nsm serve --config {config_file}\n"
        "# (--port to choose another port). Paths are relative to this file's folder.\n"
        f"ledger_url: sqlite:///{ledger.as_posix()}\n"
        f"ledger_name: {ledger_name}\n"
        "secret_file: feedback-secret\n"
        "tokens_file: feedback-tokens.json\n"
        "operator_tokens_file: operator-tokens.json\n"
        f"host: {LOOPBACK}\n"
        f"port: {port}\n"
        f"base_url: http://{LOOPBACK}:{port}\n",
        encoding="utf-8",
    )
    return config_file


def load_config(config_file: Path):
    """The service's configuration in ``config_file``, read as ``intelmq-nsm serve --config`` reads it."""
    from intelmq_nsm.feedback import config as config_mod

    return config_mod.load(config_file)


def start_service(config):
    """The feedback service of the configuration ``config`` (started), as ``intelmq-nsm
    serve`` starts it."""
    from intelmq_nsm.feedback.service import build

    ledger_file = sqlite_path(config.ledger_url)
    if ledger_file:
        Path(ledger_file).parent.mkdir(parents=True, exist_ok=True)
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
