"""A token this installation presents to another one (a CERT's to its hub): one line in a file
that only the bots' user may read.

A token in a file readable by the group or by everyone is refused, as ssh refuses such a
key: whoever can read it can speak for the CERT. The file is read again each time it is
needed, so that a new token takes effect without a restart.
"""

import stat
from pathlib import Path

from intelmq_nsm.auth.tokens import TokenFileError


def token_problem(path) -> str:
    """Why the token file ``path`` cannot be used ("" when it can)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"The token file {path} cannot be read: {exc.strerror or exc}."
    if not stat.S_ISREG(mode):
        return f"The token file {path} is not a regular file."
    if mode & 0o077:
        return (
            f"The token file {path} may be read by others (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 {path}, and give the hub's operators a new token if others did read it."
        )
    return ""


def read_token(path) -> str:
    """The token in ``path``; TokenFileError when the file cannot be used."""
    problem = token_problem(path)
    if problem:
        raise TokenFileError(problem)
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as exc:
        raise TokenFileError(f"The token file {path} cannot be read: {exc}.") from None
    if not text or len(text.splitlines()) != 1 or any(c.isspace() for c in text):
        raise TokenFileError(f"The token file {path} must hold one token on one line.")
    return text
