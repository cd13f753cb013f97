"""The constituency expert on IntelMQ's BotTestCase: tagging, precedence and named paths."""

import json
import shutil
import time
import unittest
from pathlib import Path

from intelmq.lib.exceptions import InvalidArgument
from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as contract
from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot
from tests.harness import wait_for

DATA = Path(__file__).resolve().parents[2] / "constituency" / "data"
PATHS = ["_default", "ibd", "surf"]

AMSTERDAM = {"id": "GM0363", "name": "Amsterdam", "kind": "municipality", "contacts": ["ciso@amsterdam.example"]}
DEN_HAAG = {"id": "GM0518", "name": "'s-Gravenhage", "kind": "municipality", "contacts": ["security@denhaag.example"]}
ROTTERDAM = {"id": "GM0599", "name": "Rotterdam", "kind": "municipality", "contacts": []}
DORDRECHT = {"id": "GM0505", "name": "Dordrecht", "kind": "municipality", "contacts": []}
SSC = {
    "id": "SSC-DRECHT", "name": "Servicecentrum Drechtsteden", "kind": "shared-service", "contacts": ["soc@ssc.example"]
}  # fmt: skip
UNIVERSITY = {"id": "SURF-UNI1", "name": "Universiteit Voorbeeld", "kind": "other", "contacts": []}


def service(organisation):
    return dict(organisation, role="service")


def network(organisation):
    return dict(organisation, role="network")


def event(**fields):
    message = {"__type": "Event", "classification.type": "vulnerable-system"}
    message.update({key.replace("__", "."): value for key, value in fields.items()})
    return message


def match(field, value, kind, matched, organisation, note="", source="manual"):
    return {
        "field": field, "value": value, "kind": kind, "matched": matched,
        "organisation": organisation, "source": source, "note": note,
    }  # fmt: skip


DOMAIN_MATCH = match("source.fqdn", "www.amsterdam.example", "domain", "amsterdam.example", "GM0363")


def ip_match(value, matched, organisation, note=""):
    return match("source.ip", value, "network", matched, organisation, note)


class RoutedOutputs:
    def outputs(self, path):
        return self.get_output_queue(path=path)


class TestConstituencyExpertBot(RoutedOutputs, BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": str(DATA)}
        cls.allowed_warning_count = 1  # the test registry's ended organisation GM9001 is reported

    def run_routed(self, *messages, **parameters):
        self.input_message = list(messages)
        self.prepare_bot(parameters=parameters, destination_queues=PATHS)
        self.run_bot(iterations=len(messages), prepare=False)

    def assertTagged(self, position, original, path, organisations, matches, tie=None):
        expected = dict(original)
        expected["constituency"] = path
        expected[contract.ORGANISATIONS] = organisations
        expected[contract.MATCHES] = matches
        if tie:
            expected[contract.TIE] = tie
        version = self.bot._registry.version
        expected[contract.REGISTRY_VERSION] = version
        assert version.startswith("test-1 (sha256:")
        self.assertMessageEqual(position, expected, path=path)

    def test_the_service_owner_and_the_network_owner_of_one_constituency_share_one_event(self):
        original = event(source__fqdn="www.amsterdam.example", source__ip="192.0.2.130")
        self.run_routed(original)
        matches = [DOMAIN_MATCH, ip_match("192.0.2.130", "192.0.2.128/25", "GM0518")]
        self.assertTagged(0, original, "ibd", [service(AMSTERDAM), network(DEN_HAAG)], matches)
        assert len(self.outputs("ibd")) == 1 and self.outputs("_default") == [] and self.outputs("surf") == []

    def test_owners_of_two_constituencies_get_one_copy_each(self):
        original = event(source__fqdn="vpn.denhaag.example", source__ip="203.0.113.5")
        self.run_routed(original)
        vpn = match("source.fqdn", "vpn.denhaag.example", "domain", "denhaag.example", "GM0518")
        ibd = ip_match("203.0.113.5", "203.0.113.0/25", "GM0363", "campus network shared with the university")
        surf = ip_match("203.0.113.5", "203.0.113.0/25", "SURF-UNI1", "campus network shared with the municipality")
        self.assertTagged(0, original, "ibd", [network(AMSTERDAM), service(DEN_HAAG)], [vpn, ibd])
        self.assertTagged(0, original, "surf", [network(UNIVERSITY)], [surf])
        assert len(self.outputs("ibd")) == 1 and len(self.outputs("surf")) == 1

    def test_an_exclusion_on_the_network_leaves_only_the_service_owner(self):
        original = event(source__fqdn="www.amsterdam.example", source__ip="192.0.2.200")
        self.run_routed(original)
        self.assertTagged(0, original, "ibd", [service(AMSTERDAM)], [DOMAIN_MATCH])

    def test_owners_most_specific_lets_the_domain_decide_alone(self):
        original = event(source__fqdn="www.amsterdam.example", source__ip="192.0.2.130")
        self.run_routed(original, owners="most-specific")
        matches = [DOMAIN_MATCH]
        self.assertTagged(0, original, "ibd", [service(AMSTERDAM)], matches)
        assert self.outputs("_default") == [] and self.outputs("surf") == []

    def test_the_longest_prefix_decides_and_an_exclusion_never_matches(self):
        inside, excluded = event(source__ip="192.0.2.130"), event(source__ip="192.0.2.200")
        self.run_routed(inside, excluded)
        self.assertTagged(0, inside, "ibd", [network(DEN_HAAG)], [ip_match("192.0.2.130", "192.0.2.128/25", "GM0518")])
        self.assertMessageEqual(0, excluded, path="_default")

    def test_ipv6_and_ipv4_mapped_ipv6(self):
        v6, mapped = event(source__ip="2001:db8:518::25"), event(source__ip="::ffff:192.0.2.9")
        self.run_routed(v6, mapped)
        self.assertTagged(
            0, v6, "ibd", [network(DEN_HAAG)], [ip_match("2001:db8:518::25", "2001:db8:518::/48", "GM0518")]
        )
        [tagged] = [self.outputs("ibd")[1]]
        assert '"matched": "192.0.2.0/24"' in tagged and '"GM0363"' in tagged

    def test_idn_domains_and_url_hosts_with_userinfo_port_uppercase_and_trailing_dot(self):
        idn = event(source__fqdn="Mail.Bürgerportal.TEST.")
        url = event(source__url="https://admin:pw@WWW.Rotterdam.EXAMPLE.:8443/login")
        self.run_routed(idn, url)
        gemeente_zwijndrecht = {"id": "GM0642", "name": "Zwijndrecht", "kind": "municipality", "contacts": []}
        normalised = dict(idn, **{"source.fqdn": "mail.xn--brgerportal-thb.test"})
        matched = "xn--brgerportal-thb.test"
        fqdn_match = match("source.fqdn", "mail.xn--brgerportal-thb.test", "domain", matched, "GM0642")
        self.assertTagged(0, normalised, "ibd", [service(gemeente_zwijndrecht)], [fqdn_match])
        url_match = match("source.url", url["source.url"], "domain", "www.rotterdam.example", "GM0599")
        self.assertTagged(1, url, "ibd", [service(ROTTERDAM)], [url_match])

    def test_an_asset_of_two_constituencies_is_sent_once_per_constituency(self):
        original = event(source__ip="203.0.113.5")
        self.run_routed(original)
        note = "campus network shared with the {}"
        ibd = ip_match("203.0.113.5", "203.0.113.0/25", "GM0363", note.format("university"))
        surf = ip_match("203.0.113.5", "203.0.113.0/25", "SURF-UNI1", note.format("municipality"))
        self.assertTagged(0, original, "ibd", [network(AMSTERDAM)], [ibd])
        self.assertTagged(0, original, "surf", [network(UNIVERSITY)], [surf])
        assert self.outputs("_default") == []

    def test_a_municipality_and_its_shared_service_organisation_are_both_tagged(self):
        original = event(source__ip="198.51.100.10")
        self.run_routed(original)
        self.assertTagged(0, original, "ibd", [network(DORDRECHT), network(SSC)], [
            ip_match("198.51.100.10", "198.51.100.0/24", "SSC-DRECHT", "datacentre run for Dordrecht"),
            ip_match("198.51.100.10", "198.51.100.0/24", "GM0505", "Dordrecht's servers in the SSC datacentre"),
        ])  # fmt: skip
        assert len(self.outputs("ibd")) == 1

    def test_a_shared_service_organisation_behind_a_municipal_domain_under_either_rule(self):
        original = event(source__fqdn="bürgerportal.test", source__ip="198.51.100.10")
        zwijndrecht = {"id": "GM0642", "name": "Zwijndrecht", "kind": "municipality", "contacts": []}
        domain = match("source.fqdn", "xn--brgerportal-thb.test", "domain", "xn--brgerportal-thb.test", "GM0642")
        ssc = ip_match("198.51.100.10", "198.51.100.0/24", "SSC-DRECHT", "datacentre run for Dordrecht")
        dordrecht = ip_match("198.51.100.10", "198.51.100.0/24", "GM0505", "Dordrecht's servers in the SSC datacentre")
        tagged = dict(original, **{"source.fqdn": "xn--brgerportal-thb.test"})
        self.run_routed(original, owners="most-specific")  # today's rule: the member's partner joins
        self.assertTagged(0, tagged, "ibd", [service(zwijndrecht), network(SSC)], [domain, ssc])
        self.run_routed(original)  # both owners of the network are told as well
        organisations = [network(DORDRECHT), service(zwijndrecht), network(SSC)]
        self.assertTagged(0, tagged, "ibd", organisations, [domain, ssc, dordrecht])

    def test_a_tie_carries_both_organisations_and_says_so(self):
        original = event(source__ip="198.51.100.130")
        self.run_routed(original)
        note = "joint network of two municipalities"
        self.assertTagged(0, original, "ibd", [network(DEN_HAAG), network(ROTTERDAM)], [
            ip_match("198.51.100.130", "198.51.100.128/26", "GM0599", note),
            ip_match("198.51.100.130", "198.51.100.128/26", "GM0518", note),
        ], tie=["GM0518", "GM0599"])  # fmt: skip

    def test_an_ended_municipality_routes_to_its_successor(self):
        original = event(source__ip="203.0.113.130")
        self.run_routed(original)
        self.assertTagged(
            0, original, "ibd", [network(AMSTERDAM)], [ip_match("203.0.113.130", "203.0.113.128/26", "GM0363")]
        )

    def test_manual_beats_imported_at_equal_specificity(self):
        original = event(source__ip="198.51.100.70")
        self.run_routed(original)
        why = ip_match("198.51.100.70", "198.51.100.64/26", "GM0363", "moved to Amsterdam in 2024")
        self.assertTagged(0, original, "ibd", [network(AMSTERDAM)], [why])

    def test_asn_matching_is_off_by_default_and_can_be_switched_on(self):
        original = event(source__asn=64497)
        self.run_routed(original)
        self.assertMessageEqual(0, original, path="_default")
        self.run_routed(original, match_asn=True)
        self.assertTagged(
            0, original, "ibd", [dict(ROTTERDAM, role="asn")], [match("source.asn", "64497", "asn", "64497", "GM0599")]
        )

    def test_events_without_looked_up_fields_or_matches_pass_untouched(self):
        bare, unknown = event(**{"feed.name": "x"}), event(source__ip="192.0.2.200", source__fqdn="nowhere.test")
        self.run_routed(bare, unknown)
        self.assertMessageEqual(0, bare, path="_default")
        self.assertMessageEqual(1, unknown, path="_default")

    def test_an_existing_constituency_is_kept_unless_overwrite(self):
        original = event(source__ip="192.0.2.5", constituency="surf")
        self.run_routed(original)
        self.assertMessageEqual(0, original, path="surf")
        self.run_routed(original, overwrite=True)
        why = ip_match("192.0.2.5", "192.0.2.0/24", "GM0363")
        self.assertTagged(0, dict(original, constituency="ibd"), "ibd", [network(AMSTERDAM)], [why])

    def test_a_constituency_without_path_goes_to_the_fallback_path(self):
        original = event(source__ip="203.0.113.5")
        self.input_message = [original]
        self.prepare_bot(destination_queues=["_default", "ibd"])
        self.run_bot(prepare=False, allowed_warning_count=2)
        self.assertRegexpMatchesLog("No path 'surf' is configured; events of constituency 'surf' go to path '_default'")
        [fallback] = self.outputs("_default")
        assert '"constituency": "surf"' in fallback and len(self.outputs("ibd")) == 1

    def test_the_bot_refuses_to_start_on_an_invalid_registry(self):
        with self.assertRaises(InvalidArgument) as caught:
            self.run_routed(event(source__ip="192.0.2.5"), database=str(DATA / "no-such-file.yaml"))
        assert "no-such-file.yaml" in str(caught.exception) and "cannot be read" in str(caught.exception)

    def test_the_bot_refuses_to_start_with_an_unknown_owners_rule(self):
        with self.assertRaises(InvalidArgument) as caught:
            self.run_routed(event(source__ip="192.0.2.5"), owners="domain")
        assert "Argument 'owners' is invalid. Should be one of: ['all', 'most-specific']" in str(caught.exception)


class TestConstituencyExpertReload(RoutedOutputs, BotTestCase, unittest.TestCase):
    """A changed registry file is picked up while the bot runs; a broken one is not."""

    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": "/nonexistent"}  # replaced per test
        cls.skip_checks = True

    def wait_for_the_next_reload_check(self):
        """Until the running bot's reload_check_interval has passed: its next message looks at the files."""
        wait_for(lambda: time.monotonic() >= self.bot._next_check, timeout=10, interval=0.01, what="the reload check")

    def test_a_changed_file_is_reloaded_and_a_broken_one_keeps_the_last_good_registry(self):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            registry = Path(tmp) / "registry.csv"
            registry.write_text("type,value,organisation\nnetwork,192.0.2.0/24,GM0363\n", encoding="utf-8")
            self.input_message = [event(source__ip="192.0.2.5")]
            parameters = {"database": str(registry), "reload_check_interval": 1}
            self.prepare_bot(parameters=parameters, destination_queues=PATHS)
            self.run_bot(prepare=False, stop_bot=False)
            assert '"GM0363"' in self.outputs("ibd")[0]

            self.wait_for_the_next_reload_check()
            registry.write_text("type,value,organisation\nnetwork,192.0.2.0/24,GM0518\n", encoding="utf-8")
            self.input_queue = [json.dumps(event(source__ip="192.0.2.5"))]
            self.run_bot(prepare=False, stop_bot=False)
            assert '"GM0518"' in self.outputs("ibd")[1]
            self.assertRegexpMatchesLog("A registry file changed, reloading.")

            self.wait_for_the_next_reload_check()
            registry.write_text("type,value,organisation\nnetwork,192.0.2.1/24,GM0599\n", encoding="utf-8")
            self.input_queue = [json.dumps(event(source__ip="192.0.2.5"))]
            self.run_bot(prepare=False, allowed_error_count=1)
            assert '"GM0518"' in self.outputs("ibd")[2]
            self.assertRegexpMatchesLog("Reload failed, the last good registry sha256:[0-9a-f]{12} stays in use")
            self.assertRegexpMatchesLog("line 2, field 'network': host bits are set")

    def test_init_again_after_sighup_keeps_the_last_good_registry(self):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            registry = Path(tmp) / "registry.csv"
            shutil.copy(DATA / "more-assets.csv", registry)
            self.input_message = [event(source__ip="203.0.113.200")]
            self.prepare_bot(parameters={"database": str(registry)}, destination_queues=PATHS)
            self.run_bot(prepare=False, stop_bot=False)
            good = self.bot._registry
            registry.write_text("type,value,organisation\nnetwork,not-a-network,GM0599\n", encoding="utf-8")
            self.bot.init()  # what IntelMQ does on SIGHUP (intelmqctl reload)
            assert self.bot._registry is good
            registry.write_text("type,value,organisation\nnetwork,203.0.113.0/24,GM0014\n", encoding="utf-8")
            self.bot.init()
            assert self.bot._registry is not good and self.bot._registry.stats()["networks"] == 1


if __name__ == "__main__":  # pragma: no cover
    unittest.main()


def test_check_reports_a_missing_an_invalid_and_an_empty_registry_and_paths_missing(tmp_path):
    check = NSMConstituencyExpertBot.check
    [[level, message]] = check({"database": str(tmp_path / "missing.yaml")})
    assert level == "error" and "missing.yaml does not exist" in message
    (tmp_path / "bad.csv").write_text("type,value,organisation\nnetwork,192.0.2.1/24,GM0014\n", "utf-8")
    [[level, message]] = check({"database": str(tmp_path / "bad.csv")})
    assert level == "error" and "host bits are set" in message
    (tmp_path / "empty.csv").write_text("type,value,organisation\n", "utf-8")
    [[level, message]] = check({"database": str(tmp_path / "empty.csv")})
    assert level == "error" and "holds no assets" in message
    result = check({"database": str(DATA), "destination_queues": {"_default": ["a"], "ibd": ["b"]}})
    assert ["warning", "Constituency 'surf' has no path of its own; its events go to '_default'."] in result
    assert all(level == "warning" for level, _ in result)
    [[level, message]] = check({"database": str(DATA), "owners": "domain"})
    assert (level, message) == ("error", "The parameter owners must be one of all, most-specific, not 'domain'.")
