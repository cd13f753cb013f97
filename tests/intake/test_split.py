"""Edge validation and splitting: bounded parts, records whole, headers repeated."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intelmq_nsm.formats import divd_csv, nuclei
from intelmq_nsm.intake.split import SubmissionError, split_csv, split_ndjson, split_nsm_report, split_submission

HEADER = "ip,asn,holder\n"


def test_csv_parts_repeat_the_header_and_keep_quoted_newlines_in_their_row():
    rows = [f'192.0.2.{i},6449{i % 10},"Holder {i}\nsecond line, with comma"\n' for i in range(1, 41)]
    parts = split_csv(HEADER + "".join(rows), max_bytes=300)
    assert len(parts) > 3
    seen = []
    for part in parts:
        assert part.text.startswith(HEADER) and len(part.text.encode()) <= 300
        assert part.first_record == len(seen) + 1
        records = list(divd_csv.iter_records(part.text))
        assert [r.error for r in records] == [None] * part.records
        seen += [r.data for r in records]
    assert [row["ip"] for row in seen] == [f"192.0.2.{i}" for i in range(1, 41)]
    assert seen[0]["holder"] == "Holder 1\nsecond line, with comma"


def test_ndjson_blank_lines_do_not_count_and_a_huge_record_stays_whole():
    lines = ['{"template-id": "a", "ip": "192.0.2.1"}', "", '{"template-id": "b", "x": "' + "y" * 500 + '"}', "{}"]
    parts = split_ndjson("\n".join(lines) + "\n", max_bytes=100)
    assert [(p.first_record, p.records) for p in parts] == [(1, 1), (2, 1), (3, 1)]
    assert [r.data["template-id"] for r in nuclei.iter_records(parts[1].text)] == ["b"]
    with pytest.raises(SubmissionError) as error:
        split_ndjson("[1]\n", max_bytes=100)
    assert error.value.problems == [("$[0]", "line 1 is not a JSON object")]


def test_ndjson_lines_end_at_line_feeds_only_as_the_parser_reads_them():
    text = '{"template-id": "a", "info": {"name": "x\u2028y\u0085z"}}\n'
    [part] = split_ndjson(text, max_bytes=1000)
    assert part.records == 1
    assert [r.data["info"]["name"] for r in nuclei.iter_records(part.text)] == ["x\u2028y\u0085z"]


def test_nsm_report_parts_carry_case_and_reporter_with_a_slice_of_findings():
    document = {
        "schema": "nsm-report/1",
        "case": {"id": "DIVD-2024-00001", "title": "Ünïcode title"},
        "reporter": {"organisation": "DIVD"},
        "findings": [{"ip": f"198.51.100.{i}", "port": i} for i in range(1, 30)],
    }
    parts = split_nsm_report(json.dumps(document), max_bytes=400)
    assert len(parts) > 2
    joined = []
    for part in parts:
        assert part.text.startswith('{"schema": "nsm-report/1"') and len(part.text.encode()) <= 400
        data = json.loads(part.text)
        assert data["case"] == document["case"] and data["reporter"] == document["reporter"]
        assert part.first_record == len(joined) + 1 and part.records == len(data["findings"])
        joined += data["findings"]
    assert joined == document["findings"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="abcxyz ,\"\n'é", max_size=40), min_size=1, max_size=30),
    st.integers(min_value=30, max_value=400),
)
def test_csv_splitting_keeps_every_row_in_order(holders, max_bytes):
    text = HEADER + "".join(
        f'192.0.2.{i % 250},64496,"{h.replace(chr(34), chr(34) * 2)}"\n' for i, h in enumerate(holders)
    )
    parts = split_csv(text, max_bytes)
    rows = [r.data for p in parts for r in divd_csv.iter_records(p.text)]
    expected = [r.data for r in divd_csv.iter_records(text)]
    assert rows == expected
    assert sum(p.records for p in parts) == len(expected)


NSM_HEAD = '{"schema": "nsm-report/1", "case": {"id": "DIVD-2024-00001", "title": "t"}, "findings": '


def test_nsm_report_findings_go_into_parts_as_written_and_every_problem_is_named():
    findings = ['{"ip":"198.51.100.1",  "port": 1}', '{ "port" : 2, "ip": "198.51.100.2" }']
    [part] = split_nsm_report(NSM_HEAD + "[" + ",\n".join(findings) + "]}", max_bytes=10_000)
    assert part.text.endswith('"findings": [' + ", ".join(findings) + "]}")
    bad = NSM_HEAD.replace('"t"', '""') + '[{"ip": "192.0.2.1"}, {"port": 70000}, {"ip": "x", "result": "fixed"}]}'
    with pytest.raises(SubmissionError) as error:
        split_nsm_report(bad, max_bytes=10_000)
    assert str(error.value) == "The NSM report does not follow the schema nsm-report/1: 5 problem(s)."
    assert [path for path, _ in error.value.problems] == [
        "$.case.title",
        "$.findings[1]",
        "$.findings[1].port",
        "$.findings[2].ip",
        "$.findings[2].result",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "The body is not a JSON object."),
        ("[1, 2", "The body is not valid JSON: Expecting"),
        (NSM_HEAD + '[{"ip": "192.0.2.1"}, {"ip": ]}', "The body is not valid JSON: Expecting value"),
        (
            NSM_HEAD + '[{"ip": "192.0.2.1"}]} trailing',
            "The body is not valid JSON: Unexpected text after the document",
        ),
        (NSM_HEAD + "[]}", "The NSM report does not follow the schema nsm-report/1: 1 problem(s)."),
    ],
)
def test_nsm_report_refusals_say_why(text, message):
    with pytest.raises(SubmissionError) as error:
        split_nsm_report(text, max_bytes=10_000)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", NSM_HEAD + "[" + "[" * 100_000 + "]" * 100_000 + "]}"),
        ("application/json", '{"case": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("application/json", "[" * 100_000),
        ("application/x-ndjson", '{"template-id": "a"}\n' + "[" * 100_000 + "\n"),
    ],
)
def test_deeply_nested_json_is_bad_input_naming_the_limit(content_type, text):
    with pytest.raises(SubmissionError) as error:
        split_submission(content_type, text, 10_000)
    assert "nested too deeply (JSON deeper than about 1,000 levels)" in str(error.value) + str(error.value.problems)
