"""The example NSM→IBD pipeline, end to end, on a private Redis and IntelMQ root.

``intelmq-nsm demo`` takes ``runtime-examples/nsm-ibd/`` as an operator would: its
runtime.yaml, registry, token file and sample reports. The test bed's ExampleChain moves
the example's paths and ports into a private working directory, starts the pipeline with
intelmqctl and an SMTP sink beside it; the demo then plays its rounds
(:mod:`intelmq_nsm.demo.rounds`: the sample reports, then the researchers' rescan a week
later), the owners' answers through the real feedback service and the researcher's view of
each case (:mod:`intelmq_nsm.demo.feedback_round`), prints who got what
(:mod:`intelmq_nsm.demo.summary`) and how the mails went (:mod:`intelmq_nsm.demo.mails`:
signed with the key the test bed made at start-up, labelled, each kept in ``mails/`` of
the working folder), and stops everything it started.
"""

import contextlib
from pathlib import Path
from typing import Callable, Optional

from intelmq_nsm.demo.errors import DemoError
from intelmq_nsm.demo.example import preflight, preflight_signing, rescans
from intelmq_nsm.demo.feedback_round import FeedbackRound
from intelmq_nsm.demo.mails import FOLDER, PUBLIC_KEY, keep_public_keys, mail_report, prepare
from intelmq_nsm.demo.rounds import round_one, round_two
from intelmq_nsm.demo.summary import Summary, Tally
from intelmq_nsm.testbed.chain import ExampleChain
from intelmq_nsm.testbed.pipeline import Pipeline
from intelmq_nsm.testbed.smtp_sink import SmtpSink

#: Where the researcher's charts are kept when no folder is given: ``charts/`` in the
#: working directory the demo is run from, which outlives the demo's own folder.
CHARTS = Path("charts")


class Demo:
    """One run of the example pipeline; ``run()`` returns the Summary.

    ``charts``: the folder the cases' charts are kept in (default ``charts/`` of the current
    directory). ``pipeline_class``: the test bed's Pipeline, or the tests' own.
    """

    def __init__(
        self,
        example: Path,
        workdir: Path,
        redis_url: Optional[str] = None,
        progress: Callable[[str], None] = print,
        timeout: float = 300.0,
        broker: str = "redis",
        rabbitmq=None,
        charts: Optional[Path] = None,
        pipeline_class=Pipeline,
    ):
        if broker not in ("redis", "amqp"):
            raise DemoError(f"Unknown broker {broker!r}: redis or amqp.")
        self.example = Path(example)
        self.workdir = Path(workdir)
        self.progress = progress
        self.charts = Path(charts) if charts is not None else CHARTS
        #: Every mail the SMTP sink receives is kept here as an .eml file, with the signing
        #: key's public half beside them.
        self.mails = (self.workdir / FOLDER).resolve()
        self.chain = ExampleChain(
            self.example,
            self.workdir,
            redis_url=redis_url,
            broker=broker,
            rabbitmq=rabbitmq,
            pipeline_class=pipeline_class,
            sink_factory=lambda: SmtpSink(keep=self.mails),
            progress=progress,
            timeout=timeout,
        )
        self.feedback = FeedbackRound(self.workdir, progress)

    def preflight(self) -> dict:
        """Check what the demo needs before starting anything; return the example runtime."""
        chain = self.chain
        preflight(self.example, chain.redis_url, chain.broker, chain.rabbitmq)
        runtime = chain.runtime()
        preflight_signing(runtime)
        return runtime

    def run(self) -> Summary:
        """Start, play both rounds and the feedback round, summarise, stop."""
        runtime = self.preflight()
        prepare(self.mails)
        try:
            self.chain.start(runtime, before=self.feedback.start)
            if keep_public_keys(self.chain.signing_keys, self.mails):
                self.progress(f"The signing key's public half is in {self.mails / PUBLIC_KEY}.")
            tally = Tally(self.chain)
            summary = round_one(self.chain, tally, self.progress)
            rescan = rescans(self.example)
            if rescan or self.chain.feeds("rescan"):
                summary.round_two = round_two(self.chain, tally, rescan, self.progress)
            if self.feedback.server is not None:
                summary.feedback = self.feedback.run(self.chain, self.charts)
            summary.mail_report = mail_report(self.chain, self.mails)
            return summary
        finally:
            self.close()

    def close(self) -> None:
        self.chain.close()
        with contextlib.suppress(Exception):
            self.feedback.stop()
