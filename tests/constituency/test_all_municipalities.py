"""All 342 municipalities with synthetic assets, 10,000 random events: nobody gets another's finding."""

import ipaddress
from collections import Counter
from datetime import date

from intelmq_nsm.constituency import load_registry
from tests.constituency.municipal_registry import Oracle, build, random_events, write_csv


def test_10000_random_events_are_routed_exactly_as_the_documented_precedence_says(tmp_path):
    assets, exclusions = build()
    write_csv(tmp_path / "municipalities.csv", assets, exclusions)
    registry = load_registry([tmp_path / "municipalities.csv"], today=date(2025, 6, 1))
    assert len({org for _, _, org, _ in assets}) == 342 == len(registry.organisations)
    oracle = Oracle(assets, exclusions)
    owned = {}
    for kind, value, org, _ in assets:
        owned.setdefault(org, []).append((kind, Oracle.idna(value) if kind == "domain" else value))

    outcomes = Counter()
    for event in random_events(assets, 10_000):
        routes = registry.index.decide(list(event.items()), day=date(2025, 6, 1))
        tagged = {o.id for route in routes for o in route.organisations}
        # The safety property: every organisation tagged owns the asset that matched.
        for route in routes:
            assert route.constituency == "ibd"
            for match in route.matches:
                assert (match.kind, match.matched) in owned[match.organisation.id], (event, match)
                if match.kind == "network":
                    assert ipaddress.ip_address(match.value) in ipaddress.ip_network(match.matched)
        # And exactness: the same organisations a brute-force reading of the precedence gives.
        assert tagged == oracle.owners(event), event
        outcomes["tie" if any(r.tie for r in routes) else len(tagged)] += 1
    # The random events exercised every outcome: unmatched, one owner and ties.
    assert outcomes[0] > 300 and outcomes[1] > 5000 and outcomes["tie"] > 10, outcomes
