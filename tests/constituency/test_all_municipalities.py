"""All 342 municipalities with synthetic assets, 10,000 random events: nobody gets another's finding."""

import ipaddress
from collections import Counter
from datetime import date

import pytest

from intelmq_nsm.constituency import load_registry
from tests.constituency.municipal_registry import Oracle, build, random_events, split_events, write_csv

DAY = date(2025, 6, 1)


@pytest.fixture(scope="module")
def municipalities(tmp_path_factory):
    assets, exclusions = build()
    path = tmp_path_factory.mktemp("registry") / "municipalities.csv"
    write_csv(path, assets, exclusions)
    registry = load_registry([path], today=DAY)
    assert len({org for _, _, org, _ in assets}) == 342 == len(registry.organisations)
    owned = {}
    for kind, value, org, _ in assets:
        owned.setdefault(org, []).append((kind, Oracle.idna(value) if kind == "domain" else value))
    return assets, registry, Oracle(assets, exclusions), owned


@pytest.mark.parametrize("rule", ["all", "most-specific"])
def test_10000_random_events_are_routed_exactly_as_the_documented_rule_says(municipalities, rule):
    assets, registry, oracle, owned = municipalities
    outcomes = Counter()
    for event in random_events(assets, 10_000):
        routes = registry.index.decide(list(event.items()), day=DAY, owners=rule)
        tagged = {o.id for route in routes for o in route.organisations}
        # The safety property: every organisation tagged owns the asset that matched.
        for route in routes:
            assert route.constituency == "ibd"
            for match in route.matches:
                assert (match.kind, match.matched) in owned[match.organisation.id], (event, match)
                if match.kind == "network":
                    assert ipaddress.ip_address(match.value) in ipaddress.ip_network(match.matched)
        # No finding reaches an organisation that owns neither its service nor its network.
        assert tagged <= oracle.service_owners(event) | oracle.network_owners(event), event
        # And exactness: the same organisations a brute-force reading of the rule gives.
        assert tagged == oracle.owners(event, rule), event
        assert any(r.tie for r in routes) == oracle.tie(event, rule), event
        outcomes["tie" if any(r.tie for r in routes) else len(tagged)] += 1
    # The random events exercised every outcome: unmatched, one owner, ties, and (all) two owners.
    assert outcomes[0] > 300 and outcomes[1] > 4000 and outcomes["tie"] > 10, outcomes
    assert (outcomes[2] > 500) if rule == "all" else (outcomes[2] == 0), outcomes


def test_a_domain_of_one_municipality_on_an_address_of_another_tags_exactly_those_two(municipalities):
    assets, registry, oracle, _ = municipalities
    events = split_events(assets, 2_000)
    for event, service, network in events:
        assert oracle.owners(event) == {service, network}, event  # the generator's claim, checked
        [route] = registry.index.decide(list(event.items()), day=DAY)
        assert {o.id: route.role_of(o.id) for o in route.organisations} == {service: "service", network: "network"}
        assert not route.tie and route.constituency == "ibd"
        [[most_specific]] = [[o.id for o in r.organisations] for r in registry.index.decide(
            list(event.items()), day=DAY, owners="most-specific"
        )]  # fmt: skip
        assert most_specific == service
    assert len({(s, n) for _, s, n in events}) > 1_500  # many different pairs, not one pair again and again
