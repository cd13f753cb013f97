"""The feedback service: owners answer through signed links, the IBD's systems through an API.

- :mod:`.links`: signed feedback links (and the forms' CSRF tokens bound to them);
- :mod:`.answers`: what the service reads from and writes to the finding ledger;
- :mod:`.pages`: the owners' HTML page (jinja2, Dutch and English, no JavaScript);
- :mod:`.api`: ``POST /v1/feedback`` for the ticket system and ``GET /v1/openapi.json``;
- :mod:`.overview`: the IBD operators' overview at ``/operators``;
- :mod:`.context`: :class:`~.context.ServiceContext`, what the endpoints share, typed;
- :mod:`.server`: :func:`~.server.service_routes`, the one list of the service's routes,
  and :class:`~.server.FeedbackServer` on the shared web stack (:mod:`intelmq_nsm.web`);
- :mod:`.config`: the service's configuration file (``intelmq-nsm serve --config``).
"""
