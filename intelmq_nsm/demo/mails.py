"""The demo's mails: kept, signed, labelled, and one checked with gpg as its receiver would.

The SMTP sink writes every mail it receives, as received, to an ``.eml`` file in the demo's
``mails/`` folder; the public half of each signing key the test bed made goes beside them
as ``signing-key.asc``. So anyone can check the mails after the run (``--workdir DIR``
keeps the folder): a mail client with that key imported, or gpg on a mail's two PGP/MIME
parts, as :func:`mail_report` does for one mail for the closing note. The report says per
mail to whom it went, in which language, with which TLP label, and whether it was signed.
"""

from collections import Counter
from pathlib import Path

from intelmq_nsm.testbed.chain import DIGEST_MODULE
from intelmq_nsm.testbed.spools import spool_digests

FOLDER = "mails"
PUBLIC_KEY = "signing-key.asc"
LANGUAGE_NAMES = {"nl": "Dutch", "en": "English"}


def prepare(folder: Path) -> None:
    """An empty ``mails/`` folder: what an earlier run in the same working folder left goes."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.eml"), folder / PUBLIC_KEY]:
        old.unlink(missing_ok=True)


def keep_public_keys(keys: list, folder: Path):
    """The signing keys' public halves in ``folder/signing-key.asc`` (its path); None without keys."""
    if not keys:
        return None
    path = folder / PUBLIC_KEY
    path.write_text("".join(key.public_key() for key in keys), encoding="utf-8")
    return path


def _mail_outputs(chain) -> dict:
    """``{digest id: (organisation id, language)}`` of the digests of the chain's mail outputs."""
    from intelmq_nsm.digest.channels import language_of

    found = {}
    for bot in chain.bots(DIGEST_MODULE).values():
        parameters = bot["parameters"]
        if not parameters.get("smtp_from"):
            continue
        for _, digest in spool_digests(Path(parameters["spool_file"])):
            found[digest.id] = (digest.organisation.get("id"), language_of(digest, parameters.get("language", "nl")))
    return found


def mail_report(chain, folder: Path) -> dict:
    """What the SMTP sink received: per mail its file, recipients, organisation, language,
    subject, TLP label (``X-NSM-TLP``), the text's first line, and whether it was signed;
    the counts; and one signed mail's headers with gpg's check of its signature."""
    from intelmq_nsm.digest import pgp_mime

    digests = _mail_outputs(chain)
    files = list(chain.sink.files) or [None] * len(chain.sink.raw)
    mails = []
    for path, (_, recipients, message) in zip(files, chain.sink.messages):
        organisation, language = digests.get(message["X-NSM-Digest-Id"], (None, None))
        text = message.get_body(("plain",))
        kind = message.get_content_type()
        mails.append({
            "file": str(path) if path else None,
            "to": recipients,
            "organisation": organisation,
            "language": language,
            "subject": str(message["Subject"]),
            "tlp": message["X-NSM-TLP"],
            "first_line": text.get_content().splitlines()[0] if text is not None else "",
            "signed": kind == pgp_mime.SIGNED,
            "encrypted": kind == pgp_mime.ENCRYPTED,
        })  # fmt: skip
    report = {
        "keys": [{"outputs": key.bot_ids, "fingerprint": key.fingerprint} for key in chain.signing_keys],
        "folder": str(folder),
        "public_key": str(folder / PUBLIC_KEY) if chain.signing_keys else None,
        "mails": mails,
        "signed": sum(1 for m in mails if m["signed"] or m["encrypted"]),
        "tlp": dict(sorted(Counter(m["tlp"] for m in mails).items())),
        "languages": {
            language: sorted({m["organisation"] for m in mails if m["language"] == language})
            for language in sorted({m["language"] for m in mails if m["language"]})
        },
    }
    signed = [(m, raw) for m, raw in zip(mails, chain.sink.raw) if m["signed"]]
    if signed and report["public_key"]:
        report["checked"] = check(*signed[0], report["public_key"])
    return report


def check(mail: dict, raw: bytes, public_key: str) -> dict:
    """One signed mail's headers as received, and gpg's check of its signature with the
    public key file, as its receiver would make it."""
    from intelmq_nsm.digest import openpgp, pgp_mime

    headers = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    signed, signature = pgp_mime.signed_and_signature(raw)
    good, transcript = openpgp.receiver_check(public_key, signature, signed)
    return {
        "file": mail["file"],
        "headers": headers.splitlines(),
        "good": good,
        "gpg": [{"command": command, "output": output.splitlines()} for command, output in transcript],
    }


def render(report: dict) -> list:
    """The closing note's lines: how many mails were signed, with which key, their TLP labels
    and languages; one signed mail's headers and gpg's check."""
    mails = report["mails"]
    if not mails:
        return []
    keys = ", ".join(f"{k['fingerprint']} ({', '.join(k['outputs'])})" for k in report["keys"]) or "no key"
    lines = [
        f"The mails: {len(mails)} received by the SMTP sink, {report['signed']} of them PGP/MIME-signed with "
        f"{keys}; TLP labels: " + ", ".join(f"TLP:{label} {n}" for label, n in report["tlp"].items()) + ".",
    ]
    for language, organisations in report["languages"].items():
        count = sum(1 for m in mails if m["language"] == language)
        lines.append(f"In {LANGUAGE_NAMES.get(language, language)}: {count} mails to {', '.join(organisations)}.")
    checked = report.get("checked")
    if checked:
        name = Path(checked["file"]).name if checked["file"] else "the first signed mail"
        lines += ["", f"One signed mail as received ({name}), its headers:"]
        lines += [f"  {line}" for line in checked["headers"]]
        lines += [
            "",
            f"Checked with gpg as its receiver would: the key's public half from {PUBLIC_KEY}, the mail's",
            "first PGP/MIME part as signed-part and its second part's body as signature.asc:",
        ]
        for step in checked["gpg"]:
            lines.append(f"  $ {step['command']}")
            lines += [f"  {line}" for line in step["output"]]
        if not checked["good"]:
            lines.append("THE SIGNATURE DID NOT VERIFY.")
    return lines
