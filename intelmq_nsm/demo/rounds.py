"""The demo's two rounds on the running example chain.

Round one: every sample report submitted over HTTP as the researcher would, and the second
source's reports (Shadowserver's, ``feeds/``) dropped into its file collector's folder as
the feed delivers them, then waited for until every finding is delivered in a digest or
has left on the ``_default`` path. Round two is the rescan a week later
(``reports/rescan/``, ``feeds/rescan/``): the digest outputs' clock is moved on (their
``clock_offset`` parameter), the owners' answers of ``reports/rescan/answers.json`` are
recorded in the ledgers as the feedback service will, the rescan reports are submitted and
the feed's next reports delivered, and the summary shows what each organisation got in
round two (reminders, verified fixes, the reopened finding, the infected host still seen)
and the cases' statistics.
"""

from intelmq_nsm.demo.example import owners_answers
from intelmq_nsm.demo.summary import Summary, Tally
from intelmq_nsm.testbed.pipeline import HarnessError

DAY = 86400
RESCAN = "rescan"
#: Round two plays a week and a day after round one: past the outputs' default reminder_after.
ROUND_TWO_CLOCK = 8 * DAY


def submit_all(chain, reports: list, submitted: list, progress) -> None:
    for report in reports:
        status, submission = chain.submit(report)
        submitted.append((report.name, status, submission))
        progress(f"Submitted {report.name}: HTTP {status}, submission {submission}.")


def deliver_feeds(chain, reports: list, delivered: list, progress) -> None:
    """The feed's reports into its file collector's folder."""
    for report in reports:
        chain.deliver_feed(report)
        delivered.append(report.name)
        progress(f"Delivered {report.name} to the feed's collector.")


def round_one(chain, tally: Tally, progress) -> Summary:
    """Submit every sample report, deliver the feed's reports, wait for delivery; who got what."""
    summary = Summary()
    submit_all(chain, chain.reports(), summary.submitted, progress)
    deliver_feeds(chain, chain.feeds(), summary.feeds, progress)
    progress("Waiting until every finding is delivered.")
    chain.wait_until_delivered()
    return tally.summarise(summary)


def round_two(chain, tally: Tally, rescans: list, progress) -> Summary:
    """The rescan a week later: move the outputs' clock, record the owners' answers,
    submit the rescan reports, wait; what round two delivered, and the case statistics."""
    before = {digest.id for _, digest in chain.digests()}
    progress(f"Round two: the researchers' rescan, {ROUND_TWO_CLOCK // DAY} days later on the outputs' clock.")
    chain.set_clock(ROUND_TWO_CLOCK)
    summary = Summary(round_no=2)
    summary.answers = record_answers(chain, owners_answers(chain.example), progress)
    for report in rescans:
        try:
            submit_all(chain, [report], summary.submitted, progress)
        except HarnessError as exc:
            # A rescan this installation's report format cannot take (e.g. without the
            # per-finding result): said, and round two goes on with the others.
            summary.refused.append(f"{report.name}: {exc}")
            progress(f"{exc} Round two goes on without it.")
    deliver_feeds(chain, chain.feeds(RESCAN), summary.feeds, progress)
    progress("Waiting until every finding of the rescan is delivered.")
    chain.wait_until_delivered()
    tally.summarise(summary, exclude=before)
    summary.cases = case_statistics(chain)
    return summary


def record_answers(chain, answers: list, progress) -> list:
    """The owners' answers (``{"case", "target", "state", "note"}``, target as
    ``address:port``) into every ledger holding the finding."""
    recorded = []
    for bot_id, ledger in chain.ledgers():
        try:
            for answer in answers:
                for record in ledger.records(case_id=answer["case"]):
                    if record["target"] == answer["target"]:
                        ledger.record_answer(
                            record["finding_id"], record["org_id"], answer["state"], "owner", answer["note"]
                        )
                        recorded.append({**answer, "organisation": record["org_id"], "output": bot_id})
        finally:
            ledger.close()
    for answer in {(a["organisation"], a["target"], a["state"], a["note"]) for a in recorded}:
        progress(f"{answer[0]} answered for {answer[1]}: {answer[2]} ({answer[3]})")
    return recorded


def case_statistics(chain) -> dict:
    """Per constituency (its first digest output's ledger): per case, findings by state."""
    from intelmq_nsm.digest.ledger.stats import case_counts

    result = {}
    for bot_id, ledger in chain.ledgers():
        constituency = chain.pipeline.runtime[bot_id]["parameters"].get("constituency") or bot_id
        try:
            if constituency not in result:
                result[constituency] = {case or "-": counts for case, counts in case_counts(ledger).items()}
        finally:
            ledger.close()
    return result
