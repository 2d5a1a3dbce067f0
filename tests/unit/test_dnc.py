"""agi_campaign.dnc on SQLite and PostgreSQL (the `db` fixture runs each test on both)."""
import datetime as dt
import pathlib

import pytest

from agi_campaign import csvreader, dnc
from agi_campaign.errors import CsvImportError, NotFoundError, PhoneError
from agi_campaign.models import DncEntry

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)
KNOWN = ["global", "vip"]
DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def entries(list_name=None):
    query = DncEntry.select().order_by(DncEntry.phone)
    if list_name:
        query = query.where(DncEntry.list_name == list_name)
    return [e.phone for e in query]


def test_dnc_add_normalises_and_counts(db):
    added, already, invalid = dnc.add("global", ["(202) 555-0101", "+1 202 555 0101",
                                                 "2025550102", "nope", "555-01"],
                                      "US", NOW, "cli", known_lists=KNOWN)
    assert (added, already) == (2, 1)
    assert invalid == [("nope", "contains letters"), ("555-01", "too short")]
    assert entries() == ["+12025550101", "+12025550102"]
    assert dnc.add("global", ["202.555.0102"], "US", NOW, "cli", known_lists=KNOWN) == (0, 1, [])
    entry = DncEntry.get(DncEntry.phone == "+12025550101")
    assert entry.source == "cli" and entry.added_at == NOW.replace(tzinfo=None)


def test_dnc_unknown_list_names_the_valid_ones(db):
    for call in (lambda: dnc.add("globl", ["2025550101"], "US", NOW, "x", known_lists=KNOWN),
                 lambda: dnc.remove("globl", ["2025550101"], "US", known_lists=KNOWN),
                 lambda: dnc.import_file("globl", DATA / "dnc.csv", "US", NOW,
                                         known_lists=KNOWN)):
        with pytest.raises(NotFoundError) as err:
            call()
        assert str(err.value).startswith("Do-Not-Call list 'globl' is not configured; "
                                         "configured lists: global, vip")
    assert entries() == []


def test_dnc_remove_counts_and_invalid_removes_nothing(db):
    dnc.add("global", ["2025550101", "2025550102"], "US", NOW, "x", known_lists=KNOWN)
    dnc.add("vip", ["2025550101"], "US", NOW, "x", known_lists=KNOWN)
    with pytest.raises(PhoneError, match="'abc' is not a valid phone number"):
        dnc.remove("global", ["2025550101", "abc"], "US", known_lists=KNOWN)
    assert len(entries()) == 3
    assert dnc.remove("global", ["+1 202 555 0101", "(202) 555-0101", "2025550109"], "US",
                      known_lists=KNOWN) == (["+12025550101"], ["+12025550109"])
    assert entries("global") == ["+12025550102"] and entries("vip") == ["+12025550101"]


def test_dnc_check(db):
    dnc.add("vip", ["2025550101"], "US", NOW, "x", known_lists=KNOWN)
    dnc.add("global", ["2025550101"], "US", NOW, "x", known_lists=KNOWN)
    assert dnc.check("(202) 555-0101", "US") == ["global", "vip"]
    assert dnc.check("(202) 555-0101", "US", ["vip", "other"]) == ["vip"]
    assert dnc.check("2025550102", "US") == []
    with pytest.raises(PhoneError, match=r"'2025' is not a valid phone number \(region US\)"):
        dnc.check("2025", "US")


def test_dnc_lists_holding_many_phones(db):
    phones = ["+1202555%04d" % i for i in range(1200)]
    dnc.add("global", phones[::3], "US", NOW, "x", known_lists=KNOWN)
    found = dnc.lists_holding(phones, ["global"])
    assert sorted(found) == sorted(phones[::3]) and found[phones[3]] == ["global"]
    assert dnc.lists_holding(phones, []) == {}
    assert len(dnc.lists_holding(phones, None)) == 400
    assert dnc.Lookup(["global"]).holding(phones) == found
    assert dnc.Lookup([]).holding(phones) == {}


def test_dnc_lookup_large_lists_query_per_chunk(db, monkeypatch):
    monkeypatch.setattr(dnc, "PRELOAD_MAX", 2)
    dnc.add("global", ["2025550101", "2025550102", "2025550103"], "US", NOW, "x",
            known_lists=KNOWN)
    lookup = dnc.Lookup(["global"])
    assert lookup.preloaded is None
    assert lookup.holding(["+12025550101", "+12025550109"]) == {"+12025550101": ["global"]}


def test_dnc_import_file_sample(db):
    report = dnc.import_file("global", DATA / "dnc.csv", "US", NOW, known_lists=KNOWN)
    assert (report.rows, report.added, report.already, report.invalid) == (3, 3, 0, 0)
    assert entries() == ["+12025550103", "+12025550110", "+12025550117"]
    assert DncEntry.get().source == "file dnc.csv"


def test_dnc_import_file_counts_add_up(db, tmp_path):
    dnc.add("global", ["2025550104"], "US", NOW, "x", known_lists=KNOWN)
    path = tmp_path / "list.csv"
    path.write_bytes(b"\xef\xbb\xbf(202) 555-0101,ignored\r\n2025550102\r\n\r\n202 555 0101\r\n"
                     b"hello\r\n2025550104\r\n12\r\n")
    report = dnc.import_file("global", path, "US", NOW, known_lists=KNOWN, source="crm")
    assert (report.rows, report.added, report.already, report.invalid, report.blank) == \
        (6, 2, 2, 2, 1)
    assert report.shown == [(5, "hello", "contains letters"), (7, "12", "too short")]
    assert report.rejects_path == str(path) + ".rejects.csv"
    with open(report.rejects_path, encoding="utf-8") as fh:
        assert fh.read().splitlines() == ["line,raw,reason", "5,hello,contains letters,hello",
                                          "7,12,too short,12"]
    assert report.exit_status() == 3
    assert entries() == ["+12025550101", "+12025550102", "+12025550104"]
    assert "2 added, 2 already listed, 2 invalid" in report.summary()
    assert "line 5: 'hello': contains letters" in report.summary()


def test_dnc_import_file_header_and_encoding(db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("Telephone\n2025550101\n")
    assert dnc.import_file("vip", path, "US", NOW, known_lists=KNOWN).rows == 1
    path.write_bytes(b"2025550101\n\xff\xfe\n")
    with pytest.raises(CsvImportError, match=r"list.csv line 2 \(byte offset 11\): not UTF-8"):
        dnc.import_file("vip", path, "US", NOW, known_lists=KNOWN)


def test_dnc_import_file_stray_quote_refuses_the_file(db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text('2025550101\n"2025550102\n2025550103\n2025550104\n')
    with pytest.raises(CsvImportError, match=r'^list.csv line 2: a quoted field opens here and '
                                             r'runs on over line 3.*stray " quote'):
        dnc.import_file("global", path, "US", NOW, known_lists=KNOWN)
    assert entries() == []


def test_dnc_import_file_is_one_transaction(db, tmp_path, monkeypatch):
    monkeypatch.setattr(csvreader, "CHUNK_ROWS", 5)
    real = dnc._add_phones
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(dnc, "_add_phones", failing)
    path = tmp_path / "list.csv"
    path.write_text("\n".join("+1202555%04d" % i for i in range(12)))
    with pytest.raises(RuntimeError, match="boom"):
        dnc.import_file("global", path, "US", NOW, known_lists=KNOWN)
    assert entries() == []


def test_dnc_import_takes_the_number_whatever_the_other_columns_hold(db, tmp_path):
    """Limits on the other columns (kept with a campaign's numbers) do not apply to a list:
    a long note or a 30-column export must not keep a number off it."""
    path = tmp_path / "list.csv"
    header = ["c%d" % i for i in range(6)] + ["Phone"] + ["d%d" % i for i in range(23)]
    path.write_text(",".join(header) + "\n"
                    + ",".join(["x"] * 6 + ["2025550101"] + ["n" * 2000] + ["y"] * 22) + "\n")
    report = dnc.import_file("global", path, "US", NOW, known_lists=KNOWN)
    assert (report.rows, report.added, report.invalid) == (1, 1, 0)
    assert entries("global") == ["+12025550101"]


def test_dnc_import_dry_run_leaves_the_database_unlocked(db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("phone\n2025550101\n")
    seen = []

    def progress(*_):
        # another writer can take the write lock while the dry run reads the file
        dnc.add("vip", ["2025550199"], "US", NOW, "x", known_lists=KNOWN)
        seen.append(True)

    report = dnc.import_file("global", path, "US", NOW, known_lists=KNOWN, dry_run=True,
                             progress=progress)
    assert seen and (report.added, entries("global")) == (1, [])
