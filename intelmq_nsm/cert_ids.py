"""The id of the organisation that stands for a sectoral CERT as a whole: ``cert:<key>``.

One spelling for every side that names a CERT by its constituency key: the owner of what
a CERT claims without naming an organisation of its own (a hub's registry, from the
CERT's claims file), the organisation of a hub's ledger records of the findings forwarded
to that CERT's instance, and the source of the changes the CERT reports back
(``cert:ibd``, ``cert:ibd/owner``). A leaf: the registry, the ledger and the feedback
service read it alike.
"""

#: The prefix, followed by the CERT's constituency key in the hub's registry.
CERT_PREFIX = "cert:"


def cert_organisation(key: str) -> str:
    """The organisation id that stands for the CERT of constituency ``key``: ``cert:ibd``."""
    return CERT_PREFIX + key


def cert_key(org_id: str) -> str:
    """The constituency key of a CERT's organisation id ``cert:<key>``; "" for any other."""
    return org_id[len(CERT_PREFIX) :] if org_id.startswith(CERT_PREFIX) else ""
