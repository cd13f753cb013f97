"""``intelmq-nsm constituency validate|lookup|stats|diff``: output and exit codes."""

import json
import shutil
import subprocess
from pathlib import Path

from intelmq_nsm.cli import main
from tests.harness import VENV_BIN

DATA = Path(__file__).resolve().parents[1] / "constituency" / "data"


def run(capsys, *argv):
    code = main(["constituency", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_accepts_a_good_registry_and_names_each_problem_of_a_bad_one(tmp_path, capsys):
    code, out, _ = run(capsys, "validate", str(DATA / "registry.yaml"), str(DATA / "more-assets.csv"))
    assert code == 0 and out.startswith("Valid: 345 organisations, 15 networks, 6 domains")
    bad = tmp_path / "bad.csv"
    bad.write_text("type,value,organisation\nnetwork,192.0.2.1/24,GM0014\ndomain,ok.example,GM9999\n", "utf-8")
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 1 and out == ""
    assert f"error: {bad}, line 2, field 'network': host bits are set in '192.0.2.1/24'" in err
    assert f"error: {bad}, line 3, field 'organisation': unknown organisation 'GM9999'" in err
    assert "Invalid registry: 2 error(s)." in err


def test_validate_can_check_a_registry_against_a_future_date(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    organisations = "organisations:\n  - {id: GM0014, valid_until: 2025-12-31}\n"
    path.write_text(organisations + "assets:\n  - {asn: 64496, organisation: GM0014}\n", "utf-8")
    assert run(capsys, "validate", str(path), "--date", "2025-12-31")[0] == 0
    code, _, err = run(capsys, "validate", str(path), "--date", "2026-01-01")
    assert code == 1 and "ended on 2025-12-31 without a successor" in err


def test_lookup_says_who_and_why_for_ips_domains_urls_and_asns(capsys):
    code, out, _ = run(capsys, "lookup", "-d", str(DATA), "192.0.2.5", "https://x.AMSTERDAM.example:8443/", "AS64497")
    assert code == 0
    assert out.splitlines() == [
        "192.0.2.5: constituency ibd: GM0363 Amsterdam (municipality, network owner)",
        "    because network 192.0.2.0/24 belongs to GM0363 (source manual)",
        "https://x.AMSTERDAM.example:8443/: constituency ibd: GM0363 Amsterdam (municipality, service owner)",
        "    because domain amsterdam.example belongs to GM0363 (source manual)",
        "AS64497: constituency ibd: GM0599 Rotterdam (municipality, asn owner)",
        "    because asn 64497 belongs to GM0599 (source manual)",
    ]


def test_lookup_reports_ties_copies_and_misses_with_exit_code_3(capsys):
    code, out, _ = run(capsys, "lookup", "-d", str(DATA), "--json", "198.51.100.130", "203.0.113.5", "192.0.2.200")
    assert code == 3
    results = json.loads(out)["results"]
    assert results[0]["routes"][0]["tie"] == ["GM0518", "GM0599"]
    assert [r["constituency"] for r in results[1]["routes"]] == ["ibd", "surf"]
    assert results[2]["routes"] == []


JOINT = "joint network of two municipalities"


def test_lookup_of_one_event_shows_each_owner_with_its_role(capsys):
    code, out, _ = run(capsys, "lookup", "-d", str(DATA), "--fqdn", "vpn.amsterdam.example", "--ip", "198.51.100.130")
    assert code == 0
    assert out.splitlines() == [
        "source.fqdn=vpn.amsterdam.example source.ip=198.51.100.130: constituency ibd: "
        "GM0363 Amsterdam (municipality, service owner); "
        "GM0518 's-Gravenhage (municipality, network owner); GM0599 Rotterdam (municipality, network owner)",
        "    because domain amsterdam.example belongs to GM0363 (source manual)",
        *(
            f"    because network 198.51.100.128/26 belongs to {o} (source manual, note: {JOINT})"
            for o in ("GM0599", "GM0518")
        ),
        "    tie between GM0518, GM0599: all of them are tagged",
    ]
    argv = ["lookup", "-d", str(DATA), "--json", "--url", "https://vpn.denhaag.example/", "--ip", "203.0.113.5"]
    code, out, _ = run(capsys, *argv)
    [result] = json.loads(out)["results"]
    assert result["event"] == {"source.url": "https://vpn.denhaag.example/", "source.ip": "203.0.113.5"}
    assert [(r["constituency"], [(o["id"], o["role"]) for o in r["organisations"]]) for r in result["routes"]] == [
        ("ibd", [("GM0363", "network"), ("GM0518", "service")]),
        ("surf", [("SURF-UNI1", "network")]),
    ]
    code, out, _ = run(capsys, *argv, "--owners", "most-specific")
    [result] = json.loads(out)["results"]
    assert [[o["id"] for o in r["organisations"]] for r in result["routes"]] == [["GM0518"]]
    code, _, err = run(capsys, "lookup", "-d", str(DATA), "192.0.2.5", "--ip", "192.0.2.6")
    assert code == 2 and "either values to look up one by one or the --fqdn/--url/--ip/--asn" in err


def test_diff_events_counts_the_decisions_the_owners_rule_all_changes(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    lines = [
        {"source.fqdn": "www.amsterdam.example", "source.ip": "192.0.2.130"},  # + Den Haag's network
        {"source.ip": "192.0.2.5"},  # one kind of match: unchanged
        {"source": {"fqdn": "vpn.denhaag.example", "ip": "203.0.113.5"}},  # nested; + two network owners
        {"source.fqdn": "amsterdam.example", "source.ip": "192.0.2.5", "constituency": "ibd"},  # one owner of both
        {"source.fqdn": "nobody.test"},
    ]
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n[1, 2]\n{broken\n", "utf-8")
    code, out, err = run(capsys, "diff", "--events", str(events), str(DATA))
    assert code == 1
    assert out.splitlines() == [
        "line 1: ibd:GM0363(service) -> ibd:GM0363(service), ibd:GM0518(network)",
        "line 3: ibd:GM0518(service) -> ibd:GM0363(network), ibd:GM0518(service), surf:SURF-UNI1(network)",
        "2 of 5 routing decision(s) change from owners most-specific to all (1 reach a constituency more, "
        "1 matched nothing, 2 line(s) left out); registry " + out.rsplit("registry ", 1)[1].rstrip("\n"),
    ]
    assert f"{events}, line 7: a JSON list, not an event object; the line is left out." in err
    assert f"{events}, line 8: not JSON (Expecting property name enclosed in double quotes at column 2)" in err
    events.write_text(json.dumps(lines[1]) + "\n", "utf-8")
    assert run(capsys, "diff", "--events", str(events), str(DATA))[0] == 0
    code, _, err = run(capsys, "diff", "--events", str(tmp_path / "missing.jsonl"), str(DATA))
    assert code == 2 and "Cannot read the events file" in err
    assert run(capsys, "diff", "--events", str(events), str(DATA), str(DATA))[0] == 2


def test_stats_counts_the_registry(capsys):
    code, out, _ = run(capsys, "stats", "-d", str(DATA), "--json")
    stats = json.loads(out)
    assert code == 0 and (stats["networks"], stats["domains"], stats["asns"]) == (15, 6, 2)


def test_diff_lists_exactly_the_routing_that_changes(tmp_path, capsys):
    new = tmp_path / "new"
    shutil.copytree(DATA, new)
    text = (new / "registry.yaml").read_text("utf-8")
    text = text.replace("192.0.2.128/25, organisation: GM0518", "192.0.2.128/26, organisation: GM0518")
    text = text.replace("denhaag.example, organisation: GM0518", "denhaag.example, organisation: GM0014")
    (new / "registry.yaml").write_text(text, "utf-8")
    code, out, _ = run(capsys, "diff", str(DATA), str(new))
    assert code == 1
    # 192.0.2.192/28 stays excluded, so only .208-.255 move back to Amsterdam's /24.
    assert out.splitlines()[:3] == [
        "network 192.0.2.208/28, 192.0.2.224/27: ibd:GM0518 -> ibd:GM0363",
        "domain denhaag.example: ibd:GM0518 -> ibd:GM0014",
        "domain x.denhaag.example: ibd:GM0518 -> ibd:GM0014",
    ]
    assert run(capsys, "diff", str(DATA), str(DATA))[0] == 0


def test_the_installed_command_runs(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "intelmq-nsm"), "constituency", "lookup", "-d", str(DATA), "2001:db8:363::1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "GM0363 Amsterdam" in result.stdout


def test_export_writes_a_constituencys_claims_that_validate_and_never_name_a_contact(tmp_path, capsys):
    output = tmp_path / "claims-ibd.json"
    code, out, _ = run(capsys, "export", "--claims", "ibd", "-d", str(DATA), "-o", str(output), "--date", "2025-06-01")
    assert code == 0, out
    assert out.startswith(f"Wrote the claims of ibd to {output}: ") and "0 organisations; exported at " in out
    document = json.loads(output.read_text("utf-8"))
    assert document["claims"]["constituency"] == "ibd" and document["constituencies"][0]["key"] == "ibd"
    assert "@" not in output.read_text("utf-8") and "contacts" not in output.read_text("utf-8")
    code, out, _ = run(capsys, "validate", str(output), "--no-builtin")
    assert code == 0 and out.startswith("Valid: 1 organisations,")  # cert:ibd, all its constituency has
    code, out, _ = run(capsys, "lookup", "192.0.2.5", "-d", str(output), "--json")
    [route] = json.loads(out)["results"][0]["routes"]
    assert (route["constituency"], route["organisations"][0]["id"], route["matches"][0]["source"]) == (
        "ibd", "cert:ibd", "claims:ibd",
    )  # fmt: skip
    named = tmp_path / "claims-surf.json"
    assert (
        run(capsys, "export", "--claims", "surf", "-d", str(DATA), "-o", str(named), "--organisations", "names")[0] == 0
    )
    assert json.loads(named.read_text("utf-8"))["organisations"] == [
        {"id": "surf:SURF-UNI1", "kind": "other", "name": "Universiteit Voorbeeld"}
    ]
    code, _, err = run(capsys, "export", "--claims", "ncsc", "-d", str(DATA), "-o", str(tmp_path / "x.json"))
    assert code == 2 and "Cannot export claims: the registry has no constituency 'ncsc'." in err
    assert not (tmp_path / "x.json").exists()
