"""Case metadata: merging its sources and turning it into IntelMQ fields.

A finding's case context comes from up to three places. Per top-level key of the case
block, the first that has the key wins:

1. the NSM report's own ``case`` block (the researcher's document);
2. the report's ``extra.nsm.case`` (case metadata submitted with a CSV or nuclei file,
   written by the intake collector);
3. the parser's ``case`` parameter (the operator's setting for a feed of one case).
"""

from collections.abc import Iterable
from typing import Optional

from intelmq_nsm import event_contract as ec
from intelmq_nsm import tlp
from intelmq_nsm.formats.record import RecordError
from intelmq_nsm.formats.schema import validate_part

DEFAULT_TYPE = "vulnerable-system"


def merge_case(*sources: Optional[dict]) -> dict:
    """Merge case blocks, earlier sources first (see the module's docstring)."""
    merged = {}
    for source in sources:
        for key, value in (source or {}).items():
            if key not in merged and value not in (None, "", [], {}):
                merged[key] = value
    return merged


def case_problems(case: dict, require: bool) -> list:
    """Schema problems of a merged case block as ``[(path, reason)]``; with ``require``
    False a case may lack its required keys (nuclei findings carry their own title)."""
    problems = validate_part("case", case, prefix="$.case")
    if not require:
        problems = [p for p in problems if "is a required property" not in p[1]]
    return problems


def cve_ids(values: Iterable) -> list:
    """Lower-cased, de-duplicated CVE ids in their first order."""
    seen = []
    for value in values:
        value = value.strip().lower()
        if value and value not in seen:
            seen.append(value)
    return seen


def case_fields(case: dict, reporter: Optional[dict] = None) -> dict:
    """The IntelMQ fields every event of a report shares."""
    fields = {"classification.type": case.get("classification_type", DEFAULT_TYPE)}
    if "id" in case:
        fields[ec.CASE_ID] = case["id"]
        fields["classification.identifier"] = case["id"]
    if "title" in case:
        fields[ec.CASE_TITLE] = case["title"]
        fields["event_description.text"] = case["title"]
    if "url" in case:
        fields["event_description.url"] = case["url"]
    if case.get("cve"):
        fields["product.vulnerabilities"] = ";".join(cve_ids(case["cve"]))
    product = case.get("product") or {}
    if "vendor" in product:
        fields["product.vendor"] = product["vendor"]
    if "name" in product:
        fields["product.name"] = product["name"]
    if product.get("affected_versions"):
        fields[ec.AFFECTED_VERSIONS] = list(product["affected_versions"])
    if "severity" in case:
        fields["severity"] = case["severity"]
    if "recommendation" in case:
        fields[ec.RECOMMENDATION] = case["recommendation"]
    if "tlp" in case:
        # IntelMQ 3.5's field knows the TLP 1.0 names only; the 2.0 name goes beside it.
        fields["tlp"] = tlp.to_intelmq(case["tlp"])
        fields[ec.TLP] = tlp.normalise(case["tlp"])
    if reporter:
        fields[ec.REPORTER] = dict(reporter)
    return fields


def truncate(text: str, limit: int) -> str:
    """Cut a text to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def require_address(fields: dict) -> None:
    """A finding nobody can be told about is an error, not an event."""
    if not any(key in fields for key in ("source.ip", "source.fqdn", "source.url")):
        raise RecordError("address", "has no address: one of ip, hostname or url is required")


# Keys where the case, given on purpose by the researcher or operator, wins over what a
# scanner's template says; for all other keys the finding's own value wins.
_CASE_WINS = frozenset({"severity", ec.RECOMMENDATION, "product.vendor", "product.name"})


def combine(shared: dict, fields: dict) -> dict:
    """The record's fields merged with the report's shared fields: the shared ones
    that the record does not override (see ``_CASE_WINS``); CVE ids are united."""
    own = {}
    for key, value in fields.items():
        if key == "product.vulnerabilities" and key in shared:
            value = ";".join(cve_ids(shared[key].split(";") + value.split(";")))
        elif key in _CASE_WINS and key in shared:
            continue
        own[key] = value
    return own
