"""The owners' page in a real browser: Debian's chromium driven by playwright.

A digest goes out by mail to a real SMTP server (aiosmtpd); the link is taken from the
mail's text, opened in chromium, *opgelost* chosen and sent; the confirmation shows, and
the ledger holds the answer. A tampered and an expired link show a refusal page. A comment
of 2,000 characters without a space and with a right-to-left override keeps the owners' page
and the operators' overview within the viewport, the override shown as its escape.
Screenshots of each step are kept under the test's tmp path (their paths are printed).
"""

import os
import re
import time
from pathlib import Path

import pytest

from intelmq_nsm.digest.channels import SmtpChannel
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from tests.feedback.conftest import LEDGER, deliver, paths, standard_events

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
#: Without these, chromium keeps trying to reach Google's hosts from a closed network.
QUIET = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium as root.")
    from playwright.sync_api import sync_playwright

    args = QUIET + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = []

    def take(self, page, name: str) -> Path:
        path = self.directory / f"{len(self.paths) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        print(f"screenshot: {path}")
        return path


def mailed_link(sink, organisation_name: str) -> str:
    """The digest link from the text part of the mail to this organisation."""
    for _, _, message in sink.messages:
        if organisation_name in message["Subject"]:
            text = message.get_body(preferencelist=("plain",)).get_content()
            # The first link of a digest's text is the one for all its findings.
            found = re.search(r"http://\S+/feedback\?link=[A-Za-z0-9_.%-]+", text)
            assert found, f"No feedback link in the mail to {organisation_name}:\n{text}"
            return found.group(0)
    raise AssertionError(f"No mail for {organisation_name} among {len(sink.messages)}.")


def test_an_owner_answers_fixed_in_a_browser(tmp_path, service_factory, browser):
    shots = Shots(tmp_path / "screenshots")
    # The service first: the links in the mail point at its real address.
    service = service_factory(paths(tmp_path, "unused"))
    with SmtpSink() as sink:
        channel = SmtpChannel("127.0.0.1", sink.port, "meldingen@ibd.example", security="none")
        delivered = deliver(tmp_path, service.url, standard_events(), channel=channel)
        sink.wait_for(2)
    link = mailed_link(sink, "Amsterdam")
    assert link.startswith(service.url + "/feedback?link=")

    page = browser.new_page(locale="nl-NL")
    response = page.goto(link)
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Terugkoppeling op gemelde kwetsbaarheden"
    sections = page.locator("section.finding")
    assert sections.count() == 2
    shots.take(page, "page")

    first = sections.nth(0)
    finding_id = first.get_attribute("id").removeprefix("finding-")
    # By its accessible name, as a person using a screen reader would find it.
    first.get_by_role("radio", name="Opgelost").check()
    first.get_by_label("Toelichting (optioneel)").fill("Bijgewerkt naar 13.1-49.15 op 2 december.")
    shots.take(page, "chosen")
    first.get_by_role("button", name="Antwoord versturen").click()
    page.wait_for_load_state()

    confirmation = page.locator("#confirmation")
    assert confirmation.is_visible()
    assert "is vastgelegd: Opgelost" in confirmation.inner_text()
    assert "opgelost (volgens eigenaar)" in confirmation.inner_text()
    shots.take(page, "confirmed")

    ledger = delivered.ledger()
    try:
        record = next(r for r in ledger.history_of(finding_id) if r["org_id"] == "GM0363")
    finally:
        ledger.close()
    assert record["state"] == "fixed-reported"
    assert record["history"][-1]["source"] == "owner"
    assert record["history"][-1]["note"] == "Bijgewerkt naar 13.1-49.15 op 2 december."
    assert service.config.ledger_name == LEDGER

    # The same page in English, by the language link.
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    shots.take(page, "english")

    # A tampered link: a refusal page, not the findings.
    tampered = re.sub(r"link=([^&]+)", lambda m: "link=" + m.group(1)[:-3] + "AAA", link)
    response = page.goto(tampered)
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Deze link kan niet worden gebruikt"
    assert "gewijzigd" in page.locator(".reason").inner_text()
    assert page.locator("section.finding").count() == 0
    shots.take(page, "tampered")
    assert all(p.stat().st_size > 0 for p in shots.paths)


def test_an_expired_link_shows_a_refusal_page_in_a_browser(tmp_path, service_factory, browser):
    shots = Shots(tmp_path / "screenshots")
    past = time.time() - 40 * 86400
    delivered = deliver(tmp_path, "https://feedback.ibd.example", standard_events(), now=past)
    service = service_factory(delivered)
    page = browser.new_page(locale="nl-NL")
    response = page.goto(service.local(delivered.documents()["GM0363"]["feedback_url"]))
    assert response.status == 410
    assert "verlopen" in page.locator(".reason").inner_text()
    shots.take(page, "expired")


#: 2,000 characters without a space (the comment's limit), a right-to-left override in them.
UNBROKEN = "Bijgewerkt" + "A" * 1981 + "\u202efdp.exe\u202c"


def fits(page) -> dict:
    """The page's width as the browser laid it out, and the viewport's."""
    return page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
        " viewport: window.innerWidth})"
    )


def test_an_unbroken_comment_with_a_bidi_override_stays_within_the_viewport_and_inert(
    tmp_path, service_factory, browser
):
    assert len(UNBROKEN) == 2000
    shots = Shots(tmp_path / "screenshots")
    delivered = deliver(tmp_path, "https://feedback.ibd.example", standard_events())
    service = service_factory(delivered)
    link = service.local(delivered.documents()["GM0363"]["feedback_url"])
    page = browser.new_page(locale="nl-NL", viewport={"width": 1280, "height": 800})
    page.goto(link)
    first = page.locator("section.finding").nth(0)
    first.get_by_role("radio", name="Vals positief").check()
    first.get_by_label("Toelichting (optioneel)").fill(UNBROKEN)
    first.get_by_role("button", name="Antwoord versturen").click()
    page.wait_for_load_state()
    assert "is vastgelegd" in page.locator("#confirmation").inner_text()
    answered = page.locator("section.finding").nth(0)
    answered.locator("details.history summary").click()
    note = answered.locator("q.note").last
    assert note.is_visible()
    width = fits(page)
    shots.take(page, "owners-page-unbroken-rtl")
    assert width["scroll"] <= width["viewport"] and width["body"] <= width["viewport"], width
    # Shown, not acted on: the override as its escape, the comment isolated.
    assert note.locator("bdi .control").first.inner_text() == "\\u202e"
    assert "\u202e" not in page.content()

    overview = browser.new_page(viewport={"width": 1280, "height": 800})
    overview.goto(service.url + "/operators/login")
    overview.get_by_label("Operator token").fill(service.operator_token)
    overview.get_by_role("button", name="Log in").click()
    overview.wait_for_load_state()
    assert overview.locator("h1").inner_text() == "What became of the findings"
    width = fits(overview)
    shots.take(overview, "overview-unbroken-rtl")
    assert width["scroll"] <= width["viewport"] and width["body"] <= width["viewport"], width
    cell = overview.locator("td.note").first
    assert "Bijgewerkt" in cell.inner_text() and cell.locator(".control").first.inner_text() == "\\u202e"
    assert "\u202e" not in overview.content()
    # The cell keeps the whole comment: wrapped, not cut.
    assert len(cell.inner_text().replace("\n", "")) >= 2000
