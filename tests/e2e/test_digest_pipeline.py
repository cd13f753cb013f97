"""Digest outputs in a real pipeline (real Redis, real intelmqctl), real HTTP and SMTP receivers.

The constituency expert's named path is played by IntelMQ's core filter expert: events
arrive tagged as the expert emits them (``constituency``, ``extra.nsm.organisations``)
and are routed by a named path to the digest outputs.
"""

import json
import sqlite3
import time
from collections import defaultdict

import pytest

from intelmq_nsm.testbed.http_receiver import Receiver
from intelmq_nsm.testbed.sample_events import event, organisation
from intelmq_nsm.testbed.smtp_sink import SmtpSink
from intelmq_nsm.testbed.spools import spooled_events
from tests.harness import LOOPBACK, wait_for

pytestmark = pytest.mark.e2e

SECRET = "pipeline-secret"
AMSTERDAM = organisation("GM0363", "Amsterdam")
UTRECHT = organisation("GM0344", "Utrecht")
ZAANSTAD = organisation("GM0479", "Zaanstad")
SSO = organisation("SSO-0001", "Shared Service Zaanstreek", kind="shared-service")


def rest_bot(spool, url, **parameters):
    return {
        "module": "intelmq.bots.outputs.nsm.digest",
        "parameters": {
            "channel": "rest",
            "constituency": "ibd",
            "rest_url": url,
            "rest_secret": SECRET,
            "rest_timeout": 5,
            "spool_file": str(spool),
            "max_events": 1000,
            "max_age": 1,
            "delivery_interval": 0.1,
            "retry_base": 0.2,
            "retry_max": 1,
            **parameters,
        },
    }


def digest_states(path) -> dict:
    with sqlite3.connect(path, timeout=5) as db:
        return dict(db.execute("SELECT id, state FROM digests").fetchall())


def test_events_from_the_named_path_reach_a_real_http_and_a_real_smtp_server(tmp_path, intelmq_pipeline):
    with Receiver() as receiver, SmtpSink() as sink:
        pipeline = intelmq_pipeline({
            "constituency-router": {
                "module": "intelmq.bots.experts.filter.expert",
                "parameters": {
                    "filter_key": "constituency",
                    "filter_value": "ibd",
                    "filter_action": "keep",
                    "destination_queues": {
                        "_default": [],  # the filter expert also sends every kept event here
                        "filter_match": ["ibd-rest-queue", "ibd-mail-queue"],
                        "filter_no_match": ["others-queue"],
                    },
                },
            },
            "ibd-rest": rest_bot(tmp_path / "rest.sqlite", receiver.url),
            "ibd-mail": {
                "module": "intelmq.bots.outputs.nsm.digest",
                "parameters": {
                    "channel": "smtp",
                    "constituency": "ibd",
                    "smtp_host": LOOPBACK,
                    "smtp_port": sink.port,
                    "smtp_security": "none",
                    "smtp_from": "meldingen@ibd.example",
                    "spool_file": str(tmp_path / "mail.sqlite"),
                    "max_age": 1,
                    "delivery_interval": 0.1,
                    "language": "nl",
                },
            },
            "others": {
                "module": "intelmq.bots.outputs.file.output",
                "parameters": {"file": str(tmp_path / "others.jsonl")},
            },
        })  # fmt: skip
        assert not [c for c in pipeline.check()["lines"] if c[0] == "error" and "ibd-" in c[1]]
        pipeline.start()
        events = [event(n, [[AMSTERDAM, UTRECHT, ZAANSTAD][n % 3]]) for n in range(12)]
        events.append(event(12, [ZAANSTAD, SSO]))  # a municipality and its shared-service organisation
        other = event(13, [organisation("UNI-1", "Universiteit")], constituency="surfcert")
        broken = {k: v for k, v in event(14, []).items() if k != "extra.nsm.organisations"}
        pipeline.push("constituency-router", *events, other, broken)

        receiver.wait_for(lambda r: len(r.accepted) == 4, timeout=60)
        mails = sink.wait_for(4, timeout=60)
        pipeline.wait_drained()

        by_org = defaultdict(list)
        for doc in receiver.accepted:
            by_org[doc["organisation"]["id"]] += [row["ip"] for row in doc["findings"]]
        expected = defaultdict(list)
        for message in events:
            for org in message["extra.nsm.organisations"]:
                expected[org["id"]].append(message["source.ip"])
        assert {k: sorted(v) for k, v in by_org.items()} == {k: sorted(v) for k, v in expected.items()}
        recipients = sorted(rcpt for _, rcpts, _ in mails for rcpt in rcpts)
        assert recipients == sorted(f"security@{o['id'].lower()}.example" for o in (AMSTERDAM, UTRECHT, ZAANSTAD, SSO))
        for _, rcpts, msg in mails:
            assert rcpts[0].split("@")[1].split(".")[0].upper() in msg.get_body(("plain",)).get_content().upper()
        assert [e["source.ip"] for e in pipeline.read_file_output(tmp_path / "others.jsonl")] == [other["source.ip"]]
        dumps = pipeline.dumps()
        for bot_id in ("ibd-rest", "ibd-mail"):
            [dumped] = dumps[bot_id]
            traceback = "".join(dumped["traceback"])
            assert "InvalidValue" in traceback and "'extra.nsm.organisations': is missing or empty" in traceback
        assert set(receiver.keys().values()) == {1}


def test_sigkill_between_spool_write_and_delivery_loses_nothing_and_sends_once(tmp_path, intelmq_pipeline):
    spool = tmp_path / "rest.sqlite"
    with Receiver() as receiver:
        # A digest goes out only when Amsterdam's group holds 10 findings.
        pipeline = intelmq_pipeline({"ibd-rest": rest_bot(spool, receiver.url, max_events=10, max_age=3600)})
        pipeline.start()
        first = [event(n, [AMSTERDAM]) for n in range(6)]
        pipeline.push("ibd-rest", *first)
        wait_for(lambda: spooled_events(spool) == 6, timeout=30, what="6 spooled findings")
        pipeline.kill("ibd-rest")
        assert receiver.requests == []
        # After the crash IntelMQ may hand over messages again: the spool ignores repeats.
        pipeline.push("ibd-rest", *first[:2], *[event(n, [AMSTERDAM]) for n in range(6, 10)])
        pipeline.start("ibd-rest")
        receiver.wait_for(lambda r: len(r.accepted) == 1, timeout=30)
        pipeline.wait_drained()
        wait_for(lambda: set(digest_states(spool).values()) == {"delivered"}, timeout=10, what="delivered")
        [doc] = receiver.accepted
        assert sorted(row["ip"] for row in doc["findings"]) == sorted(event(n, [])["source.ip"] for n in range(10))
        assert spooled_events(spool) == 10 and len(receiver.requests) == 1


def test_sigkill_between_delivery_and_marking_repeats_once_with_the_same_key(tmp_path, intelmq_pipeline):
    spool = tmp_path / "rest.sqlite"
    # The endpoint takes the first digest but holds its answer until the bot was killed.
    with Receiver(script=["hold"]) as receiver:
        pipeline = intelmq_pipeline({"ibd-rest": rest_bot(spool, receiver.url, max_age=0.5)})
        pipeline.start()
        pipeline.push("ibd-rest", *[event(n, [UTRECHT]) for n in range(3)])
        assert receiver.held.wait(30), "The digest never reached the endpoint."
        pipeline.kill("ibd-rest")
        receiver.release.set()
        receiver.wait_for(lambda r: len(r.requests) == 1)
        # Sent, but not confirmed to the spool: the attempt stays visible as cut short.
        assert set(digest_states(spool).values()) == {"attempting"}

        pipeline.start("ibd-rest")
        receiver.wait_for(lambda r: len(r.requests) == 2, timeout=30)
        wait_for(lambda: set(digest_states(spool).values()) == {"delivered"}, timeout=10, what="delivered")
        [(key, count)] = receiver.keys().items()
        assert count == 2 and key in digest_states(spool)
        first, second = receiver.accepted
        assert first == second and len(first["findings"]) == 3


def test_endpoint_down_then_up_and_a_reload_through_the_running_bot(tmp_path, intelmq_pipeline):
    spool = tmp_path / "rest.sqlite"
    with Receiver(script=[503, 503]) as receiver:
        pipeline = intelmq_pipeline({"ibd-rest": rest_bot(spool, receiver.url, max_age=0.2)})
        pipeline.start()
        pipeline.push("ibd-rest", *[event(n, [AMSTERDAM]) for n in range(3)])
        receiver.wait_for(lambda r: len(r.accepted) == 1, timeout=30)
        wait_for(lambda: set(digest_states(spool).values()) == {"delivered"}, timeout=10, what="delivered")
        assert [status for _, _, status in receiver.requests] == [503, 503, 200]
        assert len(receiver.keys()) == 1
        warnings = pipeline.log_lines(["ibd-rest"], level="WARNING")
        assert sum("not delivered" in line for line in warnings) == 2
        assert json.loads(receiver.requests[-1][1])["organisation"]["id"] == "GM0363"

        # A reload (SIGHUP) stops the delivery thread and starts it again.
        pipeline.reload("ibd-rest")
        pipeline.push("ibd-rest", event(50, [UTRECHT]))
        receiver.wait_for(lambda r: len(r.accepted) == 2, timeout=30)
        assert json.loads(receiver.requests[-1][1])["organisation"]["id"] == "GM0344"
        assert not pipeline.log_lines(["ibd-rest"], level="ERROR")


def digest_files(directory) -> list:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))] if directory.exists() else []


def kinds_by_address(digests) -> list:
    return sorted((f["kind"], f["ip"]) for d in digests for f in d["findings"])


def test_rescans_through_a_running_output_with_its_postgresql_ledger_stopped_and_started(tmp_path, intelmq_pipeline):
    from intelmq_nsm.digest.ledger import Ledger
    from intelmq_nsm.testbed.postgres import PostgresServer

    out = tmp_path / "digests"
    orgs = [AMSTERDAM, UTRECHT]

    def scan(n, round_no, vulnerable=True):
        extra = {} if vulnerable else {"extra.nsm.result": "not-vulnerable"}
        # Each round is a report of its own (its time.observation): one observation per round.
        times = {
            "time.source": f"2026-06-0{round_no}T09:00:0{n}+00:00",
            "time.observation": f"2026-06-0{round_no}T10:00:00+00:00",
        }
        return event(n, [orgs[n % 2]], **{**times, **extra})

    with PostgresServer() as server:
        url = server.create_database("ledger")
        bot = {
            "module": "intelmq.bots.outputs.nsm.digest",
            "parameters": {
                "channel": "file",
                "constituency": "ibd",
                "file_directory": str(out),
                "file_formats": ["json"],
                "spool_file": str(tmp_path / "archive.sqlite"),
                "ledger_url": url,
                "ledger_name": "ibd-archive",
                "ledger_retry_delay": 0.3,
                "reminder_after": 3600,
                "max_age": 0.5,
                "delivery_interval": 0.1,
            },
        }
        pipeline = intelmq_pipeline({"ibd-archive": bot})
        pipeline.start()
        pipeline.push("ibd-archive", *[scan(n, 1) for n in range(6)])
        expected = sorted(("new", event(n, [])["source.ip"]) for n in range(6))
        wait_for(lambda: kinds_by_address(digest_files(out)) == expected, timeout=60, what="the first digests")
        first = digest_files(out)

        # The rescan arrives while the ledger's database is down: held, not acknowledged.
        server.stop()
        pipeline.push("ibd-archive", *[scan(n, 2, vulnerable=n >= 2) for n in range(6)])
        wait_for(
            lambda: any(
                "The ledger cannot be reached" in line for line in pipeline.log_lines(["ibd-archive"], "WARNING")
            ),
            timeout=30,
            what="the output to notice the ledger is down",
        )
        assert sum(pipeline.queue_sizes().values()) >= 1 and len(digest_files(out)) == len(first)

        def since(earlier):
            return [d for d in digest_files(out) if d["id"] not in {e["id"] for e in earlier}]

        server.start()
        expected = sorted(("fixed", event(n, [])["source.ip"]) for n in range(2))
        wait_for(lambda: kinds_by_address(since(first)) == expected, timeout=60, what="the digests of fixes")
        pipeline.wait_drained()
        fixed = since(first)

        # A week later (the output's clock moved on): reminders for what is still open, the
        # fixed ones reopened.
        pipeline.stop("ibd-archive")
        pipeline.runtime["ibd-archive"]["parameters"]["clock_offset"] = 7200
        pipeline.write_runtime()
        pipeline.start("ibd-archive")
        pipeline.push("ibd-archive", *[scan(n, 3) for n in range(6)])
        expected = [("reopened", event(n, [])["source.ip"]) for n in range(2)]
        expected += [("reminder", event(n, [])["source.ip"]) for n in range(2, 6)]
        wait_for(lambda: kinds_by_address(since(first + fixed)) == sorted(expected), timeout=60, what="round three")
        pipeline.wait_drained()
        time.sleep(1)  # nothing else may follow
        third = since(first + fixed)
        assert kinds_by_address(third) == sorted(expected)
        assert all(f["times_seen"] == 3 for d in third for f in d["findings"])
        assert pipeline.dumps() == {}

        ledger = Ledger(url, name="ibd-archive")
        try:
            records = ledger.records()
        finally:
            ledger.close()
        assert sorted((r["state"], r["notifications"], r["times_seen"]) for r in records) == sorted(
            [("reopened", 2, 3)] * 2 + [("notified", 2, 3)] * 4
        )
