"""A finding ledger with one case's life: four findings notified, one fixed after two days,
one answered false positive; and the registry that says which constituency shares names."""

from intelmq_nsm.digest.ledger import Ledger, Observation, sqlite_url
from intelmq_nsm.testbed.sample_events import network_match as matches

CASE = "DIVD-2024-00031"
T0 = 1_780_000_000.0  # 2026-05-28
DAY = 86400.0
REGISTRY = """
constituencies:
  - {key: ibd, name: IBD}
  - {key: surf, name: SURFcert, share_names: true}
organisations:
  - {id: UNI-EX, name: Universiteit Voorbeeld, kind: other, constituency: surf}
"""


FINDINGS = (
    # finding id, organisation, name, constituency, target, matched network
    ("nf1-" + "1" * 32, "GM0363", "Amsterdam", "ibd", "192.0.2.10:443", "192.0.2.0/24"),
    ("nf1-" + "2" * 32, "GM0599", "Rotterdam", "ibd", "198.51.100.7:443", "198.51.100.0/24"),
    ("nf1-" + "3" * 32, "GM0363", "Amsterdam", "ibd", "192.0.2.11:443", "192.0.2.0/24"),
    ("nf1-" + "4" * 32, "UNI-EX", "Universiteit Voorbeeld", "surf", "203.0.113.5:443", "203.0.113.0/24"),
)


def observation(finding, vulnerable=True, seq=0):
    finding_id, org_id, name, constituency, target, network = finding
    return Observation(
        finding_id,
        org_id,
        f"event-{finding_id}-{seq}",
        vulnerable=vulnerable,
        org_name=name,
        constituency=constituency,
        case_id=CASE,
        target=target,
        matches=matches(org_id, network),
    )


def case_ledger(path, name="ibd-digest-mail") -> Ledger:
    """The case's ledger at ``path`` (SQLite): notified on day 0, the first finding fixed on
    day 2, the third answered false positive on day 3."""
    ledger = Ledger(sqlite_url(path), name=name)
    ledger.observe([observation(f) for f in FINDINGS], now=T0)
    ledger.record_delivery("digest-1", [(f[0], f[1], "new") for f in FINDINGS], now=T0 + 60)
    ledger.observe([observation(FINDINGS[0], vulnerable=False, seq=1)], now=T0 + 2 * DAY + 60)
    ledger.record_answer(FINDINGS[2][0], FINDINGS[2][1], "false-positive", note="A honeypot.", now=T0 + 3 * DAY)
    return ledger
