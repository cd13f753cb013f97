"""The digest output's mechanism without IntelMQ (spool, ledger, deliverer, file channel),
for tests that feed it events round after round and read back what each round delivered."""

import json
import logging

from intelmq_nsm.digest import notify
from intelmq_nsm.digest.channels import FileChannel
from intelmq_nsm.digest.delivery import Deliverer
from intelmq_nsm.digest.ledger import Ledger
from intelmq_nsm.digest.spool import DigestSpool


class Output:
    """The digest output's mechanism without IntelMQ, delivering into JSON files."""

    def __init__(
        self, tmp_path, url, name="ibd-mail", spool_file=None, intake="accept", formats=("json",), kinds=None, **policy
    ):
        self.directory = tmp_path / f"out-{name}"
        self.intake = intake
        self.kinds = kinds
        self.spool = DigestSpool(spool_file or tmp_path / f"{name}.spool.sqlite")
        self.ledger = Ledger(url, name=name, **policy)
        self.deliverer = Deliverer(
            self.spool,
            FileChannel(str(self.directory), formats=list(formats)),
            logging.getLogger("test-ledger"),
            max_events=1000,
            max_age=0,
            ledger=self.ledger,
            kinds=kinds,
        )
        self.seen = set()

    def round(self, events, now: float) -> list:
        """Take the events, deliver what is due; return the digests this round delivered."""
        for e in events:
            self.take(e, now)
        self.deliverer.run_once(now=now, flush=True)
        new = sorted(set(self.directory.glob("*.json")) - self.seen)
        self.seen.update(new)
        return [json.loads(p.read_text()) for p in new]

    def take(self, event: dict, now: float) -> None:
        """One event into the output, the way its intake goes."""
        if self.intake == "arrive":
            notify.arrive(event, self.spool, now, kinds=self.kinds)
        else:
            notify.accept(event, self.spool, self.ledger, now, kinds=self.kinds)

    def close(self):
        self.spool.close()
        self.ledger.close()
