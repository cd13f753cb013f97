"""OpenPGP through Debian's gpg: the CERT's signing key, detached signatures, encryption.

python-gnupg drives the ``gpg`` program, as IntelMQ's own ``smtp_batch`` output does: gpg
is the implementation receivers check against, it keeps the secret key in its agent, and
the binding adds no cryptography of its own. It is imported when a Signer is made, so that
the bots list and run without it when nothing is signed.

A :class:`Signer` holds one key (by fingerprint) in one GnuPG home; its passphrase, if any,
is read from a file (never a parameter, never the command line). :meth:`Signer.problems`
says, in words an operator acts on, why the key cannot sign: not there, no secret half,
expired, revoked, no signing capability, a wrong passphrase.

Beside it, what the operator does once with gpg and a receiver does with every mail, for
the demo and its test bed: :func:`new_signing_key` (``gpg --quick-generate-key`` without a
prompt), :func:`stop_agent`, and :func:`receiver_check` (``gpg --verify`` in a home of the
receiver's that holds only the public half).
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

#: OpenPGP hash algorithm ids (RFC 4880, 9.4) → the ``micalg`` name of RFC 3156.
MICALG = {"2": "pgp-sha1", "8": "pgp-sha256", "9": "pgp-sha384", "10": "pgp-sha512", "11": "pgp-sha224"}
DIGEST_ALGO = "SHA256"
#: Seconds after which gpg is asked again whether an organisation's key can encrypt.
RECHECK_SECONDS = 3600
#: The programs of Debian's gnupg package that signing needs (gpg starts gpg-agent).
PROGRAMS = ("gpg", "gpg-agent")


class OpenPGPError(Exception):
    """Signing or encrypting failed; the message says why in an operator's words."""


class KeyUnusable(OpenPGPError):
    """The signing key cannot sign now (missing, expired, revoked, wrong passphrase)."""


class RecipientKeyError(OpenPGPError):
    """An organisation's public key cannot be used to encrypt to it."""


def read_passphrase(path: Optional[str]) -> Optional[str]:
    """The passphrase in ``path`` (its first line), or None without a file."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyUnusable(f"The passphrase file {path} cannot be read: {exc.strerror or exc}.") from exc
    return text.splitlines()[0] if text else ""


def _normal(fingerprint: str) -> str:
    return "".join(str(fingerprint or "").split()).upper()


class Signer:
    """The CERT's key in ``home``: sign (detached, armoured) and encrypt to organisations' keys."""

    def __init__(self, home: str, fingerprint: str, passphrase_file: Optional[str] = None, binary: str = "gpg"):
        import gnupg

        if not fingerprint:
            raise KeyUnusable("No signing key: the key's fingerprint is not set.")
        if not home or not Path(home).is_dir():
            raise KeyUnusable(f"The GnuPG home {home!r} is not a directory.")
        self.home = str(home)
        self.fingerprint = _normal(fingerprint)
        self.passphrase_file = passphrase_file
        self.gpg = gnupg.GPG(gnupghome=self.home, gpgbinary=binary)
        self.gpg.encoding = "utf-8"
        # One gpg at a time per home: the delivery thread and check() may share a Signer.
        self._lock = threading.Lock()
        self._imported = {}  # key file → (mtime, fingerprints it held)
        self._usable = {}  # fingerprint → (its key file's mtime, when gpg said it can encrypt)

    # -- the signing key ------------------------------------------------------------

    def key(self, secret: bool = False) -> Optional[dict]:
        """python-gnupg's listing of the signing key (public or secret half), or None."""
        with self._lock:
            keys = self.gpg.list_keys(secret=secret, keys=[self.fingerprint])
        for key in keys:
            if _normal(key.get("fingerprint")) == self.fingerprint:
                return key
        return None

    def problems(self, now: Optional[float] = None, trial: bool = True) -> list:
        """Why the key cannot sign, one sentence each; empty when it can. ``trial`` signs a
        few bytes too, which is the only way to know the passphrase (or the agent) works."""
        now = time.time() if now is None else now
        public = self.key()
        if public is None:
            return [f"The signing key {self.fingerprint} is not in the GnuPG home {self.home}."]
        if self.key(secret=True) is None:
            return [f"The GnuPG home {self.home} holds only the public half of the signing key {self.fingerprint}."]
        found = []
        expires = public.get("expires")
        if expires and float(expires) <= now:
            day = time.strftime("%Y-%m-%d", time.gmtime(float(expires)))
            found.append(f"The signing key {self.fingerprint} expired on {day}; extend it or set a new key.")
        if public.get("trust") == "r":
            found.append(f"The signing key {self.fingerprint} is revoked.")
        if not found and "S" not in (public.get("cap") or ""):
            capabilities = public.get("cap")
            found.append(f"The key {self.fingerprint} has no usable key for signing (capabilities {capabilities!r}).")
        if not found and trial:
            try:
                self.sign(b"intelmq-nsm signing check\r\n")
            except OpenPGPError as exc:
                found.append(str(exc))
        return found

    def expires(self) -> Optional[float]:
        """When the signing key expires (seconds since the epoch), None if never or unknown."""
        key = self.key()
        return float(key["expires"]) if key and key.get("expires") else None

    def public_key(self) -> str:
        """The signing key's public half, ASCII-armoured (for receivers to verify with)."""
        with self._lock:
            return self.gpg.export_keys(self.fingerprint)

    # -- signing and encrypting -----------------------------------------------------

    def sign(self, data: bytes) -> tuple:
        """A detached, armoured signature of ``data`` and its RFC 3156 ``micalg``; raises
        KeyUnusable with gpg's reason."""
        passphrase = read_passphrase(self.passphrase_file)
        with self._lock:
            result = self.gpg.sign(
                data,
                keyid=self.fingerprint,
                detach=True,
                passphrase=passphrase,
                extra_args=["--digest-algo", DIGEST_ALGO],
            )
        if not result or not result.data:
            # gpg's own word for an expired key is "invalid signer": say what is wrong.
            known = self.problems(trial=False)
            if known:
                raise KeyUnusable(" ".join(known))
            reason = result.status or _last_line(result.stderr) or "no signature was made"
            raise KeyUnusable(f"gpg could not sign with the key {self.fingerprint} in {self.home}: {reason}.")
        return result.data.decode("ascii"), MICALG.get(str(result.hash_algo), "pgp-sha256")

    def encrypt(self, data: bytes, fingerprint: str, key_file: str) -> str:
        """``data`` encrypted (armoured) to the key ``fingerprint`` from ``key_file``; raises
        RecipientKeyError when the file lacks that key or the key cannot encrypt."""
        fingerprint = _normal(fingerprint)
        self._import(fingerprint, key_file)
        with self._lock:
            # The registry names the key by fingerprint: that is the trust decision.
            result = self.gpg.encrypt(data, [fingerprint], always_trust=True, armor=True)
        if not result.ok:
            reason = result.status or _last_line(result.stderr)
            raise RecipientKeyError(f"gpg could not encrypt to the key {fingerprint}: {reason}.")
        return result.data.decode("ascii")

    def _import(self, fingerprint: str, key_file: str) -> None:
        """Bring the organisation's key into the home once (again when its file changes)."""
        try:
            mtime = os.stat(key_file).st_mtime
        except OSError as exc:
            raise RecipientKeyError(f"The key file {key_file} cannot be read: {exc.strerror or exc}.") from exc
        known = self._imported.get(key_file)
        if known is None or known[0] != mtime:
            with self._lock:
                result = self.gpg.import_keys(Path(key_file).read_bytes())
            self._imported[key_file] = (mtime, {_normal(f) for f in result.fingerprints})
        if fingerprint not in self._imported[key_file][1]:
            raise RecipientKeyError(f"The key file {key_file} does not hold the key {fingerprint}.")
        # Whether the key can encrypt is asked of gpg again after a while (it may expire),
        # not for every digest: a listing costs as much as the encryption.
        checked = self._usable.get(fingerprint)
        if checked is not None and checked[0] == mtime and time.time() - checked[1] < RECHECK_SECONDS:
            return
        with self._lock:
            keys = [k for k in self.gpg.list_keys(keys=[fingerprint]) if _normal(k.get("fingerprint")) == fingerprint]
        if not keys:
            raise RecipientKeyError(f"The key {fingerprint} from {key_file} was not imported.")
        key = keys[0]
        if key.get("trust") in ("e", "r") or "E" not in (key.get("cap") or ""):
            state = {"e": "expired", "r": "revoked"}.get(key.get("trust"), "without an encryption key")
            raise RecipientKeyError(f"The organisation's key {fingerprint} ({key_file}) is {state}.")
        self._usable[fingerprint] = (mtime, time.time())


def _last_line(text: Optional[str]) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip() and not line.startswith("[GNUPG:]")]
    return lines[-1].strip() if lines else ""


# -- what the operator does once, and what a receiver does -------------------------------


def missing_programs() -> list:
    """The gpg programs that are not on PATH (install Debian's ``gnupg``)."""
    return [program for program in PROGRAMS if shutil.which(program) is None]


def new_signing_key(
    home: str, name: str, email: str, passphrase: Optional[str] = None, expire: str = "1y", comment: str = ""
) -> str:
    """A new ed25519 signing key in the GnuPG home ``home`` (made if missing, mode 0700),
    protected by ``passphrase`` if given; its fingerprint. What an operator does once with
    ``gpg --quick-generate-key`` (runtime-examples/nsm-ibd/README.md), without a prompt."""
    import gnupg

    Path(home).mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    gpg = gnupg.GPG(gnupghome=str(home))
    options = {"name_real": name, "name_email": email, "expire_date": expire}
    if comment:
        options["name_comment"] = comment
    if passphrase:
        options["passphrase"] = passphrase
    else:
        options["no_protection"] = True
    result = gpg.gen_key(gpg.gen_key_input(key_type="EDDSA", key_curve="ed25519", key_usage="sign", **options))
    if not result.fingerprint:
        raise OpenPGPError(f"gpg could not make a key in {home}: {_last_line(result.stderr) or result.status}.")
    return _normal(result.fingerprint)


def stop_agent(home: str) -> None:
    """Stop the gpg-agent that gpg started for ``home`` (it outlives the gpg that started it)."""
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False, timeout=30
    )


def receiver_check(key_file: str, signature: bytes, signed: bytes) -> tuple:
    """``gpg --verify`` of a detached signature as a receiver runs it: the sender's public
    key (``key_file``) imported into a fresh home of the receiver's, the signature and the
    signed bytes in files. ``(good, [(command, what gpg wrote), ...])``: good when gpg
    verified the signature (exit 0); the commands as a receiver types them in their own
    keyring, the throwaway home's own lines (keybox created, ...) left out."""
    # A short path: gpg-agent's socket lives in the home (106 characters at most).
    home = tempfile.mkdtemp(prefix="gv", dir="/tmp")
    try:
        folder = Path(home) / "mail"
        folder.mkdir()
        (folder / "signature.asc").write_bytes(signature)
        (folder / "signed-part").write_bytes(signed)
        steps = [["--import", str(Path(key_file).resolve())], ["--verify", "signature.asc", "signed-part"]]
        transcript, good = [], True
        for step in steps:
            run = subprocess.run(
                ["gpg", "--homedir", home, "--batch", "--no-tty", *step],
                capture_output=True, check=False, timeout=60, cwd=folder,
            )  # fmt: skip
            said = [line for line in run.stderr.decode("utf-8", "replace").splitlines() if home not in line]
            shown = [Path(arg).name if arg.startswith("/") else arg for arg in step]
            transcript.append(("gpg " + " ".join(shown), "\n".join(said)))
            good = good and run.returncode == 0
        return good, transcript
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)
