"""Each shortcut of intelmq_nsm.intelmq_shortcuts against IntelMQ's public API, on the installed IntelMQ."""

import json

from intelmq.lib.bot import Bot
from intelmq.lib.message import Event

from intelmq_nsm import event_contract
from intelmq_nsm import intelmq_shortcuts as shortcuts

KEYS = {v for k, v in vars(event_contract).items() if k.isupper() and k != "PREFIX" and isinstance(v, str)}
VALUES = {
    event_contract.ORGANISATIONS: [{"id": "GM0363", "name": "Amsterdam", "kind": "municipality", "contacts": []}],
    event_contract.REGISTRY_VERSION: "example-2026-11 (sha256:c850408bc3ed)",
    event_contract.RECORD: 7,
}
EVENT = {
    "source.ip": "192.0.2.7",
    "source.port": 443,
    "source.fqdn": "vpn.amsterdam.example",
    "classification.type": "vulnerable-system",
    "product.vulnerabilities": "cve-2024-3400",
    "time.source": "2026-11-30T10:00:00+00:00",
    event_contract.CASE_ID: "DIVD-2026-00001",
}


def test_put_stores_what_add_stores_for_every_contract_key():
    for key in KEYS:
        added, put = Event(), Event()
        value = VALUES.get(key, "a value")
        assert added.add(key, value, overwrite=True) is True, key
        shortcuts.put(put, key, value)
        assert put.to_dict() == added.to_dict(), key
        assert Event(put.to_dict()).to_dict() == added.to_dict(), key


def test_put_of_a_value_add_stored_once_is_what_add_stores():
    first, second, public = Event(), Event(), Event()
    first.add("constituency", "ibd", overwrite=True)
    shortcuts.put(second, "constituency", first["constituency"])
    public.add("constituency", "ibd", overwrite=True)
    assert second.to_dict() == public.to_dict()


def test_get_answers_as_message_get():
    event = Event(EVENT)
    for key in (*EVENT, "source.asn", "extra.nsm.nothing"):
        assert shortcuts.get(event, key) == event.get(key), key
    assert shortcuts.get(event, "source.asn", 64496) == event.get("source.asn", 64496)


def test_as_dict_is_to_dict_for_flat_keys():
    event = Event(EVENT)
    assert shortcuts.as_dict(event) == event.to_dict()
    assert shortcuts.as_dict(event) is not event


def test_clone_is_a_copy_that_stays_an_event():
    template = Event(EVENT)
    clone = shortcuts.clone(template)
    assert isinstance(clone, Event)
    assert clone.to_dict() == template.copy().to_dict()
    clone.add("source.port", 8443, overwrite=True)  # the public API still works on it
    assert template["source.port"] == 443 and clone["source.port"] == 8443
    assert json.loads(clone.serialize())["source.port"] == 8443


def test_dump_is_the_bot_dump_of_intelmq():
    # The shortcut names IntelMQ's private dump call: fail here if it is renamed or its
    # signature changes.
    import inspect

    parameters = list(inspect.signature(Bot._dump_message).parameters)
    assert parameters[:3] == ["self", "error_traceback", "message"]

    class Recorder:
        def _dump_message(self, error, message):
            self.seen = (error, message)

    bot = Recorder()
    shortcuts.dump(bot, "ValueError: broken.", b"{}")
    assert bot.seen == ("ValueError: broken.", b"{}")
