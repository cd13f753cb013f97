"""A synthetic registry for all 342 municipalities, in documentation space, and an oracle.

Shared by the correctness test (``test_all_municipalities.py``). Every municipality gets an
IPv6 /48 and a domain; many get IPv4 blocks inside the three IPv4 documentation ranges,
more-specific networks and subdomains inside another municipality's, exact-only names and
exclusions, so that longest-prefix and most-specific-domain decisions are exercised.
The oracle decides with ``ipaddress`` and plain string comparison, independently of the index.
"""

import ipaddress
import random
import re
from urllib.parse import urlsplit

from intelmq_nsm.constituency import builtin_municipalities

IPV4_RANGES = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def slug(name: str) -> str:
    return re.sub(r"[\W_]+", "-", name.lower()).strip("-")


def build(seed: int = 342):
    """``(assets, exclusions)``: assets as (kind, value, organisation, exact), exclusions as (kind, value)."""
    rng = random.Random(seed)
    codes = [code for code, _ in builtin_municipalities()]
    names = dict(builtin_municipalities())
    assets, exclusions = [], []
    blocks = [b for r in IPV4_RANGES for b in r.subnets(new_prefix=28)]  # 48 blocks of 16 addresses
    for i, code in enumerate(codes):
        net6 = ipaddress.ip_network(f"2001:db8:{i + 1:x}::/48")
        assets.append(("network", str(net6), code, False))
        domain = f"{slug(names[code])}.test"
        assets.append(("domain", domain, code, False))
        if i % 7 == 0:  # a /56 inside the next municipality's /48
            assets.append(("network", f"2001:db8:{i + 2:x}:ab00::/56", code, False))
        if i % 11 == 0:
            exclusions.append(("network", f"2001:db8:{i + 1:x}:ff00::/56"))
        if i % 3 == 0:  # a subdomain run by the neighbouring municipality
            assets.append(("domain", f"portal.{domain}", codes[(i + 1) % len(codes)], False))
        if i % 5 == 0:  # an exact name only: its subdomains stay with the parent domain
            assets.append(("domain", f"www.{domain}", codes[(i + 2) % len(codes)], True))
        if i % 13 == 0:
            exclusions.append(("domain", f"hosting.{domain}"))
    for k, block in enumerate(blocks):
        assets.append(("network", str(block), codes[k], False))
        quarters = list(block.subnets(new_prefix=30))
        assets.append(("network", str(quarters[rng.randrange(4)]), codes[48 + k], False))
        host = block.network_address + rng.randrange(16)
        assets.append(("network", f"{host}/32", codes[96 + k], False))
        if k % 5 == 0:
            exclusions.append(("network", str(list(block.subnets(new_prefix=31))[rng.randrange(8)])))
    # No asset may be claimed twice (the registry would demand a note); keep the first claim.
    seen, unique = set(), []
    for asset in assets:
        if (asset[0], asset[1]) not in seen:
            seen.add((asset[0], asset[1]))
            unique.append(asset)
    return unique, exclusions


def write_csv(path, assets, exclusions):
    lines = ["type,value,organisation,source,note,exact"]
    lines += [f"{kind},{value},{org},manual,,{'true' if exact else ''}" for kind, value, org, exact in assets]
    lines += [f"exclusion,{value},,,synthetic exclusion," for _, value in exclusions]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def random_events(assets, count: int, seed: int = 10_000):
    """``count`` events as dicts of event fields; most hit an asset, some hit nothing."""
    rng = random.Random(seed)
    domains = [value for kind, value, _, _ in assets if kind == "domain"]
    labels = ["www", "mail", "portal", "hosting", "vpn", "a", "b.c", "Login"]
    events = []
    for _ in range(count):
        event = {}
        choice = rng.random()
        if choice < 0.3:
            event["source.ip"] = str(ipaddress.ip_address((0x20010DB8 << 96) + (rng.randrange(0x160) << 80)
                                                          + (rng.choice([0, 0xAB, 0xFF, rng.randrange(256)]) << 72)
                                                          + rng.randrange(1 << 64)))  # fmt: skip
        elif choice < 0.55:
            network = rng.choice(IPV4_RANGES)
            event["source.ip"] = str(network.network_address + rng.randrange(256))
        elif choice < 0.8:
            prefix = ".".join(rng.sample(labels, rng.randrange(3)))
            base = rng.choice(domains) if rng.random() < 0.9 else "nobody.example"
            name = f"{prefix}.{base}" if prefix else base
            event["source.fqdn"] = name.upper() if rng.random() < 0.1 else name
        else:
            host = rng.choice(domains)
            event["source.url"] = f"https://user:pw@{rng.choice(['', 'www.', 'portal.'])}{host}.:8443/x"
            event["source.ip"] = str(rng.choice(IPV4_RANGES).network_address + rng.randrange(256))
            if rng.random() < 0.2:  # a name and a URL host of two municipalities: often a tie
                event["source.fqdn"] = rng.choice(domains)
        events.append(event)
    return events


class Oracle:
    """The documented precedence, decided by brute force over the asset list."""

    def __init__(self, assets, exclusions):
        self.networks = [(ipaddress.ip_network(v), org) for kind, v, org, _ in assets if kind == "network"]
        self.domains = [(self.idna(v), org, exact) for kind, v, org, exact in assets if kind == "domain"]
        self.excluded_networks = [ipaddress.ip_network(v) for kind, v in exclusions if kind == "network"]
        self.excluded_domains = [self.idna(v) for kind, v in exclusions if kind == "domain"]

    @staticmethod
    def idna(name: str) -> str:
        return name.rstrip(".").lower().encode("idna").decode("ascii")

    @staticmethod
    def under(name, domain):
        return name == domain or name.endswith("." + domain)

    def domain_owners(self, name):
        name = self.idna(name)
        if any(self.under(name, d) for d in self.excluded_domains):
            return 0, set()
        hits = [
            (d.count(".") + 1, org)
            for d, org, exact in self.domains
            if name == d or (not exact and self.under(name, d))
        ]
        if not hits:
            return 0, set()
        best = max(hits)[0]
        return best, {org for n, org in hits if n == best}

    def ip_owners(self, text):
        ip = ipaddress.ip_address(text)
        if any(ip in n for n in self.excluded_networks if n.version == ip.version):
            return set()
        hits = [(n.prefixlen, org) for n, org in self.networks if n.version == ip.version and ip in n]
        return {org for length, org in hits if length == max(hits)[0]} if hits else set()

    def service_owners(self, event) -> set:
        """The owners of the most specific domain among the event's name and URL host."""
        names = [event["source.fqdn"]] if "source.fqdn" in event else []
        if "source.url" in event:
            names.append(urlsplit(event["source.url"]).hostname)
        best, owners = 0, set()
        for name in names:
            specificity, found = self.domain_owners(name)
            if specificity > best:
                best, owners = specificity, found
            elif specificity == best and specificity:
                owners |= found
        return owners

    def network_owners(self, event) -> set:
        return self.ip_owners(event["source.ip"]) if "source.ip" in event else set()

    def owners(self, event, rule: str = "all") -> set:
        """Who the event goes to: both owners (``all``), or the domain's before the network's."""
        service, network = self.service_owners(event), self.network_owners(event)
        if rule == "all":
            return service | network
        return service or network

    def tie(self, event, rule: str = "all") -> bool:
        """Whether one kind of match leaves two owners (the synthetic registry has no members)."""
        service, network = self.service_owners(event), self.network_owners(event)
        if rule == "all":
            return len(service) > 1 or len(network) > 1
        return len(service or network) > 1


def split_events(assets, count: int, seed: int = 15):
    """``count`` events whose name is one municipality's domain and whose address lies in
    another municipality's IPv6 network: ``(event, service owner, network owner)``.

    The names avoid the labels other municipalities own (portal., www.) or that are excluded
    (hosting.), the addresses the /56 networks and exclusions inside the /48s."""
    rng = random.Random(seed)
    domains = [(value, org) for kind, value, org, _ in assets if kind == "domain" and value.count(".") == 1]
    networks = [(value, org) for kind, value, org, _ in assets if kind == "network" and value.endswith("::/48")]
    events = []
    while len(events) < count:
        (domain, service), (net6, network) = rng.choice(domains), rng.choice(networks)
        if service == network:
            continue
        address = ipaddress.ip_network(net6).network_address + (rng.randrange(1, 0xAB) << 72) + rng.randrange(1 << 64)
        name = f"{rng.choice(['vpn', 'mail', 'login.intern', ''])}.{domain}".lstrip(".")
        field = "source.fqdn" if rng.random() < 0.5 else "source.url"
        value = name if field == "source.fqdn" else f"https://{name}/"
        events.append(({field: value, "source.ip": str(address)}, service, network))
    return events
