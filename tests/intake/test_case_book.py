"""The case book: owners and shares of the researchers' cases, in one SQLite file that every
intake of a host opens."""

import threading

import pytest

from intelmq_nsm.intake.cases import BY_OPERATOR, BY_SUBMISSION, CaseBook, CaseTaken, UnknownCase

CASE = "DIVD-2024-00012"


@pytest.fixture
def book(tmp_path):
    book = CaseBook(tmp_path / "cases.sqlite")
    yield book
    book.close()


def test_the_first_claim_owns_the_case_and_others_are_refused_until_it_is_shared(book):
    assert book.owner(CASE) is None and not book.may_speak(CASE, "DIVD")
    book.check(CASE, "DIVD")  # unowned: the one who asks would take it
    assert book.claim(CASE, "DIVD") == "DIVD"
    assert book.claim(CASE, "DIVD") == "DIVD"
    with pytest.raises(CaseTaken, match=CASE):
        book.claim(CASE, "Example Research")
    with pytest.raises(CaseTaken):
        book.check(CASE, "Example Research")
    assert book.share(CASE, "Example Research") is True
    assert book.share(CASE, "Example Research") is False
    assert book.claim(CASE, "Example Research") == "DIVD"  # the owner speaks for the shared team
    assert book.may_speak(CASE, "Example Research")
    assert book.unshare(CASE, "Example Research") is True
    assert not book.may_speak(CASE, "Example Research")
    assert book.case(CASE)["assigned_by"] == BY_SUBMISSION


def test_an_operator_assigns_shares_and_transfers(book):
    assert book.assign(CASE, "DIVD") == ""
    assert book.case(CASE) == {
        "case_id": CASE,
        "owner": "DIVD",
        "since": book.case(CASE)["since"],
        "assigned_by": BY_OPERATOR,
        "shared_with": [],
    }
    with pytest.raises(CaseTaken):
        book.assign(CASE, "Squatter")
    book.share(CASE, "Second Team")
    assert book.assign(CASE, "Second Team", transfer=True) == "DIVD"
    assert book.case(CASE)["owner"] == "Second Team" and book.case(CASE)["shared_with"] == []
    with pytest.raises(UnknownCase):
        book.share("NOPE-1", "DIVD")
    assert [c["case_id"] for c in book.cases()] == [CASE]


def test_two_intakes_on_one_case_file_never_give_a_case_two_owners(tmp_path):
    books = [CaseBook(tmp_path / "cases.sqlite") for _ in range(2)]
    owners, refused = [], []

    def claim(book, researcher):
        for n in range(50):
            try:
                owners.append((n, book.claim(f"CASE-{n}", researcher)))
            except CaseTaken:
                refused.append(n)

    threads = [threading.Thread(target=claim, args=(b, r)) for b, r in zip(books, ("DIVD", "Example Research"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(owners) == 50 and sorted(refused) == list(range(50))
        assert {n: books[0].owner(f"CASE-{n}") for n in range(50)} == dict(owners)
    finally:
        for book in books:
            book.close()
