"""The feedback service's configuration: a YAML (or JSON) file of the keys of :class:`ServiceConfig`.

Relative paths are taken relative to the file's directory. Unknown keys are refused (a
misspelt ``secret_file`` must not pass unnoticed).
"""

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Optional

import yaml


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the key and the reason."""


@dataclass
class ServiceConfig:
    #: The finding ledger the digest output writes: ``sqlite:///…`` (by default the
    #: output's spool file) or ``postgresql://…``; and its name (the output's
    #: ``ledger_name``, by default its bot id).
    ledger_url: str
    ledger_name: str
    #: The file holding the links' secret, the same file as the digest output's
    #: ``feedback_secret_file``.
    secret_file: str
    host: str = "127.0.0.1"
    port: int = 8081
    #: Where the facts of delivered digests are read (the output's spool file); for a
    #: SQLite ledger its own file is used when this is not set.
    spool_file: Optional[str] = None
    #: Token file of the IBD's systems for ``POST /v1/feedback`` (the intake's format,
    #: made with ``intelmq-nsm tokens add``); without one the API answers 503.
    tokens_file: Optional[str] = None
    #: Token file of the IBD's operators for the overview (``/operators``; the intake's
    #: format, made with ``intelmq-nsm tokens add``); without one the overview is off.
    operator_tokens_file: Optional[str] = None
    #: The service's public base URL (as in the links); the pages' forms post to their own path.
    base_url: str = ""
    requests_per_minute: int = 60
    burst: int = 30
    failures_per_minute: int = 10
    failures_burst: int = 10
    max_connections: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 15.0
    workers: int = 4
    #: Behind a reverse proxy that sets X-Forwarded-For: rate limits per the client's address.
    trust_forwarded_for: bool = False


_PATHS = ("secret_file", "spool_file", "tokens_file", "operator_tokens_file")


def load(path) -> ServiceConfig:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"The configuration file {path} cannot be read: {exc.strerror or exc}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"The configuration file {path} is not valid YAML: {exc}.") from None
    if not isinstance(document, dict):
        raise ConfigError(f"The configuration file {path} must hold a mapping of keys.")
    known = {f.name for f in fields(ServiceConfig)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f"The configuration file {path} has unknown key(s): {', '.join(unknown)}.")
    missing = sorted(f.name for f in fields(ServiceConfig) if f.default is MISSING and f.name not in document)
    if missing:
        raise ConfigError(f"The configuration file {path} lacks the key(s): {', '.join(missing)}.")
    for key in _PATHS:
        if document.get(key):
            document[key] = str((path.parent / str(document[key])).resolve())
    url = str(document["ledger_url"])
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        document["ledger_url"] = "sqlite:///" + str((path.parent / url[len("sqlite:///") :]).resolve())
    try:
        return ServiceConfig(**document)
    except TypeError as exc:
        raise ConfigError(f"The configuration file {path} is not valid: {exc}.") from None
