"""The digest output's feedback parameters: checked before a start, and the links they make."""

from types import SimpleNamespace

from intelmq_nsm.bots.outputs.digest.output import NSMDigestOutputBot
from intelmq_nsm.feedback.links import create_secret

BASE = {"channel": "file", "file_directory": "/tmp/x", "constituency": "ibd"}


def test_no_base_url_no_links_and_no_complaint():
    assert NSMDigestOutputBot.check(BASE) is None
    assert NSMDigestOutputBot.feedback_links(SimpleNamespace(feedback_base_url=None)) is None


def test_a_base_url_needs_a_usable_secret_file(tmp_path):
    problems = NSMDigestOutputBot.check({**BASE, "feedback_base_url": "https://feedback.ibd.example"})
    assert ["error", "Parameter feedback_base_url needs feedback_secret_file, which is not set."] in problems
    short = tmp_path / "short"
    short.write_text("too short\n")
    problems = NSMDigestOutputBot.check(
        {**BASE, "feedback_base_url": "https://feedback.ibd.example", "feedback_secret_file": str(short)}
    )
    assert any("at least 32" in text for _, text in problems)
    assert any(
        "http(s)" in text
        for _, text in NSMDigestOutputBot.check(
            {**BASE, "feedback_base_url": "feedback.example", "feedback_secret_file": str(short)}
        )
    )


def test_links_are_made_from_the_parameters(tmp_path):
    secret = tmp_path / "secret"
    create_secret(secret)
    assert (
        NSMDigestOutputBot.check(
            {**BASE, "feedback_base_url": "https://feedback.ibd.example", "feedback_secret_file": str(secret)}
        )
        is None
    )
    bot = SimpleNamespace(
        feedback_base_url="https://feedback.ibd.example", feedback_secret_file=str(secret), feedback_link_lifetime=60
    )
    links = NSMDigestOutputBot.feedback_links(bot)
    assert links.base_url == "https://feedback.ibd.example" and links.signer.lifetime == 60
