"""The forward leg, hub → a sectoral CERT's instance, on real components: two IntelMQ roots
(each its own redis-server, bots started by intelmqctl), the hub's private RabbitMQ node
between them with the CERT's virtual host, users and rights made by the operator's script
(``runtime-examples/forward-leg/rabbitmq-add-cert.sh``, rabbitmqctl), a real SMTP server
at the CERT. No TLS: everything is on 127.0.0.1.

The hub runs the example chain with the IBD's digest outputs replaced by IntelMQ's AMQP
output and the forward-record output; the IBD runs the example chain behind IntelMQ's AMQP
collector and the forwarded-event parser, routing by its own registry and mailing its
municipalities (intelmq_nsm.testbed.tiers).
"""

import base64
import csv
import io
import itertools
import json
from collections import Counter
from pathlib import Path

import pika
import pytest

from intelmq_nsm import event_contract as ec
from intelmq_nsm.demo.summary import finding_address
from intelmq_nsm.testbed.sample_events import hub_event
from intelmq_nsm.testbed.tiers import HUB_INSTANCE, Tiers, add_cert, remove_cert
from tests.e2e.test_nsm_ibd_example import EXPECTED
from tests.harness import HarnessPipeline, csv_attachment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "runtime-examples" / "nsm-ibd"
SNIPPETS = REPO / "runtime-examples" / "forward-leg"
EXPERT = "nsm-constituency-expert"
AMQP_OUTPUT = "ibd-forward-amqp"
RECORD = "ibd-forward-record"
COLLECTOR = "hub-collector"
PARSER = "hub-forwarded-parser"
#: Where the CERT's parser's events are also written, to read them as they left it.
ARRIVED = "forwarded-file-output"


def municipal(count: int, start: int = 8) -> list:
    """``count`` findings the hub routes to the IBD, from number ``start`` on (their
    addresses are 192.0.2.0 to .239, ``n`` modulo 240; .4 to .7 are excluded in the
    example registry, so those numbers are left out)."""
    numbers = (n for n in itertools.count(start) if not 4 <= n % 240 <= 7)
    return [hub_event(n) for n in itertools.islice(numbers, count)]


def keep_what_the_parser_sends(runtime: dict) -> None:
    """At the CERT: a core file output beside the deduplicator, behind the forwarded-event parser."""
    runtime[PARSER]["parameters"]["destination_queues"]["_default"].append(f"{ARRIVED}-queue")
    runtime[ARRIVED] = {
        "module": "intelmq.bots.outputs.file.output",
        "parameters": {
            "file": "/opt/intelmq/var/lib/bots/forwarded/events.jsonl",
            "hierarchical_output": False,
            "keep_raw_field": True,
        },
    }


def mails(leg) -> Counter:
    """How often each (recipient, finding id) was mailed by the CERT."""
    seen = Counter()
    for _, recipients, message in leg.cert.sink.messages:
        for row in csv.DictReader(io.StringIO(csv_attachment(message))):
            seen[(tuple(recipients), row["finding_id"])] += 1
    return seen


def ledger_records(chain, bot_id: str) -> list:
    ledger = chain.ledger(bot_id)
    try:
        return ledger.records()
    finally:
        ledger.close()


@pytest.fixture
def forward_leg(tmp_path, rabbitmq_server, request):
    """A hub and the IBD's instance, not started; stopped and its virtual host deleted after."""
    vhost = "nsm-ibd-" + request.node.name[:40].replace("[", "-").replace("]", "")
    leg = Tiers.forward_leg(EXAMPLE, SNIPPETS, tmp_path, rabbitmq_server, vhost=vhost, pipeline_class=HarnessPipeline)
    try:
        yield leg
    finally:
        leg.close()


# -- the researchers' findings, end to end ---------------------------------------------------


@pytest.fixture(scope="module")
def forwarded_run(tmp_path_factory, rabbitmq_server):
    """The example's three sample reports submitted to the hub's intake, delivered by the IBD."""
    workdir = tmp_path_factory.mktemp("forward")
    leg = Tiers.forward_leg(
        EXAMPLE, SNIPPETS, workdir, rabbitmq_server, vhost="nsm-ibd-run", pipeline_class=HarnessPipeline
    )
    try:
        leg.start(cert_changes=keep_what_the_parser_sends)
        for report in leg.hub.reports():
            assert leg.hub.submit(report)[0] == 202
        leg.wait_until_delivered()
        yield leg
    finally:
        leg.close()


def test_each_municipality_gets_exactly_its_findings_from_the_certs_instance_once(forwarded_run):
    leg = forwarded_run
    got = {}
    for _, recipients, message in leg.cert.sink.messages:
        rows = list(csv.DictReader(io.StringIO(csv_attachment(message))))
        organisation = message["Subject"]
        got.setdefault(tuple(recipients), []).extend(finding_address(row) for row in rows)
        assert {row["kind"] for row in rows} == {"new"}, organisation
    # The same as the one installation delivers (tests/e2e/test_nsm_ibd_example.py), by the
    # IBD's own registry: every address once per organisation that owns it.
    expected = sorted(sorted(v) for (org, key), v in EXPECTED.items() if key == "ibd")
    assert sorted(sorted(addresses) for addresses in got.values()) == expected
    assert all(count == 1 for count in mails(leg).values())
    assert Counter(leg.cert.sink.digest_ids()).most_common(1)[0][1] == 1


def test_the_hub_records_each_forwarded_finding_and_the_cert_keeps_the_hubs_finding_id(forwarded_run):
    leg = forwarded_run
    hub = ledger_records(leg.hub, RECORD)
    assert {(r["org_id"], r["state"], r["constituency"]) for r in hub} == {("cert:ibd", "forwarded", "ibd")}
    cert = ledger_records(leg.cert, "ibd-digest-mail")
    assert {r["upstream_instance"] for r in cert} == {HUB_INSTANCE}
    # Every finding the hub forwarded is one at the IBD, known by the hub's finding id; the
    # IBD computed its own by the same rule (a finding owned by two organisations: two records).
    assert {r["upstream_finding_id"] for r in cert} == {r["finding_id"] for r in hub}
    assert all(r["finding_id"] == r["upstream_finding_id"] for r in cert)
    assert len(hub) == len({a for (org, key), v in EXPECTED.items() if key == "ibd" for a in v})


def test_what_the_cert_received_carries_the_connections_feed_and_the_hubs_provenance(forwarded_run):
    leg = forwarded_run
    path = leg.cert.pipeline.runtime[ARRIVED]["parameters"]["file"]
    events = leg.cert.pipeline.read_file_output(path)
    assert events and len(events) == len(ledger_records(leg.hub, RECORD))
    for event in events:
        assert (event["feed.name"], event["feed.code"]) == ("Meldpunt hub", "nsm-hub")
        assert not {"constituency", ec.ORGANISATIONS, ec.MATCHES, ec.REGISTRY_VERSION} & set(event)
        upstream = event[ec.UPSTREAM]
        assert upstream["instance"] == HUB_INSTANCE and upstream["finding_id"] == event[ec.FINDING_ID]
        assert upstream.get("case_id") == event.get(ec.CASE_ID)  # absent when the hub had none
        assert upstream["reporter"]["feed_provider"]  # who reported it to the hub
        assert json.loads(base64.b64decode(event["raw"]))["constituency"] == "ibd"  # the message as it came


def test_the_researchers_case_view_at_the_hub_counts_what_was_forwarded_to_the_ibd(forwarded_run):
    leg = forwarded_run
    case = leg.hub.intake.case("DIVD-2024-00012")
    per = {c["constituency"]: c for c in case["constituencies"]}
    forwarded = sum(1 for r in ledger_records(leg.hub, RECORD) if r["case_id"] == "DIVD-2024-00012")
    assert forwarded > 0 and per["ibd"]["forwarded"] == forwarded == per["ibd"]["findings"]
    assert per["ibd"]["by_state"] == {"forwarded": forwarded}
    assert case["forwarded"] == forwarded


def test_nothing_was_dumped_and_no_bot_logged_an_error_on_either_side(forwarded_run):
    leg = forwarded_run
    for chain in (leg.hub, leg.cert):
        assert chain.pipeline.dumps() == {}
        assert chain.pipeline.log_lines() == []


# -- faults ------------------------------------------------------------------------------------


def test_while_the_certs_instance_is_down_the_findings_wait_on_the_node_and_arrive_once(forward_leg):
    leg = forward_leg
    leg.start()
    leg.cert.pipeline.stop()  # the IBD's instance goes down
    events = municipal(40)
    leg.hub.pipeline.push(EXPERT, *events)
    leg.hub.pipeline.wait_drained(timeout=120, settle=1.0)
    assert leg.queued() == 40  # waiting on the hub's node, in the IBD's queue
    assert len(ledger_records(leg.hub, RECORD)) == 40
    assert leg.cert.sink.messages == []
    leg.cert.pipeline.start()  # back
    leg.wait_until_delivered()
    sent = mails(leg)
    assert {finding for _, finding in sent} == {e[ec.FINDING_ID] for e in events}
    assert set(sent.values()) == {1}


def test_while_the_certs_user_cannot_reach_the_node_the_findings_wait_and_arrive_once(forward_leg, rabbitmq_server):
    leg = forward_leg
    leg.start()
    # The IBD's side of the node is unreachable: its connections are closed and refused.
    rabbitmq_server.ctl("set_user_limits", leg.link.cert_user, '{"max-connections": 0}')
    rabbitmq_server.ctl("close_all_user_connections", leg.link.cert_user, "the IBD is cut off for a while")
    try:
        events = municipal(30, start=50)
        leg.hub.pipeline.push(EXPERT, *events)
        leg.hub.pipeline.wait_drained(timeout=120, settle=1.0)
        wait_for(lambda: leg.queued() == 30, timeout=30, what="30 messages waiting in the IBD's queue")
        assert leg.cert.pipeline.status(COLLECTOR) == "running"  # retrying, not gone
    finally:
        rabbitmq_server.ctl("clear_user_limits", leg.link.cert_user, "max-connections")
    leg.wait_until_delivered()
    sent = mails(leg)
    assert {finding for _, finding in sent} == {e[ec.FINDING_ID] for e in events}
    assert set(sent.values()) == {1}


def publish_as_hub(leg, rabbitmq_server, *bodies: bytes) -> None:
    """Publish messages into the IBD's exchange with the hub's credentials, as its output does."""
    parameters = pika.ConnectionParameters(
        host="127.0.0.1",
        port=rabbitmq_server.port,
        virtual_host=leg.link.vhost,
        credentials=pika.PlainCredentials(leg.link.hub_user, leg.link.hub_password),
    )
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
            channel.basic_publish(leg.link.exchange, leg.key, body, properties, mandatory=True)
    finally:
        connection.close()


def test_a_forged_or_malformed_event_is_dumped_at_the_cert_naming_the_field_and_the_batch_goes_on(
    forward_leg, rabbitmq_server
):
    leg = forward_leg
    leg.start()
    good = municipal(2, start=100)

    def exported(event, **change):
        flat = {k: v for k, v in {**event, **change}.items() if k != "__type"}
        return json.dumps(flat).encode()

    batch = [
        exported(good[0]),
        exported(hub_event(120), **{"source.ip": "192.0.2.300"}),  # harmonization refuses it
        b'{"source.ip": "192.0.2.121", ',  # cut off
        exported(hub_event(122), **{ec.FINDING_ID: "nf1-../../../etc/passwd"}),  # a forged id
        exported(hub_event(123), **{"source.port": 443, "source.port ": 8443}),  # not a field name
        exported(good[1]),
    ]
    publish_as_hub(leg, rabbitmq_server, *batch)
    dumps = leg.cert.pipeline.wait_for_dumps(PARSER, 4, timeout=60)
    leg.wait_until_delivered()
    reasons = sorted(
        entry["traceback"][0] if isinstance(entry["traceback"], list) else entry["traceback"] for entry in dumps
    )
    assert any("field 'source.ip' '192.0.2.300' is not a valid value" in r for r in reasons), reasons
    assert any("field 'raw' is not JSON" in r for r in reasons), reasons
    assert any(f"field '{ec.FINDING_ID}' 'nf1-../../../etc/passwd' is not an accepted value" in r for r in reasons)
    assert any("field 'source.port ' is not a field name IntelMQ allows" in r for r in reasons), reasons
    assert all(r.startswith("intelmq_nsm.federation.ForwardedEventError: field ") for r in reasons), reasons
    sent = mails(leg)
    assert {finding for _, finding in sent} == {e[ec.FINDING_ID] for e in good}
    assert set(sent.values()) == {1}


def assert_each_mailed_once(leg, events: list) -> None:
    leg.wait_until_delivered()
    sent = mails(leg)
    assert {finding for _, finding in sent} == {e[ec.FINDING_ID] for e in events}
    assert set(sent.values()) == {1}, [k for k, n in sent.items() if n > 1]
    records = ledger_records(leg.cert, "ibd-digest-mail")
    assert {r["upstream_finding_id"] for r in records} == {e[ec.FINDING_ID] for e in events}


def test_a_sigkilled_amqp_output_mid_batch_loses_nothing_and_mails_no_municipality_twice(forward_leg):
    leg = forward_leg
    leg.start()
    hub = leg.hub.pipeline
    events = municipal(400)
    hub.stop(AMQP_OUTPUT)
    hub.push(EXPERT, *events)
    wait_for(lambda: hub.waiting(AMQP_OUTPUT) == 400, timeout=120, what="400 events for the AMQP output")
    hub.kill_part_way(AMQP_OUTPUT, lambda: 20 < 400 - hub.waiting(AMQP_OUTPUT) < 380)
    assert_each_mailed_once(leg, events)


def test_a_sigkilled_collector_and_parser_mid_batch_lose_nothing_and_mail_no_municipality_twice(forward_leg):
    leg = forward_leg
    leg.start()
    cert = leg.cert.pipeline
    total = 1500
    events = municipal(total)
    cert.stop(COLLECTOR, PARSER)
    leg.hub.pipeline.push(EXPERT, *events)
    wait_for(lambda: leg.queued() == total, timeout=300, interval=0.5, what=f"{total} messages in the IBD's queue")
    # The collector, killed while it hands messages on to the (stopped) parser: the
    # messages it had not acknowledged go back to the queue.
    cert.kill_part_way(COLLECTOR, lambda: 20 < cert.waiting(PARSER) < total - 100)
    wait_for(lambda: leg.queued() == 0, timeout=120, interval=0.5, what="every message collected")
    collected = cert.waiting(PARSER)
    assert collected >= total  # at least once: the one in hand when killed may come twice
    # The parser, killed while it works through them: IntelMQ hands it its report again.
    cert.kill_part_way(PARSER, lambda: 20 < collected - cert.waiting(PARSER) < collected - 100)
    assert_each_mailed_once(leg, events)


# -- rights on the node ------------------------------------------------------------------------


def connect(rabbitmq_server, vhost: str, user: str, password: str):
    parameters = pika.ConnectionParameters(
        host="127.0.0.1",
        port=rabbitmq_server.port,
        virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
    )
    return pika.BlockingConnection(parameters)


def refused(action) -> str:
    """The broker's refusal of ``action``: its reply code and text."""
    with pytest.raises((pika.exceptions.ChannelClosedByBroker, pika.exceptions.ProbableAccessDeniedError)) as caught:
        action()
    return str(caught.value)


def confirmed_publish(connection, exchange: str, body: bytes, routing_key: str = "ibd") -> None:
    """Publish on a channel of its own and wait for the broker's confirm (or refusal)."""
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(delivery_mode=2), mandatory=True)


def test_the_hub_cannot_read_the_certs_queue_and_another_cert_cannot_write_to_it(tmp_path, rabbitmq_server):
    ibd = add_cert(rabbitmq_server, SNIPPETS, "ibd", tmp_path / "ibd", vhost="nsm-ibd-rights", cert_user="ibd-rights")
    surf = add_cert(
        rabbitmq_server,
        SNIPPETS,
        "surf",
        tmp_path / "surf",
        vhost="nsm-surf-rights",
        cert_user="surf-rights",
        passwords=("hub-secret", "surf-secret"),
    )
    body = json.dumps(hub_event(8)).encode()
    try:
        # The hub writes to the IBD's exchange, and the IBD reads it from its queue.
        hub = connect(rabbitmq_server, ibd.vhost, ibd.hub_user, ibd.hub_password)
        channel = hub.channel()
        channel.confirm_delivery()
        channel.exchange_declare(ibd.exchange, exchange_type="topic", durable=True)  # as the output does
        channel.basic_publish(ibd.exchange, "ibd", body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        # ...but reads nothing, binds nothing, deletes nothing, and cannot write past its exchange.
        assert "403" in refused(lambda: hub.channel().basic_get(ibd.queue))
        assert "403" in refused(lambda: hub.channel().queue_bind(ibd.queue, ibd.exchange, "#"))
        assert "403" in refused(lambda: hub.channel().queue_delete(ibd.queue))
        assert "403" in refused(lambda: hub.channel().queue_declare("hub-own-queue"))
        assert "403" in refused(lambda: confirmed_publish(hub, "", body, routing_key=ibd.queue))
        hub.close()

        cert = connect(rabbitmq_server, ibd.vhost, ibd.cert_user, ibd.cert_password)
        _, _, received = cert.channel().basic_get(ibd.queue, auto_ack=True)
        assert json.loads(received) == json.loads(body)
        # The IBD only reads: it cannot publish to the exchange or declare anything.
        assert "403" in refused(lambda: confirmed_publish(cert, ibd.exchange, body))
        assert "403" in refused(
            lambda: cert.channel().exchange_declare(ibd.exchange, exchange_type="topic", durable=True)
        )
        cert.close()

        # Another CERT's user has no business on the IBD's virtual host: not even a connection.
        assert "530" in refused(lambda: connect(rabbitmq_server, ibd.vhost, surf.cert_user, surf.cert_password))
        # On its own, it reads its own queue and writes nowhere either.
        own = connect(rabbitmq_server, surf.vhost, surf.cert_user, surf.cert_password)
        assert "403" in refused(lambda: confirmed_publish(own, surf.exchange, body))
        own.close()
        listed = rabbitmq_server.ctl(
            "-q", "--no-table-headers", "list_permissions", "-p", ibd.vhost
        ).stdout.splitlines()
        assert sorted(line.split("\t") for line in listed) == [
            ["ibd-rights", "^$", "^$", "^nsm-forward-ibd$"],
            ["nsm-hub", "^nsm-forward$", "^nsm-forward$", "^$"],
        ]
    finally:
        remove_cert(rabbitmq_server, ibd)
        remove_cert(rabbitmq_server, surf)
