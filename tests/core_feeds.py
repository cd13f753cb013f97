"""Events made by IntelMQ's own core parsers from the sample data IntelMQ ships, moved into
documentation space, routed by the constituency expert: what a CERT's feeds bring.

The parsers run in-process on IntelMQ's ``BotTestCase`` with the reports and parameters of
IntelMQ's own tests of them (``intelmq/tests/bots/parsers/...`` in the installed package):
Shadowserver, Shodan, n6, the generic CSV parser, Team Cymru, the Spamhaus CERT feed,
Microsoft's CTIP (Interflow and Azure) and Zone-H. Their addresses are real ones; every
address and host name is mapped, the same one to the same one, into documentation space
(IPv4 into the example registry's municipal networks, IPv6 into 2001:db8::/32, names under
``.example``), so that the example registry routes them and nothing of the samples' real
hosts is used here.
"""

import base64
import functools
import importlib
import ipaddress
import json
import unittest
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from intelmq.lib.test import BotTestCase

from intelmq_nsm.bots.experts.constituency.expert import NSMConstituencyExpertBot

PARSERS = "intelmq.tests.bots.parsers."
#: (name, IntelMQ's test module, its test class, the reports it parses, parameters).
SHADOWSERVER = {"test_mode": True}  # IntelMQ's test schema: the reports of its samples
SAMPLES = (
    ("shadowserver", "shadowserver.test_report_smb", "TestShadowserverParserBot", ("EXAMPLE_REPORT",), SHADOWSERVER),
    ("shadowserver", "shadowserver.test_report_telnet", "TestShadowserverParserBot", ("EXAMPLE_REPORT",), SHADOWSERVER),
    ("shodan", "shodan.test_parser", "TestShodanParserBot", tuple(("REPORTS", i) for i in range(7)), {}),
    (
        "n6",
        "n6.test_parser",
        "TestN6StompParserBot",
        ("EXAMPLE_REPORT", "BLACKLIST_REPORT", "NO_ADDRESS_REPORT", "FURTHER_IOCS_REPORT"),
        {},
    ),
    ("generic", "generic.test_parser_csv", "TestGenericCsvParserBot", ("EXAMPLE_REPORT",), {}),
    ("cymru", "cymru.test_cap_program", "TestCymruCAPProgramParserBot", ("REPORT",), {}),
    ("cymru", "cymru.test_cap_program_new", "TestCymruCAPProgramParserBot", ("REPORT",), {}),
    ("spamhaus", "spamhaus.test_parser_cert", "TestSpamhausCERTParserBot", ("EXAMPLE_REPORT",), {}),
    ("microsoft", "microsoft.test_parser_ctip", "TestMicrosoftCTIPParserBot", ("EXAMPLE_REPORT",), {}),
    ("microsoft", "microsoft.test_parser_ctip_azure", "TestMicrosoftCTIPParserBot", ("EXAMPLE_REPORT",), {}),
    ("zoneh", "zoneh.test_zoneh", "TestZoneHParserBot", ("ACCEPTED_REPORT", "PENDING_REPORT"), {}),
)
#: The example's registry: its municipalities' networks take the mapped addresses.
REGISTRY = Path(__file__).resolve().parents[1] / "runtime-examples" / "nsm-ibd" / "registry"
#: Where mapped addresses go: the example registry's 30 municipal /29s (192.0.2.0/24),
#: destinations (sinkholes, honeypots, victims) into a range nobody claims.
SOURCES_V4 = ipaddress.ip_network("192.0.2.0/24")
OTHERS_V4 = ipaddress.ip_network("203.0.113.0/24")
SOURCES_V6 = ipaddress.ip_network("2001:db8:1::/48")
DOMAIN = "amsterdam.example"
#: The host numbers addresses take: 192.0.2.1 … 192.0.2.239 (the municipalities' /29s of the
#: example registry) but the hoster's range the registry excludes (192.0.2.4/30).
HOSTS = [n for n in range(1, 240) if not 4 <= n <= 7]


def _report(module, name):
    return getattr(module, name) if isinstance(name, str) else getattr(module, name[0])[name[1]]


def run_parser(module_name: str, class_name: str, reports, parameters: dict) -> list:
    """The events (dicts) IntelMQ's parser makes of ``reports`` (IntelMQ's test reports, or
    report dicts), on the BotTestCase of IntelMQ's own test of it."""
    module = importlib.import_module(PARSERS + module_name)
    case_class = getattr(module, class_name)
    case_class.setUpClass()
    case = case_class(next(name for name in dir(case_class) if name.startswith("test_")))
    events = []
    for report in reports:
        case.input_message = _report(module, report) if isinstance(report, (str, tuple)) else report
        case.run_bot(parameters=parameters, allowed_error_count=10, allowed_warning_count=10)
        events += [json.loads(text) for text in case.get_output_queue()]
    return events


@functools.cache
def _parsed() -> tuple:
    result = []
    for name, module, class_name, reports, parameters in SAMPLES:
        result += [(name, event) for event in run_parser(module, class_name, reports, parameters)]
    return tuple((name, json.dumps(event, sort_keys=True)) for name, event in result)


def parsed() -> list:
    """``(parser name, event)`` for every event the core parsers make of IntelMQ's samples
    (fresh copies: a test may change them)."""
    return [(name, json.loads(text)) for name, text in _parsed()]


class Mapper:
    """Addresses and host names into documentation space, the same one to the same one."""

    def __init__(self):
        self.addresses, self.names = {}, {}

    def address(self, value: str, source: bool = True) -> str:
        if value not in self.addresses:
            ip = ipaddress.ip_address(value)
            if ip.version == 6:
                network = SOURCES_V6
            else:
                network = SOURCES_V4 if source else OTHERS_V4
            taken = sum(1 for v in self.addresses.values() if ipaddress.ip_address(v) in network)
            self.addresses[value] = str(network[HOSTS[taken % len(HOSTS)]])
        return self.addresses[value]

    def name(self, value: str) -> str:
        key = value.lower().rstrip(".")
        if key not in self.names:
            self.names[key] = f"h{len(self.names) + 1}.{DOMAIN}"
        return self.names[key]

    def url(self, value: str) -> str:
        parts = urlsplit(value)
        if not parts.hostname:
            return value
        try:
            host = self.address(parts.hostname)
        except ValueError:
            host = self.name(parts.hostname)
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def event(self, event: dict) -> dict:
        """The event with its addresses and names mapped; ``raw``, networks and the parsers'
        own copies of the data (``extra.*`` but ``extra.nsm.*``) left out."""
        result = {}
        for key, value in event.items():
            if key == "raw" or key.endswith(".network") or (key.startswith("extra.") and "ip" in key):
                continue
            if key.endswith(".ip"):
                value = self.address(value, source=key.startswith("source."))
            elif key.endswith((".fqdn", ".reverse_dns")):
                value = self.name(value)
            elif key.endswith(".url") and key != "feed.url":
                value = self.url(value)
            result[key] = value
        return result


def in_documentation_space(events) -> list:
    """``(name, event)`` pairs with every event's addresses and names mapped by one Mapper."""
    mapper = Mapper()
    return [(name, mapper.event(event)) for name, event in events]


def names_a_host(event: dict) -> bool:
    return any(event.get(k) for k in ("source.ip", "source.fqdn", "source.url"))


class _Runner(BotTestCase, unittest.TestCase):
    """The constituency expert on IntelMQ's BotTestCase, for :func:`route`."""

    @classmethod
    def set_bot(cls):
        cls.bot_reference = NSMConstituencyExpertBot
        cls.sysconfig = {"database": str(REGISTRY), "builtin_municipalities": True, "match_asn": False}
        cls.allowed_warning_count = 10  # the example registry's ended organisation is reported

    def runTest(self):  # unittest needs a test method to make an instance
        pass


def route(events: list, paths=("_default", "ibd", "surf")) -> dict:
    """``{path: [event, ...]}`` of the example registry's constituency expert for ``events``."""
    _Runner.setUpClass()
    case = _Runner()
    case.input_message = [{"__type": "Event", **event} for event in events]
    case.prepare_bot(destination_queues=list(paths))
    case.run_bot(iterations=len(events), prepare=False)
    return {path: [json.loads(text) for text in case.get_output_queue(path=path)] for path in paths}


def reencoded(report: dict, change) -> dict:
    """``report`` with its base64 ``raw`` decoded as JSON, changed by ``change`` (a function of
    the data), encoded again: a report the feed could have sent next."""
    data = change(json.loads(base64.b64decode(report["raw"])))
    return {**report, "raw": base64.b64encode(json.dumps(data).encode()).decode()}
