"""Tokens in requests, checked against a token file: one check for every service.

The intake's researchers, the feedback service's ticket system and its operators each have
a token file (:mod:`intelmq_nsm.auth.tokens`); a request carries its token in the
``Authorization: Bearer`` header (the operators' login form hands it over as a field).
:class:`TokenCheck` answers every way it can go wrong the same way for all of them:

- failed attempts are limited per client address and per token id, checked before any
  hash is computed (``429 too_many_failures``; :meth:`TokenCheck.screen` does the same
  on the event loop without a hash, so that a flood never queues for the workers);
- no, a malformed, an unknown, a revoked or an expired token: ``401`` with
  ``WWW-Authenticate: Bearer``, and one failure counted for the address and the token id;
  a token checked before (an operator's session) is checked again on every request
  (:meth:`TokenCheck.recheck`): revoked or expired, ``401`` at once;
- a token file that cannot be used refuses every token (``503 server_misconfigured``),
  logged at ERROR once per problem; too many hashes at once: ``503 busy``.
"""

import logging
from typing import Optional

from intelmq_nsm.auth.tokens import TokenEntry, TokenFileError, TokenVerifier, VerifierBusy
from intelmq_nsm.web import ratelimit
from intelmq_nsm.web.app import Request
from intelmq_nsm.web.ratelimit import Throttle, retry_after
from intelmq_nsm.web.refusal import Refusal


def bearer_token(request: Request) -> Optional[str]:
    """The token of the request's ``Authorization: Bearer`` header, None without one."""
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


class TokenCheck:
    """Tokens of one token file, for one service (``realm`` names it in ``WWW-Authenticate``)."""

    def __init__(self, verifier: TokenVerifier, throttle: Throttle, logger: logging.Logger, realm: str):
        self.verifier, self.throttle, self.logger, self.realm = verifier, throttle, logger, realm
        self._told: Optional[str] = None

    def screen(self, request: Request) -> None:
        """The failure limits, quick and in memory (no hash): for the event loop."""
        token = bearer_token(request)
        if self.verifier.is_verified(token):
            return
        token_id = self.verifier.token_id(token)
        keys = [ratelimit.address(request.remote)] + ([ratelimit.token(token_id)] if token_id else [])
        self.throttle.before_trying(*keys)

    def authenticate(self, request: Request) -> TokenEntry:
        """The entry of the request's bearer token, or a Refusal."""
        return self.check(bearer_token(request), request.remote)

    def check(self, token: Optional[str], remote: str) -> TokenEntry:
        """The entry of ``token`` presented from ``remote``, or a Refusal."""
        keys = [ratelimit.address(remote)]

        def admit(token_id: str) -> None:
            keys.append(ratelimit.token(token_id))
            self.throttle.before_trying(*keys)

        try:
            entry, reason = self.verifier.verify(token, admit)
        except TokenFileError as exc:
            raise self._misconfigured(str(exc)) from None
        except VerifierBusy:
            raise Refusal(
                503, "busy", "Too many token checks at once; try again shortly.", headers=retry_after(2)
            ) from None
        if entry is None:
            self.throttle.failed(*keys)
            raise Refusal(401, "unauthorized", reason, headers={"WWW-Authenticate": f'Bearer realm="{self.realm}"'})
        return entry

    def recheck(self, token_id: str) -> TokenEntry:
        """The entry of the token ``token_id`` checked before (at a login), if it is still
        valid now; a revoked, expired or removed token is a 401 Refusal at once."""
        try:
            entry, reason = self.verifier.standing(token_id)
        except TokenFileError as exc:
            raise self._misconfigured(str(exc)) from None
        if entry is None:
            raise Refusal(401, "unauthorized", reason, headers={"WWW-Authenticate": f'Bearer realm="{self.realm}"'})
        return entry

    def file_problem(self) -> Optional[str]:
        """The token file's problem (re-read if it changed; logged once), None when it is fine."""
        problem = self.verifier.check_file()
        if problem:
            self._misconfigured(problem)
        else:
            self._told = None
        return problem

    def _misconfigured(self, problem: str) -> Refusal:
        if problem != self._told:
            self._told = problem
            self.logger.error("Tokens for %s are refused until the token file is mended: %s", self.realm, problem)
        return Refusal(
            503,
            "server_misconfigured",
            "This service's configuration has a problem (its token file); its operators must mend it. "
            "Nothing was accepted; try again later.",
            headers=retry_after(60),
        )
