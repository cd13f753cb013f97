"""The web stack's limits against hostile and careless clients, in one object per server.

A bot (its parameters) and a service (its configuration file) name the same limits with
the same words: :meth:`Limits.from_parameters` builds the object from either, and
:meth:`Limits.parameters` gives them back (a benchmark writes a bot's parameters with it).
The class defaults are the web stack's (the intake uses them as they are); a service
whose endpoints take small bodies states its own defaults as one ``Limits(...)``.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

#: Former names of the feedback service's configuration keys, still understood.
FORMER_NAMES = {"failures_per_minute": "failed_auth_per_minute", "failures_burst": "failed_auth_burst"}


@dataclass(frozen=True)
class Limits:
    #: Open connections at most; the excess is answered 503 with Retry-After at once.
    #: Idle connections cost tornado little, so this is far above the cap per address.
    max_connections: int = 2048
    #: Open connections at most from one client address (an IPv6 client: its /64), so
    #: that one source cannot take every connection; not applied with
    #: ``trust_forwarded_for`` (then every connection comes from the proxy).
    max_connections_per_address: int = 64
    #: Seconds for the whole request head (and between keep-alive requests).
    header_timeout: float = 10
    #: Seconds for the whole body (408 after that).
    body_timeout: float = 30
    #: The largest request head in bytes (431 above it).
    max_header_size: int = 16 * 1024
    #: The largest body any endpoint takes (an endpoint may declare less), in bytes.
    max_body_size: int = 50 * 1024 * 1024
    #: Request body bytes received at once, reserved by Content-Length (503 above it).
    max_bytes_in_flight: int = 64 * 1024 * 1024
    #: The most items one body of a batch endpoint may hold (a hub's ``POST /v1/outcomes``:
    #: changes); more is refused whole with 413, so that a client sends smaller batches.
    max_batch_items: int = 1000
    #: Threads for the endpoints' blocking work.
    workers: int = 8
    #: Sustained requests per client (a token, or an address) and minute; 0: no limit.
    requests_per_minute: int = 60
    #: Requests a client may make at once before the rate applies.
    burst: int = 30
    #: Failed authentications (a wrong token, a bad link) per address, and per token id,
    #: and minute after the burst; 0: no limit.
    failed_auth_per_minute: int = 30
    failed_auth_burst: int = 10
    #: Take the client's address from the last ``X-Forwarded-For`` entry (the one the
    #: proxy in front added); only behind a proxy that sets it.
    trust_forwarded_for: bool = False
    # Not parameters: the stack's own tuning.
    light_workers: int = 2
    linger_seconds: float = 2.0
    retry_after: int = 5

    def __post_init__(self):
        for name in PARAMETERS:
            value = getattr(self, name)
            if name == "trust_forwarded_for":
                if not isinstance(value, bool):
                    raise ValueError(f"Parameter {name} must be true or false, not {value!r}.")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Parameter {name} must be a number, not {value!r}.")
            if value < 0 or (value == 0 and name not in _ZERO_MEANS_OFF):
                least = "0 or more" if name in _ZERO_MEANS_OFF else "more than 0"
                raise ValueError(f"Parameter {name} must be {least}, not {value!r}.")

    @classmethod
    def from_parameters(cls, parameters, defaults: Optional["Limits"] = None) -> "Limits":
        """The limits a bot's parameters (its attributes) or a service's configuration (a
        mapping) set, each other one from ``defaults`` (else the class's). Names this
        object does not know are left alone; an empty value means the default."""
        if isinstance(parameters, Mapping):
            found = dict(parameters)
        else:
            found = {
                name: getattr(parameters, name) for name in (*PARAMETERS, *FORMER_NAMES) if hasattr(parameters, name)
            }
        values = {}
        for name, value in found.items():
            name = FORMER_NAMES.get(name, name)
            if name in PARAMETERS and value is not None and value != "":
                values[name] = value
        return dataclasses.replace(defaults or cls(), **values)

    def parameters(self) -> dict:
        """The parameters that give these limits (as a bot's ``parameters`` take them)."""
        return {name: getattr(self, name) for name in PARAMETERS}


#: The limits an operator sets, by the name a bot's parameter or a configuration key has.
_TUNING = ("light_workers", "linger_seconds", "retry_after")
PARAMETERS = tuple(f.name for f in dataclasses.fields(Limits) if f.name not in _TUNING)
#: Rates of 0 switch their limit off; a burst of 0 allows one request at once.
_ZERO_MEANS_OFF = ("requests_per_minute", "burst", "failed_auth_per_minute", "failed_auth_burst")
