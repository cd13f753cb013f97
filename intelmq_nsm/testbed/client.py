"""A small HTTP client for the intake and the feedback service, behaving as a researcher's
and an owner's clients should: the demo, the benchmarks and the tests submit and read
through it instead of writing their own requests."""

import json
import re
import time
from pathlib import Path
from typing import Optional

import requests

from intelmq_nsm.testbed.pipeline import LOOPBACK, HarnessError

#: The media type each report file is submitted as, by its suffix.
MEDIA_TYPES = {".json": "application/json", ".jsonl": "application/x-ndjson", ".csv": "text/csv"}
#: Case metadata of a CSV report stands beside it as ``NAME.case.json``.
CASE_SUFFIX = ".case.json"


class Refused(HarnessError):
    """The service answered, but not as asked: ``status`` and the answer's text say why."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class IntakeClient:
    """A researcher's client of the intake on ``host:port`` with a bearer ``token``."""

    def __init__(self, port: int, token: str, host: str = LOOPBACK, patience: float = 60.0):
        self.base = f"http://{host}:{port}"
        self.token = token
        self.patience = patience

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def submit(self, report: Path) -> tuple:
        """POST one report file; ``(status, submission id)``. Waits while the intake is not
        listening yet (or restarting) and as long as a 429's Retry-After says, up to
        ``patience`` seconds; any answer but 202 raises :class:`Refused`."""
        report = Path(report)
        url = f"{self.base}/v1/reports"
        headers = {**self.headers, "Content-Type": MEDIA_TYPES[report.suffix]}
        params = {}
        case_file = report.with_suffix(CASE_SUFFIX)
        if case_file.exists():  # case metadata of a CSV report goes in the query
            params = json.loads(case_file.read_text(encoding="utf-8"))
        deadline = time.monotonic() + self.patience
        while True:
            try:
                answer = requests.post(url, data=report.read_bytes(), headers=headers, params=params, timeout=30)
            except requests.ConnectionError:
                answer = None  # the intake is (re)starting
            if answer is not None and answer.status_code != 429:
                break
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"The intake collector on {url} did not take {report.name} within {self.patience} s."
                )
            # As a researcher's client should: wait as long as a 429's Retry-After says.
            time.sleep(float(answer.headers.get("Retry-After", 1)) if answer is not None else 0.2)
        body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
        if answer.status_code != 202:
            raise Refused(
                f"The intake refused {report.name}: HTTP {answer.status_code} {body or answer.text}.",
                answer.status_code,
            )
        return answer.status_code, body.get("submission_id")

    def case(self, case_id: str) -> dict:
        """``GET /v1/cases/<id>``: what became of a case, as the researcher may see it."""
        answer = requests.get(f"{self.base}/v1/cases/{case_id}", headers=self.headers, timeout=30)
        if answer.status_code != 200:
            raise Refused(
                f"GET /v1/cases/{case_id} answered HTTP {answer.status_code}: {answer.text}", answer.status_code
            )
        return answer.json()

    def chart(self, case_id: str) -> bytes:
        """``GET /v1/cases/<id>/chart.svg``: the case's chart (SVG)."""
        answer = requests.get(f"{self.base}/v1/cases/{case_id}/chart.svg", headers=self.headers, timeout=30)
        if answer.status_code != 200:
            raise Refused(f"GET /v1/cases/{case_id}/chart.svg answered HTTP {answer.status_code}.", answer.status_code)
        return answer.content


class OwnerClient:
    """An owner's browser on the feedback service: follows a signed link from a mail, reads
    the page's form token, posts the form and follows the redirect to the confirmation."""

    CSRF = re.compile(r'name="csrf" value="([^"]+)"')

    def __init__(self):
        self.session = requests.Session()

    def answer(self, url: str, finding_id: str, choice: str, comment: Optional[str] = None) -> int:
        """Answer ``choice`` for ``finding_id`` on the page of the signed link ``url``; the
        confirmation page's HTTP status."""
        page = self.session.get(url, timeout=30)
        found = self.CSRF.search(page.text)
        if page.status_code != 200 or not found:
            raise Refused(f"The feedback page at {url} answered HTTP {page.status_code}.", page.status_code)
        form = {"finding_id": finding_id, "choice": choice, "comment": comment or "", "csrf": found.group(1)}
        posted = self.session.post(url, data=form, timeout=30, allow_redirects=False)
        if posted.status_code != 303:
            raise Refused(
                f"The answer {choice} for {finding_id} was refused: HTTP {posted.status_code}.", posted.status_code
            )
        confirmation = self.session.get(requests.compat.urljoin(url, posted.headers["Location"]), timeout=30)
        return confirmation.status_code

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "OwnerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
