"""Signed feedback links: made and checked, refused when changed, expired or malformed."""

import base64
import json

import pytest

from intelmq_nsm.feedback import links
from intelmq_nsm.feedback.links import LinkError, LinkSigner

SECRET = b"s" * 40
CREATED = 1_800_000_000.0


@pytest.fixture
def signer():
    return LinkSigner(SECRET, lifetime=3600)


def test_a_link_verifies_to_what_it_was_made_for(signer):
    token = signer.token("d1", "gm0363", "nf1-" + "a" * 32, CREATED)
    link = signer.verify(token, now=CREATED + 10)
    assert (link.digest_id, link.org_id, link.finding_id, link.expires) == (
        "d1",
        "gm0363",
        "nf1-" + "a" * 32,
        1_800_003_600,
    )
    assert not link.whole_digest
    assert signer.verify(signer.token("d1", "gm0363", None, CREATED), now=CREATED).whole_digest


def test_the_same_digest_gives_the_same_link(signer):
    assert signer.token("d1", "o", None, CREATED) == signer.token("d1", "o", None, CREATED)


@pytest.mark.parametrize("field,value", [("o", "gm0599"), ("d", "d2"), ("f", None), ("e", 1_900_000_000)])
def test_a_changed_payload_is_tampered(signer, field, value):
    token = signer.token("d1", "gm0363", "nf1-" + "a" * 32, CREATED)
    text, mac = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    payload[field] = value
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode() + "." + mac
    with pytest.raises(LinkError) as raised:
        signer.verify(forged, now=CREATED)
    assert raised.value.reason == "tampered"


def test_another_secret_or_a_flipped_mac_is_tampered(signer):
    token = signer.token("d1", "o", None, CREATED)
    with pytest.raises(LinkError, match="changed"):
        LinkSigner(b"t" * 40).verify(token, now=CREATED)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(LinkError) as raised:
        signer.verify(flipped, now=CREATED)
    assert raised.value.reason == "tampered"


def test_expiry_is_honoured(signer):
    token = signer.token("d1", "o", None, CREATED)
    signer.verify(token, now=CREATED + 3599)
    with pytest.raises(LinkError) as raised:
        signer.verify(token, now=CREATED + 3600)
    assert raised.value.reason == "expired"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "é.x", "x" * 5000, None])
def test_malformed_tokens(signer, token):
    with pytest.raises(LinkError) as raised:
        signer.verify(token, now=CREATED)
    assert raised.value.reason in ("malformed", "tampered")


def test_csrf_token_is_bound_to_the_link(signer):
    one, two = signer.token("d1", "o", None, CREATED), signer.token("d2", "o", None, CREATED)
    assert signer.csrf_ok(one, signer.csrf(one))
    assert not signer.csrf_ok(one, signer.csrf(two))
    assert not signer.csrf_ok(one, "")
    assert not signer.csrf_ok(one, None)


def test_secret_file(tmp_path):
    path = tmp_path / "secret"
    assert links.create_secret(path)
    assert not links.create_secret(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(links.read_secret(path)) >= links.MIN_SECRET_BYTES
    (tmp_path / "short").write_text("short\n")
    with pytest.raises(links.SecretError, match="at least 32"):
        links.read_secret(tmp_path / "short")
    with pytest.raises(links.SecretError, match="cannot be read"):
        links.read_secret(tmp_path / "missing")


def test_url_carries_the_token_as_a_parameter(signer):
    token = signer.token("d1", "o", None, CREATED)
    assert links.url("https://feedback.ibd.example/", token) == f"https://feedback.ibd.example/feedback?link={token}"
