"""The hub's constituency expert on its CERTs' claims (IntelMQ's BotTestCase): an event goes to
the CERT that claims its system, unclaimed ones to _default, and claims that could not be
refreshed are said loudly."""

import json
import tempfile
import unittest
from pathlib import Path

from intelmq.lib.exceptions import InvalidArgument
from intelmq.lib.test import BotTestCase

from intelmq_nsm import event_contract as contract
from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot
from intelmq_nsm.constituency.claims import status_file
from tests.constituency.claims_data import claims, write_claims

PATHS = ["_default", "ibd", "surf"]
CLAIMS = {
    "ibd": {"url": "https://claims.ibd.example/nsm-claims.json", "builtin_municipalities": True},
    "surf": "https://cert.surf.example/nsm-claims.json",
}
IBD = claims(
    "ibd",
    [{"network": "192.0.2.0/24"}, {"network": "203.0.113.0/25"}, {"domain": "gemeente.example"}],
    exclusions=[{"domain": "hosting.gemeente.example"}],
)
SURF = claims("surf", [{"network": "198.51.100.0/24"}, {"network": "203.0.113.0/25"}], share_names=True)


def event(**fields):
    return {"__type": "Event", "classification.type": "vulnerable-system", **fields}


def certificate(key, name, role="network"):
    return {"id": f"cert:{key}", "name": name, "kind": "other", "contacts": [], "role": role}


def match(field, value, kind, matched, key):
    return {
        "field": field, "value": value, "kind": kind, "matched": matched,
        "organisation": f"cert:{key}", "source": f"claims:{key}", "note": "",
    }  # fmt: skip


class OnTheHubsClaims:
    """The expert on a hub's registry directory holding the IBD's and SURF's claims."""

    @classmethod
    def set_hub(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.folder = tempfile.TemporaryDirectory()
        write_claims(Path(cls.folder.name), IBD)
        cls.surf_claims = write_claims(Path(cls.folder.name), SURF)
        cls.sysconfig = {"database": cls.folder.name, "claims": CLAIMS}
        cls.allowed_warning_count = 1  # the network both CERTs claim is reported at load

    @classmethod
    def tearDownClass(cls):
        cls.folder.cleanup()
        super().tearDownClass()


class TestTheHubsExpertOnClaims(OnTheHubsClaims, BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.set_hub()

    def routed(self, *messages, **options):
        self.input_message = list(messages)
        self.prepare_bot(destination_queues=PATHS)
        self.run_bot(iterations=len(messages), prepare=False, **options)
        return {path: [json.loads(m) for m in self.get_output_queue(path=path)] for path in PATHS}

    def assertRouted(self, original, path, organisations, matches, tie=None):
        expected = dict(original, constituency=path)
        expected[contract.ORGANISATIONS] = organisations
        expected[contract.MATCHES] = matches
        if tie:
            expected[contract.TIE] = tie
        expected[contract.REGISTRY_VERSION] = self.bot._registry.version
        self.assertMessageEqual(0, expected, path=path)

    def test_an_event_goes_to_the_cert_that_claims_it_and_an_unclaimed_one_to_default(self):
        ibd, surf = event(**{"source.ip": "192.0.2.10"}), event(**{"source.ip": "198.51.100.10"})
        unclaimed = event(**{"source.ip": "2001:db8::1", "source.fqdn": "www.hosting.gemeente.example"})
        out = self.routed(ibd, surf, unclaimed)
        self.assertRouted(
            ibd,
            "ibd",
            [certificate("ibd", "IBD")],
            [match("source.ip", "192.0.2.10", "network", "192.0.2.0/24", "ibd")],
        )
        self.assertRouted(
            surf, "surf", [certificate("surf", "SURFcert")],
            [match("source.ip", "198.51.100.10", "network", "198.51.100.0/24", "surf")],
        )  # fmt: skip
        self.assertMessageEqual(0, unclaimed, path="_default")
        assert [len(out[path]) for path in PATHS] == [1, 1, 1]
        self.assertLogMatches(
            r"Loaded constituency registry .*; claims of ibd \(exported 2026-11-30T08:00:00\+00:00\), surf", "INFO"
        )

    def test_a_network_two_certs_claim_reaches_both_each_copy_naming_the_tie(self):
        shared = event(**{"source.ip": "203.0.113.7"})
        out = self.routed(shared)
        tie = ["cert:ibd", "cert:surf"]
        self.assertRouted(
            shared, "ibd", [certificate("ibd", "IBD")],
            [match("source.ip", "203.0.113.7", "network", "203.0.113.0/25", "ibd")], tie,
        )  # fmt: skip
        self.assertRouted(
            shared, "surf", [certificate("surf", "SURFcert")],
            [match("source.ip", "203.0.113.7", "network", "203.0.113.0/25", "surf")], tie,
        )  # fmt: skip
        assert out["_default"] == []
        self.assertLogMatches(
            r".*203\.0\.113\.0/25 is claimed by cert:ibd \(claims:ibd\), cert:surf \(claims:surf\)", "WARNING"
        )


class TestTheHubsExpertOnStaleClaims(OnTheHubsClaims, BotTestCase, unittest.TestCase):
    """A CERT whose last download was not taken: the bot routes by its claims in use and
    says so at every load, naming the CERT, the URL and the reason; check() says it too."""

    @classmethod
    def set_bot(cls):
        cls.set_hub()
        status = {
            "constituency": "surf", "url": CLAIMS["surf"], "checked_at": "2026-12-01T03:00:00+00:00", "taken": False,
            "reason": "cannot download https://cert.surf.example/nsm-claims.json: 500 Server Error",
            "in_use": {"exported_at": "2026-11-30T08:00:00+00:00", "version": "surf-test"},
        }  # fmt: skip
        status_file(cls.surf_claims).write_text(json.dumps(status), encoding="utf-8")
        cls.allowed_error_count = 1
        cls.skip_checks = True  # check() reports the stale claims as an error: asserted below

    def test_the_claims_in_use_still_route_and_the_failed_refresh_is_an_error_in_the_log_and_check(self):
        self.input_message = [event(**{"source.ip": "198.51.100.10"})]
        self.prepare_bot(destination_queues=PATHS)
        self.run_bot(prepare=False)
        assert len(self.get_output_queue(path="surf")) == 1
        expected = (
            "The claims of constituency 'surf' from https://cert.surf.example/nsm-claims.json were not taken at "
            "2026-12-01T03:00:00+00:00: cannot download https://cert.surf.example/nsm-claims.json: 500 Server Error; "
            "the claims exported at 2026-11-30T08:00:00+00:00 stay in use."
        )
        self.assertLogMatches(expected.replace(".", r"\.").replace("+", r"\+"), "ERROR")
        result = NSMConstituencyExpertBot.check(dict(self.sysconfig, destination_queues={p: [p] for p in PATHS}))
        assert ["error", expected] in result


def test_the_claims_need_one_registry_directory_and_a_url_per_cert(tmp_path):
    check = NSMConstituencyExpertBot.check
    [[level, message]] = check({"database": [str(tmp_path), str(tmp_path)], "claims": CLAIMS})
    assert level == "error" and "claims need the parameter database to be one directory" in message
    [[level, message]] = check({"database": str(tmp_path), "claims": {"ibd": "ftp://claims.ibd.example/c.json"}})
    assert message == "The parameter claims.ibd.url must be an http(s) URL, not 'ftp://claims.ibd.example/c.json'."
    write_claims(tmp_path, IBD)
    result = check({"database": str(tmp_path), "claims": CLAIMS})
    assert [
        "warning",
        "No claims of constituency 'surf' have been taken from https://cert.surf.example/nsm-claims.json yet: "
        "nothing is routed to it by claims until --update-database takes them.",
    ] in result
    assert all(level == "warning" for level, _ in result)


class TestTheExpertRefusesClaimsItCannotKeep(BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": "/nonexistent", "claims": CLAIMS}
        cls.skip_checks = True

    def test_the_bot_does_not_start_with_claims_but_no_registry_directory(self):
        self.input_message = [event(**{"source.ip": "192.0.2.1"})]
        with self.assertRaises(InvalidArgument) as caught:
            self.run_bot()
        assert "claims need the parameter database to be one directory" in str(caught.exception)
