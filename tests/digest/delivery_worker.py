"""A delivery process for tests that kill it: the bot's delivery thread on a spool, alone.

    python -m tests.digest.delivery_worker SPOOL smtp PORT
    python -m tests.digest.delivery_worker SPOOL rest URL

It logs to stderr and runs until killed.
"""

import logging
import sys

from intelmq_nsm.digest import channels
from intelmq_nsm.digest.delivery import DeliveryThread
from intelmq_nsm.digest.spool import DigestSpool
from tests.harness import LOOPBACK

SECRET = "s3cret-shared-with-the-ibd"


def main(spool_file: str, kind: str, target: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    if kind == "smtp":
        channel = channels.SmtpChannel(LOOPBACK, int(target), "ibd@ibd.example", security="none", timeout=30)
    else:
        channel = channels.RestChannel(target, SECRET, timeout=30)
    thread = DeliveryThread(
        lambda: DigestSpool(spool_file), channel, logging.getLogger("nsm.delivery"), interval=0.05,
        max_events=100, max_age=0, retry_base=0.2, retry_max=1,
    )  # fmt: skip
    thread.start()
    print("delivering", file=sys.stderr, flush=True)
    thread.join()


if __name__ == "__main__":
    main(*sys.argv[1:])
