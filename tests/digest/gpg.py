"""Throwaway GnuPG homes and keys for tests, and a receiver's checks of a PGP/MIME mail.

Everything goes through Debian's ``gpg`` command, not through the package's code, so that
a test checks the mail as any receiver would. A home lives under a short /tmp path
(gpg-agent's socket path is limited to ~107 bytes, and pytest's tmp_path can be longer);
``close`` stops its agent and removes it.
"""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path


class Home:
    """A private GNUPGHOME with keys made in it (no passphrase prompts, no network)."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
        os.chmod(self.path, 0o700)

    def gpg(self, *args, data=None, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["gpg", "--homedir", str(self.path), "--batch", "--no-tty", *args],
            input=data,
            capture_output=True,
            check=check,
            timeout=60,
        )

    def new_key(self, uid: str, encrypt: bool = False, passphrase: str = "", expired: bool = False) -> str:
        """A fresh ed25519 key (plus a cv25519 encryption subkey with ``encrypt``); its fingerprint.
        ``expired``: made as on 2020-01-01 with a day's validity, so it expired long ago."""
        faked = ["--faked-system-time", "20200101T000000"] if expired else []
        secret = ["--pinentry-mode", "loopback", "--passphrase", passphrase]
        self.gpg(*faked, *secret, "--quick-gen-key", uid, "ed25519", "sign,cert", "1d" if expired else "1y")
        fingerprint = self.fingerprint(uid)
        if encrypt:
            self.gpg(*faked, *secret, "--quick-add-key", fingerprint, "cv25519", "encr", "1d" if expired else "1y")
        return fingerprint

    def fingerprint(self, uid: str) -> str:
        listing = self.gpg("--with-colons", "--list-secret-keys", uid).stdout.decode()
        return re.search(r"^fpr:+([0-9A-F]{40}):", listing, re.M).group(1)

    def export(self, fingerprint: str) -> bytes:
        return self.gpg("--armor", "--export", fingerprint).stdout

    def key_file(self, uid: str, path) -> str:
        """A new key that can encrypt, its public half written to ``path`` as a registry's
        key file; its fingerprint."""
        fingerprint = self.new_key(uid, encrypt=True)
        Path(path).write_bytes(self.export(fingerprint))
        return fingerprint

    def import_key(self, armoured: bytes) -> None:
        self.gpg("--import", data=armoured)

    def verify(self, signed: bytes, signature: bytes) -> subprocess.CompletedProcess:
        """``gpg --verify`` of a detached signature, as a receiver runs it."""
        folder = Path(tempfile.mkdtemp(dir=self.path))
        (folder / "part.bin").write_bytes(signed)
        (folder / "sig.asc").write_bytes(signature)
        return self.gpg("--verify", str(folder / "sig.asc"), str(folder / "part.bin"), check=False)

    def decrypt(self, armoured: bytes) -> bytes:
        return self.gpg("--decrypt", data=armoured).stdout

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.path), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def boundary(entity: bytes) -> bytes:
    """The boundary of the first Content-Type header of a MIME entity."""
    head = entity.split(b"\r\n\r\n", 1)[0]
    return re.search(rb'boundary="([^"]+)"', head).group(1)


def parts(entity: bytes) -> list:
    """The parts of a multipart entity, byte for byte as they stand between its boundaries
    (the CRLF before a boundary belongs to the boundary, RFC 2046 5.1.1)."""
    mark = b"--" + boundary(entity)
    # A CRLF in front, so that a body without preamble splits like one with it.
    body = b"\r\n" + entity.split(b"\r\n\r\n", 1)[1]
    result = []
    for piece in body.split(b"\r\n" + mark)[1:]:  # the first is the preamble
        if piece.startswith(b"--"):
            break
        result.append(piece[len(b"\r\n") :])
    return result


def signed_and_signature(entity: bytes) -> tuple:
    """The signed part's bytes and the armoured signature of a ``multipart/signed`` entity."""
    signed, signature_part = parts(entity)
    return signed, signature_part.split(b"\r\n\r\n", 1)[1]


def encrypted_payload(entity: bytes) -> bytes:
    """The armoured OpenPGP message of a ``multipart/encrypted`` entity."""
    return parts(entity)[1].split(b"\r\n\r\n", 1)[1]
