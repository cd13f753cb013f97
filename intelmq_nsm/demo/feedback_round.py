"""The demo's last step: owners answer through the real feedback service, and the researcher
looks at what became of each case through the intake's API.

The feedback service (``intelmq-nsm serve``'s server, here in the demo's process) listens
on loopback and serves the mail digest output's ledger; that output puts links to it into
its digests. One owner answer of each kind is made as a browser would: the link taken
from a mail the SMTP sink received, the page fetched for its form token, the form posted.
Then ``GET /v1/cases/<id>`` and its chart with the researcher's own token.
"""

import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.testbed.pipeline import LOOPBACK
from intelmq_nsm.digest.ledger import sqlite_url

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


def start_service(spool_file: Path, ledger_name: str, secret_file: Path, port: int):
    """The feedback service on ``port`` for the ledger in ``spool_file`` (started)."""
    from intelmq_nsm.cli.serve import build
    from intelmq_nsm.feedback.config import ServiceConfig
    from intelmq_nsm.feedback.links import create_secret

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
    with requests.Session() as http:
        for (choice, comment), (url, link) in zip(ANSWERS, candidates):
            page = http.get(url, timeout=30)
            found = re.search(r'name="csrf" value="([^"]+)"', page.text)
            if page.status_code != 200 or not found:
                raise DemoError(f"The feedback page for {link.org_id} answered HTTP {page.status_code}.")
            form = {"finding_id": link.finding_id, "choice": choice, "comment": comment, "csrf": found.group(1)}
            posted = http.post(url, data=form, timeout=30, allow_redirects=False)
            if posted.status_code != 303:
                raise DemoError(f"The answer {choice} for {link.finding_id} was refused: HTTP {posted.status_code}.")
            confirmation = http.get(requests.compat.urljoin(url, posted.headers["Location"]), timeout=30)
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
                    "confirmation_status": confirmation.status_code,
                }
            )
            progress(f"{link.org_id} answered {choice} for {record['target']} on the owners' page: {record['state']}.")
    return answered


def researcher_view(intake_port: int, token: str, case_ids, chart_dir: Path) -> tuple:
    """``({case id: GET /v1/cases/<id> JSON}, {case id: path of the saved chart})``."""
    chart_dir.mkdir(parents=True, exist_ok=True)
    views, charts = {}, {}
    headers = {"Authorization": f"Bearer {token}"}
    for case_id in sorted(case_ids):
        base = f"http://{LOOPBACK}:{intake_port}/v1/cases/{case_id}"
        answer = requests.get(base, headers=headers, timeout=30)
        if answer.status_code != 200:
            raise DemoError(f"GET /v1/cases/{case_id} answered HTTP {answer.status_code}: {answer.text}")
        views[case_id] = answer.json()
        chart = requests.get(base + "/chart.svg", headers=headers, timeout=30)
        if chart.status_code != 200:
            raise DemoError(f"GET /v1/cases/{case_id}/chart.svg answered HTTP {chart.status_code}.")
        path = chart_dir / f"{case_id}.svg"
        path.write_bytes(chart.content)
        charts[case_id] = str(path)
    return views, charts
