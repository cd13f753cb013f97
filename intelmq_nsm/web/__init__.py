"""The web layer the intake and the feedback service share, one module per mechanism.

- :mod:`.limits`: :class:`~.limits.Limits`, every limit against hostile clients in one
  object, built from a bot's parameters or a service's configuration;
- :mod:`.app`: :class:`~.app.Routes` of :class:`~.app.Endpoint`\\ s (what a body may be, how
  refusals are rendered), :class:`~.app.Request`, :class:`~.app.Response`;
- :mod:`.framing` (one body length, digits only), :mod:`.body` (media type, size, UTF-8,
  JSON depth per endpoint), :mod:`.nesting` (the depth of JSON, counted without parsing);
- :mod:`.ratelimit`: rate limits per client and the ``429`` with ``Retry-After``;
- :mod:`.bearer`: bearer tokens checked against a token file (:mod:`intelmq_nsm.auth`);
- :mod:`.refusal`: a refusal (status, code, sentence, problems);
- :mod:`.server`: the tornado server in a thread, its worker pools and connection caps.
"""
