"""The signing keys of an example laid out in a working folder.

An example's digest output names the CERT's key (``openpgp_fingerprint``), its GnuPG home
and perhaps a passphrase file, as an operator's runtime does; the key itself is never part
of the example. When the example is laid out, every home that lies inside the working
folder gets a fresh key (with a fresh passphrase in the file, mode 0600, when the output
has one) and the outputs the key's fingerprint: what the operator does once with gpg (the
example's README), done without a prompt or the network.

gpg-agent keeps its socket in the home, and a socket path is limited to 106 characters;
a working folder under pytest's long temporary paths passes that. Such a home gets
libassuan's socket redirection files (``%Assuan%`` / ``socket=…``), which send the agent's
sockets to a short folder under /tmp. ``SigningKey.close`` stops the agent and removes
that folder.
"""

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

#: gpg-agent's sockets in a home; the longest name decides whether the home's path fits.
AGENT_SOCKETS = ("S.gpg-agent", "S.gpg-agent.extra", "S.gpg-agent.browser", "S.gpg-agent.ssh")
#: The longest socket path gpg-agent takes: 106 characters, as tried with gpg 2.2.40 (a
#: Unix-domain socket's sun_path holds 108 bytes with its NUL; libassuan keeps one more).
SOCKET_PATH_MAX = 106
#: How long the test bed's keys are valid: long past any run, short of the output's
#: check warning (30 days before expiry).
EXPIRE = "1y"


@dataclass
class SigningKey:
    """One fresh key: the digest outputs that sign with it, its home and fingerprint."""

    bot_ids: list
    home: Path
    fingerprint: str
    passphrase_file: Optional[Path] = None
    socket_dir: Optional[Path] = None

    def public_key(self) -> str:
        """The key's public half, ASCII-armoured (what receivers verify with)."""
        from intelmq_nsm.digest.openpgp import Signer

        return Signer(str(self.home), self.fingerprint, self.passphrase_file).public_key()

    def close(self) -> None:
        from intelmq_nsm.digest.openpgp import stop_agent

        stop_agent(str(self.home))
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def signing_homes(runtime: dict, workdir: Path) -> dict:
    """``{home: [bot ids]}`` of the bots of a localised ``runtime`` that sign with a key in
    a GnuPG home inside ``workdir`` (a home elsewhere is an operator's own, left alone)."""
    workdir = Path(workdir).resolve()
    homes = {}
    for bot_id, bot in runtime.items():
        if bot_id == "global":
            continue
        parameters = bot.get("parameters") or {}
        home = parameters.get("openpgp_home")
        if parameters.get("openpgp_fingerprint") and home and Path(home).resolve().is_relative_to(workdir):
            homes.setdefault(Path(home), []).append(bot_id)
    return homes


def make_signing_keys(runtime: dict, workdir: Path) -> list:
    """A fresh key in every GnuPG home inside ``workdir`` that a bot of the localised
    ``runtime`` signs with; that bot's ``openpgp_fingerprint`` set to it (in ``runtime``).
    Returns the SigningKeys, to be closed once the bots are stopped."""
    from intelmq_nsm.digest.openpgp import new_signing_key

    keys = []
    try:
        for home, bot_ids in signing_homes(runtime, workdir).items():
            first = runtime[bot_ids[0]]["parameters"]
            socket_dir = _fresh_home(home)
            key = SigningKey(bot_ids, home, "", socket_dir=socket_dir)
            keys.append(key)
            passphrase = None
            if first.get("openpgp_passphrase_file"):
                key.passphrase_file = Path(first["openpgp_passphrase_file"])
                passphrase = _write_passphrase(key.passphrase_file)
            key.fingerprint = new_signing_key(
                str(home),
                name=runtime[bot_ids[0]].get("name") or bot_ids[0],
                email=first.get("smtp_from") or f"{bot_ids[0]}@test-bed.example",
                comment="intelmq-nsm test bed",
                passphrase=passphrase,
                expire=EXPIRE,
            )
            for bot_id in bot_ids:
                parameters = runtime[bot_id]["parameters"]
                parameters["openpgp_fingerprint"] = key.fingerprint
                if key.passphrase_file is not None:
                    parameters["openpgp_passphrase_file"] = str(key.passphrase_file)
    except BaseException:
        for key in keys:
            key.close()
        raise
    return keys


def _fresh_home(home: Path) -> Optional[Path]:
    """Make ``home`` (mode 0700); when its agent's socket paths would be too long, redirect
    them to a short folder, which is returned."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    # gpg-agent makes the home's path absolute before it names its sockets.
    if len(str(home.absolute() / max(AGENT_SOCKETS, key=len))) <= SOCKET_PATH_MAX:
        return None
    socket_dir = Path(tempfile.mkdtemp(prefix="gs", dir="/tmp"))
    for name in AGENT_SOCKETS:
        (home / name).write_text(f"%Assuan%\nsocket={socket_dir / name}\n", encoding="utf-8")
    return socket_dir


def _write_passphrase(path: Path) -> str:
    """A fresh passphrase in ``path``, readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(32)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(passphrase + "\n", encoding="utf-8")
    return passphrase
