"""OpenPGP signing of digests: its cost per digest, and the mail output's digests/s signed,
signed and encrypted, and unsigned, in the same run.

Part 1 signs (and signs and encrypts) one digest's mail content many times through the
output's own Signer (python-gnupg driving Debian's gpg) and reports the time per digest.
Part 2 delivers the same digests from a spool through the mail channel to a local SMTP
server (aiosmtpd) three ways, alternating the order per round: unsigned, PGP/MIME signed,
and signed and encrypted to each organisation's key; the clock runs over one delivery
round of all digests. The chain's rate (``--chain-findings-per-second``, from
``benchmarks/chain.py``) and the findings per digest give the digests/s the mail output
must keep up with.

Keys are made for the run in a GnuPG home under /tmp (no network, no passphrase) and
removed after. Run as an unprivileged user with the test venv, e.g.
``.venv/bin/python benchmarks/digest_signing.py --digests 200 --rounds 3``.
"""

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intelmq_nsm.digest import channels, pgp_mime, render
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.event_findings import findings_of
from intelmq_nsm.digest.openpgp import Signer
from intelmq_nsm.digest.spool import DigestSpool
from intelmq_nsm.testbed.sample_events import event, municipalities, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink

LOG = logging.getLogger("benchmarks.digest_signing")


def make_keys(home: str, organisations: int) -> tuple:
    """The CERT's signing key and one encryption key per organisation (exported to files)."""
    import gnupg

    gpg = gnupg.GPG(gnupghome=home)
    cert = gpg.gen_key(
        gpg.gen_key_input(
            key_type="EDDSA", key_curve="ed25519", key_usage="sign", name_real="IBD meldingen",
            name_email="meldingen@ibd.example", expire_date="1y", no_protection=True,
        )
    ).fingerprint  # fmt: skip
    keys = []
    for n in range(organisations):
        key = gpg.gen_key(
            gpg.gen_key_input(
                key_type="EDDSA", key_curve="ed25519", key_usage="sign", subkey_type="ECDH",
                subkey_curve="cv25519", subkey_usage="encrypt", name_real=f"Organisation {n}",
                name_email=f"security{n}@gemeente.example", expire_date="1y", no_protection=True,
            )
        ).fingerprint  # fmt: skip
        path = Path(home) / f"org{n}.asc"
        path.write_text(gpg.export_keys(key))
        keys.append({"fingerprint": key, "key_file": str(path)})
    return cert, keys


def fill(spool_path, orgs, per_digest: int) -> DigestSpool:
    spool = DigestSpool(spool_path)
    n = 0
    for org in orgs:
        for _ in range(per_digest):
            n += 1
            spool.add(findings_of(event(n, [org])), now=0)
    return spool


def deliver_all(workdir: Path, name: str, orgs, per_digest: int, channel) -> float:
    """Seconds for one delivery round of every organisation's digest."""
    spool = fill(workdir / f"{name}.sqlite", orgs, per_digest)
    try:
        spool.form_digests(per_digest, 0, now=1)
        deliverer = Deliverer(spool, channel, LOG, max_events=per_digest, max_age=0)
        start = time.perf_counter()
        result = deliverer.run_once(now=2)
        elapsed = time.perf_counter() - start
    finally:
        spool.close()
    if result["delivered"] != len(orgs):
        raise SystemExit(f"{name}: {result} instead of {len(orgs)} delivered digests.")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=200, help="digests per round and way (organisations)")
    parser.add_argument("--findings-per-digest", type=int, default=35, help="the example chain's average: 35")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--signatures", type=int, default=200, help="signatures timed in part 1")
    parser.add_argument("--chain-findings-per-second", type=float, default=352.0, help="benchmarks/chain.py's rate")
    args = parser.parse_args()
    if os.geteuid() == 0:
        raise SystemExit("Run as an unprivileged user (gpg-agent and IntelMQ's habits).")
    home = tempfile.mkdtemp(prefix="gb", dir="/tmp")
    workdir = Path(tempfile.mkdtemp(prefix="nsm-signing-"))
    try:
        os.chmod(home, 0o700)
        started = time.perf_counter()
        cert, keys = make_keys(home, args.digests)
        print(f"keys: 1 signing key and {len(keys)} organisation keys in {time.perf_counter() - started:.1f} s")
        signer = Signer(home, cert)
        names = municipalities()[: args.digests]
        plain = [organisation(code, name) for code, name in names]
        with_keys = [dict(org, openpgp=key) for org, key in zip(plain, keys)]

        # Part 1: gpg's cost per digest, on a digest of the chosen size.
        spool = fill(workdir / "sample.sqlite", plain[:1], args.findings_per_digest)
        [digest_id] = spool.form_digests(args.findings_per_digest, 0, now=1)
        digest = spool.load(digest_id)
        spool.close()
        content = pgp_mime.content_part(render.to_text(digest), render.to_csv(digest).encode(), render.csv_name(digest))
        sign_times, both_times = [], []
        for _ in range(args.signatures):
            start = time.perf_counter()
            signature, micalg = signer.sign(content)
            sign_times.append(time.perf_counter() - start)
            entity = pgp_mime.signed_entity(content, signature, micalg)
            start = time.perf_counter()
            signer.encrypt(entity, keys[0]["fingerprint"], keys[0]["key_file"])
            both_times.append(sign_times[-1] + time.perf_counter() - start)
        p90 = sorted(sign_times)[int(len(sign_times) * 0.9)]
        print(
            f"part 1: a digest of {args.findings_per_digest} findings ({len(content)} bytes): sign median"
            f" {statistics.median(sign_times) * 1000:.1f} ms (p90 {p90 * 1000:.1f}),"
            f" sign and encrypt median {statistics.median(both_times) * 1000:.1f} ms"
        )

        # Part 2: the mail channel, three ways, same run.
        rates = {"unsigned": [], "signed": [], "signed+encrypted": []}
        with SmtpSink() as sink:

            def channel(signed: bool):
                return channels.SmtpChannel(
                    "127.0.0.1", sink.port, "meldingen@ibd.example", security="none", signer=signer if signed else None
                )

            ways = [
                ("unsigned", plain, lambda: channel(False)),
                ("signed", plain, lambda: channel(True)),
                ("signed+encrypted", with_keys, lambda: channel(True)),
            ]
            for round_number in range(args.rounds):
                order = ways[round_number % 3 :] + ways[: round_number % 3]
                for name, orgs, make in order:
                    elapsed = deliver_all(workdir, f"{name}-{round_number}", orgs, args.findings_per_digest, make())
                    rates[name].append(len(orgs) / elapsed)
                print(f"round {round_number + 1}: " + ", ".join(f"{n} {r[-1]:.1f}/s" for n, r in rates.items()))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        needed = args.chain_findings_per_second / args.findings_per_digest
        print(
            "part 2: digests/s (median of rounds): "
            + ", ".join(f"{name} {rate:.1f}" for name, rate in medians.items())
            + f"; signed/unsigned {medians['signed'] / medians['unsigned']:.2f},"
            f" signed+encrypted/unsigned {medians['signed+encrypted'] / medians['unsigned']:.2f}"
        )
        print(
            f"the chain's {args.chain_findings_per_second:g} findings/s at {args.findings_per_digest} findings"
            f" per digest need {needed:.1f} digests/s: signed {medians['signed'] / needed:.1f}x that,"
            f" signed+encrypted {medians['signed+encrypted'] / needed:.1f}x"
        )
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
