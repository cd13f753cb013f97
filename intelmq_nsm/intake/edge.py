"""The intake's own edge checks: what a submission's head must say beyond the web stack's checks.

The query parameters, the case metadata of CSV and NDJSON submissions, and the submission
id. (Media type, charset, size, UTF-8 and JSON depth are the web stack's:
:mod:`intelmq_nsm.web.body`.) Each check raises :class:`~intelmq_nsm.web.refusal.Refusal`.
"""

import hashlib
import json
import re
from typing import Optional

from intelmq_nsm.web.refusal import Refusal

SUBMISSION_ID = re.compile(r"^[0-9a-f]{64}$")

#: Case metadata for CSV and NDJSON submissions: query parameter → key path in the case
#: block, and whether the value is a comma-separated list. The header form is
#: ``X-NSM-Case-Id`` etc. (the parameter name with '-' for '_').
CASE_PARAMETERS = {
    "case_id": (("id",), False),
    "case_title": (("title",), False),
    "case_url": (("url",), False),
    "case_cve": (("cve",), True),
    "case_severity": (("severity",), False),
    "case_classification_type": (("classification_type",), False),
    "case_recommendation": (("recommendation",), False),
    "case_tlp": (("tlp",), False),
    "case_product_vendor": (("product", "vendor"), False),
    "case_product_name": (("product", "name"), False),
    "case_product_affected_versions": (("product", "affected_versions"), True),
}
#: A case id as it may appear in a URL path (``/v1/cases/<id>``).
CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
QUERY_PARAMETERS = {"feed_code", *CASE_PARAMETERS}


def check_query(query: dict) -> None:
    unknown = sorted(set(query) - QUERY_PARAMETERS)
    if unknown:
        raise Refusal(400, "bad_parameter", f"Unknown query parameter(s): {', '.join(unknown)}.")


def _header_text(value: str) -> str:
    # HTTP servers decode headers as Latin-1; a UTF-8 title comes back whole this way.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def case_metadata(query: dict, headers) -> Optional[dict]:
    """The case block given with a CSV or NDJSON submission (query parameters win over headers)."""
    case = {}
    for name, (path, is_list) in CASE_PARAMETERS.items():
        values = query.get(name)
        if values is None:
            header = headers.get("X-NSM-" + name.replace("_", "-"))
            values = None if header is None else [_header_text(header)]
        if not values:
            continue
        if is_list:
            value = [item.strip() for v in values for item in v.split(",") if item.strip()]
        else:
            value = values[-1].strip()
        target = case
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return case or None


def submission_id(researcher: str, feed_code: str, content_type: str, case: Optional[dict], body: bytes) -> str:
    """sha256 of researcher, feed code and content: the same report from the same researcher
    under the same feed code, same id (another feed code makes a submission of its own)."""
    digest = hashlib.sha256()
    case_text = json.dumps(case, sort_keys=True)
    pieces = (b"nsm-intake/2", researcher.encode(), feed_code.encode(), content_type.encode(), case_text.encode())
    for piece in pieces:
        digest.update(piece + b"\0")
    digest.update(body)
    return digest.hexdigest()
