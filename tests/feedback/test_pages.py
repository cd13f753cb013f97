"""The owners' page over real HTTP: links from a delivered digest, answers into the ledger,
and every bad request a clear 4xx that changes nothing."""

import re
import time
from urllib.parse import parse_qs, urlsplit

import markupsafe
import pytest
import requests

from intelmq_nsm.feedback.links import LinkSigner, read_secret, url
from intelmq_nsm.testbed.sample_events import event
from tests.feedback.conftest import AMSTERDAM, LEDGER, deliver, standard_events

pytestmark = pytest.mark.e2e


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def post(service, link_url, **form):
    return requests.post(service.local(link_url), data=form, allow_redirects=False, timeout=10)


def states(delivered) -> dict:
    ledger = delivered.ledger()
    try:
        return {(r["org_id"], r["finding_id"]): r["state"] for r in ledger.records()}
    finally:
        ledger.close()


def history(delivered, finding_id, org_id) -> list:
    ledger = delivered.ledger()
    try:
        return next(r for r in ledger.history_of(finding_id) if r["org_id"] == org_id)["history"]
    finally:
        ledger.close()


def test_every_finding_and_the_digest_carry_links_in_json_csv_and_text(delivered):
    documents = delivered.documents()
    assert set(documents) == {"GM0363", "GM0344"}
    amsterdam = documents["GM0363"]
    assert amsterdam["feedback_url"].startswith("https://feedback.ibd.example/feedback?link=")
    finding_links = [f["feedback_url"] for f in amsterdam["findings"]]
    assert len(set(finding_links)) == 2 and all(
        link.startswith("https://feedback.ibd.example/") for link in finding_links
    )
    for text in delivered.texts():
        assert "https://feedback.ibd.example/feedback?link=" in text
    texts = "\n".join(delivered.texts())
    for link in [*finding_links, amsterdam["feedback_url"]]:
        assert link in texts
    csv_text = "\n".join(delivered.csvs())
    assert csv_text.splitlines()[0].endswith(",feedback_url")
    for link in finding_links:
        assert link in csv_text


def test_the_digest_link_shows_the_organisations_findings_only(delivered, service):
    amsterdam, utrecht = delivered.documents()["GM0363"], delivered.documents()["GM0344"]
    response = requests.get(service.local(amsterdam["feedback_url"]), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    assert '<html lang="nl">' in page and "Opgelost" in page and "Niet van ons" in page
    for finding in amsterdam["findings"]:
        assert finding["finding_id"] in page and finding["ip"] in page
    assert utrecht["findings"][0]["finding_id"] not in page and utrecht["findings"][0]["ip"] not in page
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "script-src" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in page


def test_english_by_parameter_or_accept_language(delivered, service):
    link = service.local(delivered.documents()["GM0363"]["feedback_url"])
    assert "Accepted risk" in requests.get(link + "&lang=en", timeout=10).text
    english = requests.get(link, headers={"Accept-Language": "en-GB,en;q=0.9,nl;q=0.5"}, timeout=10).text
    assert '<html lang="en">' in english and "Not our system" in english
    assert '<html lang="nl">' in requests.get(link, headers={"Accept-Language": "de, nl;q=0.3"}, timeout=10).text


def test_an_answer_is_confirmed_and_becomes_the_ledger_state(delivered, service):
    amsterdam = delivered.documents()["GM0363"]
    finding = amsterdam["findings"][0]
    page = requests.get(service.local(amsterdam["feedback_url"]), timeout=10).text
    response = post(
        service, amsterdam["feedback_url"], csrf=csrf_of(page), finding_id=finding["finding_id"], choice="fixed"
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert parse_qs(urlsplit(location).query)["answered"] == [finding["finding_id"]]
    confirmed = requests.get(service.url + location, timeout=10).text
    assert 'role="status"' in confirmed and "is vastgelegd: Opgelost" in confirmed
    assert 'data-state="fixed-reported"' in confirmed
    assert states(delivered)[("GM0363", finding["finding_id"])] == "fixed-reported"
    last = history(delivered, finding["finding_id"], "GM0363")[-1]
    assert (last["old_state"], last["state"], last["source"]) == ("notified", "fixed-reported", "owner")


def test_each_choice_sets_its_state_and_a_later_answer_keeps_the_history(delivered, service):
    amsterdam = delivered.documents()["GM0363"]
    finding = amsterdam["findings"][1]
    link = finding["feedback_url"]
    csrf = csrf_of(requests.get(service.local(link), timeout=10).text)
    expected = {"not-ours": "disputed", "accepted-risk": "accepted-risk", "false-positive": "false-positive"}
    for choice, state in expected.items():
        assert post(service, link, csrf=csrf, finding_id=finding["finding_id"], choice=choice).status_code == 303
        assert states(delivered)[("GM0363", finding["finding_id"])] == state
    # The same link once more, after answering (a replay): allowed, and the history shows each answer.
    assert post(service, link, csrf=csrf, finding_id=finding["finding_id"], choice="fixed").status_code == 303
    answers = [h["state"] for h in history(delivered, finding["finding_id"], "GM0363") if h["source"] == "owner"]
    assert answers == ["disputed", "accepted-risk", "false-positive", "fixed-reported"]


def test_a_tampered_link_is_refused_with_a_page_and_changes_nothing(delivered, service):
    amsterdam = delivered.documents()["GM0363"]
    before = states(delivered)
    link = service.local(amsterdam["feedback_url"])
    token = parse_qs(urlsplit(link).query)["link"][0]
    flipped = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = requests.get(link.replace(token, flipped), timeout=10)
    assert response.status_code == 403
    assert "Deze link kan niet worden gebruikt" in response.text and 'data-reason="tampered"' in response.text
    csrf = csrf_of(requests.get(link, timeout=10).text)
    finding_id = amsterdam["findings"][0]["finding_id"]
    refused = requests.post(
        link.replace(token, flipped), data={"csrf": csrf, "finding_id": finding_id, "choice": "fixed"}, timeout=10
    )
    assert refused.status_code == 403
    assert states(delivered) == before


def test_an_expired_link_is_refused_with_a_page(tmp_path, service_factory):
    past = time.time() - 3 * 86400
    delivered = deliver(tmp_path, "https://feedback.ibd.example", standard_events(), lifetime=86400, now=past)
    service = service_factory(delivered)
    response = requests.get(service.local(delivered.documents()["GM0363"]["feedback_url"]) + "&lang=en", timeout=10)
    assert response.status_code == 410
    assert "This link has expired" in response.text


def test_a_foreign_organisations_finding_cannot_be_answered_or_seen(delivered, service):
    amsterdam, utrecht = delivered.documents()["GM0363"], delivered.documents()["GM0344"]
    before = states(delivered)
    link = amsterdam["feedback_url"]
    csrf = csrf_of(requests.get(service.local(link), timeout=10).text)
    foreign = utrecht["findings"][0]["finding_id"]
    response = post(service, link, csrf=csrf, finding_id=foreign, choice="false-positive")
    assert response.status_code == 404 and 'data-reason="unknown"' in response.text
    # A finding's link does not cover the organisation's other finding either.
    one = amsterdam["findings"][0]
    other = amsterdam["findings"][1]["finding_id"]
    csrf_one = csrf_of(requests.get(service.local(one["feedback_url"]), timeout=10).text)
    assert post(service, one["feedback_url"], csrf=csrf_one, finding_id=other, choice="fixed").status_code == 404
    page = requests.get(service.local(one["feedback_url"]), timeout=10).text
    assert other not in page
    assert states(delivered) == before


def test_a_link_signed_for_another_organisation_shows_nothing_of_this_one(delivered, service):
    """A correctly signed link for an organisation the digest was not for lists nothing."""
    amsterdam = delivered.documents()["GM0363"]
    signer = LinkSigner(read_secret(delivered.secret_file))
    token = signer.token(amsterdam["id"], "GM0344", None, time.time())
    page = requests.get(service.local(url("https://x.example", token)), timeout=10).text
    assert "Er zijn geen bevindingen voor deze link." in page
    for finding in amsterdam["findings"]:
        assert finding["finding_id"] not in page


def test_unknown_finding_ids_are_404(delivered, service):
    link = delivered.documents()["GM0363"]["feedback_url"]
    csrf = csrf_of(requests.get(service.local(link), timeout=10).text)
    before = states(delivered)
    for finding_id in ("nf1-" + "0" * 32, "", "../../etc/passwd"):
        assert post(service, link, csrf=csrf, finding_id=finding_id, choice="fixed").status_code == 404
    assert states(delivered) == before


def test_a_form_without_or_with_a_foreign_csrf_token_is_refused(delivered, service):
    amsterdam, utrecht = delivered.documents()["GM0363"], delivered.documents()["GM0344"]
    before = states(delivered)
    finding_id = amsterdam["findings"][0]["finding_id"]
    missing = post(service, amsterdam["feedback_url"], finding_id=finding_id, choice="fixed")
    assert missing.status_code == 403 and 'data-reason="csrf"' in missing.text
    foreign_csrf = csrf_of(requests.get(service.local(utrecht["feedback_url"]), timeout=10).text)
    wrong = post(service, amsterdam["feedback_url"], csrf=foreign_csrf, finding_id=finding_id, choice="fixed")
    assert wrong.status_code == 403
    assert states(delivered) == before


def test_bad_choices_comments_and_media_types_are_refused(delivered, service):
    amsterdam = delivered.documents()["GM0363"]
    link = amsterdam["feedback_url"]
    csrf = csrf_of(requests.get(service.local(link), timeout=10).text)
    finding_id = amsterdam["findings"][0]["finding_id"]
    before = states(delivered)
    assert post(service, link, csrf=csrf, finding_id=finding_id, choice="open").status_code == 400
    long = "x" * 2001
    assert post(service, link, csrf=csrf, finding_id=finding_id, choice="fixed", comment=long).status_code == 400
    as_json = requests.post(service.local(link), json={"csrf": csrf}, timeout=10)
    assert as_json.status_code == 415
    big = requests.post(
        service.local(link),
        data="comment=" + "x" * 30000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert big.status_code == 413
    assert states(delivered) == before


def test_a_comment_at_the_limit_in_any_script_is_taken_and_kept_whole(delivered, service):
    amsterdam = delivered.documents()["GM0363"]
    link = amsterdam["feedback_url"]
    first, second = (f["finding_id"] for f in amsterdam["findings"])
    csrf = csrf_of(requests.get(service.local(link), timeout=10).text)
    # 2,000 characters as the form's maxlength counts them: 18 KB of a form in "€" (3 bytes,
    # 9 percent-encoded), and line breaks that a browser sends as CRLF but counts as one.
    euros = "€" * 2000
    answered = post(service, link, csrf=csrf, finding_id=first, choice="fixed", comment=euros)
    assert answered.status_code == 303, answered.text[:300]
    counted = "regel\n" * 333 + "ok"
    lines = counted.replace("\n", "\r\n")  # as the browser sends it
    assert len(counted) == 2000 < len(lines)
    assert post(service, link, csrf=csrf, finding_id=second, choice="fixed", comment=lines).status_code == 303
    assert history(delivered, first, "GM0363")[-1]["note"] == euros
    assert history(delivered, second, "GM0363")[-1]["note"] == counted


def test_the_web_stacks_refusals_of_the_page_are_pages_in_its_language(delivered, service):
    link = service.local(delivered.documents()["GM0363"]["feedback_url"])
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    too_large = requests.post(link, data="comment=" + "x" * 30000, headers=form, timeout=10)
    not_a_form = requests.post(link + "&lang=en", json={"comment": "x"}, timeout=10)
    for response, status, words in (
        (too_large, 413, "Dit formulier is te groot om te verwerken."),
        (not_a_form, 415, "This form cannot be processed."),
    ):
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("text/html")
        assert 'class="refusal"' in response.text and words in response.text
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    # Without a Content-Length (chunked): 411, a page too.
    chunked = requests.post(link, data=iter([b"comment=x"]), headers=form, timeout=10)
    assert chunked.status_code == 411 and 'data-reason="form"' in chunked.text


def answered(delivered, service, choice: str, comment: str) -> tuple:
    """Amsterdam's first finding answered with ``comment``: ``(the page after, its finding id)``."""
    amsterdam = delivered.documents()["GM0363"]
    link = amsterdam["feedback_url"]
    csrf = csrf_of(requests.get(service.local(link), timeout=10).text)
    finding_id = amsterdam["findings"][0]["finding_id"]
    post(service, link, csrf=csrf, finding_id=finding_id, choice=choice, comment=comment)
    return requests.get(service.local(link), timeout=10).text, finding_id


def test_html_in_a_comment_is_inert_on_the_page(delivered, service):
    comment = '<script>alert("x")</script><img src=x onerror=alert(1)> =HYPERLINK("http://evil.example")'
    page, _ = answered(delivered, service, "not-ours", comment)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert str(markupsafe.escape(comment)) in page


def test_control_and_bidi_characters_in_a_comment_are_shown_as_escapes_in_isolation(delivered, service):
    comment = "Bijgewerkt \u202efdp.exe\x1b[2J en \u2067klaar"
    page, finding_id = answered(delivered, service, "fixed", comment)
    assert not set("\u202e\u2067\x1b") & set(page)
    assert (
        '<q class="note"><bdi>Bijgewerkt <span class="control">\\u202e</span>fdp.exe'
        '<span class="control">\\x1b</span>[2J en <span class="control">\\u2067</span>klaar</bdi></q>'
    ) in page
    assert history(delivered, finding_id, "GM0363")[-1]["note"] == comment  # kept as it was written


def test_requests_over_the_rate_limit_get_429(delivered, service_factory):
    service = service_factory(delivered, requests_per_minute=1, burst=3)
    link = service.local(delivered.documents()["GM0363"]["feedback_url"])
    codes = [requests.get(link, timeout=10).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    assert "Retry-After" in requests.get(link, timeout=10).headers


def test_repeated_bad_links_from_one_address_are_slowed_down(delivered, service_factory):
    service = service_factory(delivered, failures_per_minute=1, failures_burst=2)
    good = service.local(delivered.documents()["GM0363"]["feedback_url"])
    bad = good[:-3] + "AAA"
    assert [requests.get(bad, timeout=10).status_code for _ in range(2)] == [403, 403]
    assert requests.get(good, timeout=10).status_code == 429


def test_the_stylesheet_is_served_and_the_ledger_name_matters(delivered, service):
    response = requests.get(service.url + "/static/feedback.css", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/css")
    assert LEDGER == service.config.ledger_name


def test_each_finding_is_shown_as_its_kind_of_abuse_in_its_own_words(tmp_path, service_factory):
    """An infected host from a feed beside a researcher's vulnerable system: each says its
    kind; the infected one is "seen again" when the feed reports it after a quiet period,
    never "vulnerable again", and its answers speak of cleaning, not patching."""
    now = time.time()
    infected = {
        "__type": "Event",
        "feed.provider": "Shadowserver",
        "feed.name": "Sinkhole-HTTP-Events",
        "time.observation": "2026-06-01T06:00:00+00:00",
        "classification.taxonomy": "malicious-code",
        "classification.type": "infected-system",
        "malware.name": "andromeda",
        "source.ip": "192.0.2.41",
        "source.port": 49152,
        "destination.ip": "203.0.113.80",
        "constituency": "ibd",
        "extra.nsm.organisations": [AMSTERDAM],
    }
    delivered = deliver(tmp_path, "https://feedback.ibd.example", [infected, event(1, [AMSTERDAM])], now=now)
    ledger = delivered.ledger()
    try:
        [host] = [r for r in ledger.records() if r["abuse"] == "compromised"]
        # No report for the quiet period, then the feed sees it again: reopened.
        ledger.quiet_after = 14 * 86400
        assert [r["state"] for r in ledger.quiet(now=now + 15 * 86400)] == ["no-longer-seen"]
        ledger.record_change(host["finding_id"], "GM0363", "reopened", source="scan", now=now + 16 * 86400)
    finally:
        ledger.close()
    service = service_factory(delivered)
    link = service.local(delivered.documents()["GM0363"]["feedback_url"])
    for lang, kinds, seen_again, again, cleaned, patched in (
        ("nl", ("besmet of gehackt", "kwetsbaar"), "opnieuw gezien", "opnieuw kwetsbaar", "opgeschoond", "bijgewerkt"),
        ("en", ("infected or compromised", "vulnerable"), "seen again", "vulnerable again", "cleaned up", "updated"),
    ):
        page = requests.get(f"{link}&lang={lang}", timeout=10).text
        sections = {s.split('"', 1)[0]: s for s in page.split('<section class="finding" id="finding-')[1:]}
        mine, researchers = sections.pop(host["finding_id"]), next(iter(sections.values()))
        assert f"<dd><bdi>{kinds[0]}</bdi></dd>" in mine and f"<dd><bdi>{kinds[1]}</bdi></dd>" in researchers
        assert "<dd><bdi>Shadowserver / Sinkhole-HTTP-Events</bdi></dd>" in mine  # the feed that saw it
        assert f'data-state="reopened">{seen_again}</strong>' in mine and again not in mine
        assert cleaned in mine and patched not in mine
        assert patched in researchers and cleaned not in researchers
        assert "niet meer gezien" in mine if lang == "nl" else "no longer seen" in mine  # its history
