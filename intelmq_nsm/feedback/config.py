"""The feedback service's configuration: a YAML (or JSON) file of the keys of :class:`ServiceConfig`
and of the web limits (:data:`~intelmq_nsm.web.limits.PARAMETERS`, the intake collector's names).

Relative paths are taken relative to the file's directory. Unknown keys are refused (a
misspelt ``secret_file`` must not pass unnoticed).
"""

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Optional

import yaml

from intelmq_nsm.web.limits import FORMER_NAMES, PARAMETERS, Limits

#: The service's limits where they differ from the web stack's: its bodies are small (a
#: batch of a CERT's changes at most 1 MiB, a feedback 64 KiB, an owner's form about 26 KB)
#: and its work is light.
LIMITS = Limits(
    body_timeout=15,
    max_body_size=1024 * 1024,
    max_bytes_in_flight=4 * 1024 * 1024,
    workers=4,
    failed_auth_per_minute=10,
    failed_auth_burst=10,
)


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
    #: At a hub: token file of the downstream CERTs for ``POST /v1/outcomes``, each token
    #: bound to one constituency key (``intelmq-nsm tokens add --constituency ibd``);
    #: without one the endpoint answers 503.
    cert_tokens_file: Optional[str] = None
    #: The service's public base URL (as in the links); the pages' forms post to their own path.
    base_url: str = ""
    #: Connections, deadlines, sizes, rate limits (per client address; failed links and
    #: tokens count extra); ``trust_forwarded_for`` behind a proxy that sets X-Forwarded-For.
    limits: Limits = LIMITS


#: The keys that name a file (relative to the configuration file's folder when relative).
FILE_KEYS = ("secret_file", "spool_file", "tokens_file", "operator_tokens_file", "cert_tokens_file")


def from_mapping(document: dict, source: str = "The configuration") -> ServiceConfig:
    """The configuration the keys of ``document`` give (the limits' keys among them);
    ``source`` names it in the ConfigError."""
    own = {f.name for f in fields(ServiceConfig)} - {"limits"}
    unknown = sorted(set(document) - own - set(PARAMETERS) - set(FORMER_NAMES))
    if unknown:
        raise ConfigError(f"{source} has unknown key(s): {', '.join(unknown)}.")
    missing = sorted(f.name for f in fields(ServiceConfig) if f.default is MISSING and f.name not in document)
    if missing:
        raise ConfigError(f"{source} lacks the key(s): {', '.join(missing)}.")
    try:
        limits = Limits.from_parameters({k: v for k, v in document.items() if k not in own}, defaults=LIMITS)
        return ServiceConfig(**{k: v for k, v in document.items() if k in own}, limits=limits)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source} is not valid: {exc}") from None


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
    for key in FILE_KEYS:
        if document.get(key):
            document[key] = str((path.parent / str(document[key])).resolve())
    url = str(document.get("ledger_url", ""))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        document["ledger_url"] = "sqlite:///" + str((path.parent / url[len("sqlite:///") :]).resolve())
    return from_mapping(document, f"The configuration file {path}")
