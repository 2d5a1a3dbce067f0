"""agi_campaign.importer on SQLite and PostgreSQL (the `db` fixture runs each test on both)."""
import csv
import datetime as dt
import json
import os
import pathlib
import shutil

import pytest

from agi_campaign import csvlayout, csvreader, dnc, importer
from agi_campaign.clock import to_db
from agi_campaign.errors import CsvImportError, NotFoundError
from agi_campaign.models import Campaign, DncEntry, ImportBatch, Number

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def campaign(db):
    return Campaign.create(name="c1", type="on_demand", server="main",
                           state_changed_at=to_db(NOW), created_at=to_db(NOW))


def write(tmp_path, text, name="numbers.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def run(campaign, path, dnc_lists=(), **kwargs):
    report = importer.import_csv(campaign.id, path, "US", dnc_lists, NOW, **kwargs)
    assert report.rows == report.imported + report.duplicates + report.invalid + report.dnc
    return report


def read_rejects(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def phones():
    return [n.phone for n in Number.select().order_by(Number.id)]


def us(i):
    return "+1202555%04d" % (100 + i)


# ---- the sample file ----------------------------------------------------------------------

def test_importer_sample_file_counts_add_up_with_dnc(campaign, tmp_path):
    dnc.import_file("global", DATA / "dnc.csv", "US", NOW, known_lists=["global"])
    path = shutil.copy(DATA / "numbers.csv", tmp_path / "numbers.csv")
    report = run(campaign, str(path), dnc_lists=["global"])
    assert (report.rows, report.imported, report.duplicates, report.invalid, report.dnc) == \
        (20, 15, 1, 1, 3)
    batch = ImportBatch.get_by_id(report.batch_id)
    assert (batch.rows, batch.imported, batch.duplicates, batch.invalid, batch.dnc) == \
        (20, 15, 1, 1, 3)
    assert batch.rejects_path == report.rejects_path == str(path) + ".rejects.csv"
    assert batch.finished_at == to_db(NOW) and not batch.dry_run
    rows = read_rejects(report.rejects_path)
    assert rows[0] == ["line", "raw", "reason", "phone", "first_name", "appointment"]
    assert [(r[0], r[2].split(" (")[0]) for r in rows[1:]] == [
        ("4", "on Do-Not-Call list global"), ("11", "on Do-Not-Call list global"),
        ("18", "on Do-Not-Call list global"), ("20", "duplicate of line 3"),
        ("21", "too short")]
    first = Number.get(Number.phone == "+12025550101")
    assert (first.raw, first.status, first.attempts, first.batch_id) == \
        ("+1 202-555-0101", "pending", 0, report.batch_id)
    assert first.next_attempt_at == to_db(NOW) and first.updated_at == to_db(NOW)
    assert json.loads(first.extra) == {"first_name": "Ann", "appointment": "2026-12-01 09:00"}
    assert json.loads(Number.get(Number.phone == "+12025550107").extra)["first_name"] == "Gil, Jr."
    assert Number.get(Number.phone == "+12025550108").raw == "001 202 555 0108"
    assert "15 imported" in report.summary() and report.to_dict()["dnc"] == 3


# ---- encodings and CSV syntax -------------------------------------------------------------

def test_importer_bom_and_crlf(campaign, tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfphone,name\r\n2025550101,Zo\xc3\xab\r\n2025550102,Al\r\n")
    report = run(campaign, path)
    assert report.imported == 2 and report.rejects_path is None
    assert json.loads(Number.get(Number.phone == us(1)).extra) == {"name": "Zoë"}
    assert not os.path.exists(path + ".rejects.csv")


def test_importer_quoted_fields_with_commas_and_newlines_keep_line_numbers(campaign, tmp_path):
    path = write(tmp_path, 'phone,note\n"202-555-0101","a, b"\n2025550102,"two\nlines"\n'
                           'bad,"x"\n')
    report = run(campaign, path)
    assert report.imported == 2 and report.invalid == 1
    assert json.loads(Number.get(Number.phone == us(2)).extra) == {"note": "two\nlines"}
    assert read_rejects(report.rejects_path)[1][:3] == ["5", "bad", "contains letters"]


def test_importer_stray_quote_refuses_the_file_naming_the_line(campaign, tmp_path):
    """A field opened by a stray " ran to the end of the file and hid three rows in it: the
    import said "2 rows: 2 imported" and rejected nothing."""
    path = write(tmp_path, 'phone,name\n%s,Ann\n%s,"Smith\n%s,Lee\n%s,Kim\n%s,Bo\n'
                 % (us(0), us(1), us(2), us(3), us(4)))
    with pytest.raises(CsvImportError) as err:
        run(campaign, path)
    assert str(err.value) == (
        "numbers.csv line 3: a quoted field opens here and runs on over line 4, which looks "
        "like a row of its own ('+12025550102,Lee'); check line 3 for a stray \" quote (a "
        "quote inside a field is written \"\"), fix it and import again")
    assert Number.select().count() == 0 and ImportBatch.select().count() == 0
    assert [p for p in os.listdir(tmp_path) if "rejects" in p] == []


@pytest.mark.parametrize("text, opened, message", [
    ('phone,name\n+12025550101,"Smith\n+12025550102,Jones\n+12025550103,"Lee"\n'
     '+12025550104,Kim\n', 2, "runs on over line 3, which looks like a row of its own "
                               "('+12025550102,Jones')"),
    ('phone,note\n2025550101,ok\n2025550102,"call back\nafter 5\n', 3,
     "is never closed (it runs to the end of the file, line 4)"),
    ('2025550101,Ann\n2025550102,"Smith', 2, "is never closed (it runs to the end of the "
                                             "file, line 2)"),
    ('"2025550101\n2025550102\n2025550103\n', 1, "runs on over line 2, which looks like a "
                                                  "row of its own ('2025550102')"),
    ('phone,a,b\n2025550101,"x\ny",ok\n2025550102,"z""",Smith"\n2025550103,"Lee\n'
     '(202) 555-0103,q\n', 5,
     "runs on over line 6, which looks like a row of its own ('(202) 555-0103,q')"),
], ids=["closed-rows-later", "never-closed", "never-closed-last-line", "headerless-first-row",
        "second-multiline-record"])
def test_importer_stray_quote_variants_refused(campaign, tmp_path, text, opened, message):
    path = write(tmp_path, text)
    with pytest.raises(CsvImportError) as err:
        run(campaign, path)
    assert str(err.value).startswith("numbers.csv line %d: a quoted field opens here and %s; "
                                     "check line %d for a stray \" quote" % (opened, message,
                                                                             opened))
    assert Number.select().count() == 0 and ImportBatch.select().count() == 0


def test_importer_multiline_field_without_phone_numbers_is_allowed_and_lines_counted(
        campaign, tmp_path):
    path = write(tmp_path, 'phone,address\r\n2025550101,"12 Main St\r\nApt 4\r\nSpringfield, '
                           'IL 62704"\r\n\r\n2025550102,"PO Box 7, ""B"""\r\n2025550103,x')
    report = run(campaign, path)
    assert (report.rows, report.imported, report.blank, report.lines) == (3, 3, 1, 7)
    assert json.loads(Number.get(Number.phone == us(1)).extra) == {
        "address": "12 Main St\r\nApt 4\r\nSpringfield, IL 62704"}
    assert report.summary() == ("numbers.csv: 3 rows: 3 imported, 0 duplicates, 0 invalid, 0 on "
                                "Do-Not-Call lists; 7 lines read; 1 blank lines skipped\n"
                                "read as: UTF-8, comma-separated, header on line 1, phone "
                                "column: 'phone' (column 1)")


def test_csvreader_count_lines():
    assert [csvreader.count_lines(t) for t in ("", "a", "a\n", "a\r\nb", "a\rb\r", "\n\n")] == \
        [0, 1, 1, 2, 2, 2]


def test_importer_non_utf8_names_line_offset_and_fix(campaign, tmp_path):
    path = write(tmp_path, b"phone,name\n2025550101,Ann\n2025550102,Jos\xe9\n")
    with pytest.raises(CsvImportError) as err:
        run(campaign, path)
    assert str(err.value) == (
        "numbers.csv line 3 (byte offset 40): not UTF-8 (byte 0xe9); if Excel on Windows saved "
        "it (\"CSV (Comma delimited)\"), import again with --encoding cp1252 (read so, the line "
        "is '2025550102,José'), else name the file's encoding with --encoding (e.g. latin-1), or "
        "save it as CSV UTF-8")
    assert Number.select().count() == 0 and ImportBatch.select().count() == 0
    report = run(campaign, path, encoding="cp1252")
    assert (report.rows, report.imported, report.read_as[:7]) == (2, 2, "cp1252,")
    assert json.loads(Number.get(Number.phone == us(2)).extra) == {"name": "José"}


def test_importer_binary_data_is_refused(campaign, tmp_path):
    path = write(tmp_path, b"phone\n2025550101\n\x89PNG\x00\x00\x1a")
    with pytest.raises(CsvImportError, match=r"line 3 .*NUL byte.*binary"):
        run(campaign, path)
    assert ImportBatch.select().count() == 0
    path = write(tmp_path, "phone\tname\n2025550101\tJosé\n".encode("utf-16"), name="u16.csv")
    report = run(campaign, path)        # Excel's "Unicode Text": UTF-16 with a BOM, tabs
    assert (report.rows, report.imported) == (1, 1)
    assert report.read_as.startswith("UTF-16, tab-separated")
    assert json.loads(Number.get(Number.phone == us(1)).extra) == {"name": "José"}


def test_importer_missing_file_and_unknown_campaign(campaign, tmp_path):
    with pytest.raises(CsvImportError, match="cannot read"):
        run(campaign, str(tmp_path / "nope.csv"))
    path = write(tmp_path, "2025550101\n")
    with pytest.raises(NotFoundError, match="campaign id 999"):
        importer.import_csv(999, path, "US", (), NOW)


# ---- header and phone column --------------------------------------------------------------

def test_importer_header_detected_when_first_cell_has_letters(campaign, tmp_path):
    report = run(campaign, write(tmp_path, "Mobile Number,Name\n2025550101,Ann\n"))
    assert (report.rows, report.imported) == (1, 1)
    assert json.loads(Number.get().extra) == {"Name": "Ann"}


def test_importer_no_header_first_row_is_data_with_positional_names(campaign, tmp_path):
    report = run(campaign, write(tmp_path, "2025550101,Ann,x\n12,Bob,y\n"))
    assert (report.rows, report.imported, report.invalid) == (2, 1, 1)
    assert json.loads(Number.get().extra) == {"col2": "Ann", "col3": "x"}
    assert read_rejects(report.rejects_path)[0] == ["line", "raw", "reason"]


def test_importer_first_row_without_letters_is_data_not_header(campaign, tmp_path):
    report = run(campaign, write(tmp_path, "12,34\n2025550101,Ann\n"))
    assert (report.rows, report.imported, report.invalid) == (2, 1, 1)


def test_importer_phone_column_by_header_name(campaign, tmp_path):
    path = write(tmp_path, "id,Name,MSISDN\n7,Ann,202-555-0101\n")
    assert run(campaign, path).imported == 1       # a known header name is found by itself
    Number.delete().execute()
    path = write(tmp_path, "id,Name,Cell\n7,Ann,202-555-0101\n8,Bob,2025550102\n", "b.csv")
    report = run(campaign, path, phone_column="cell")
    assert report.imported == 2
    assert json.loads(Number.get(Number.phone == us(1)).extra) == {"id": "7", "Name": "Ann"}


def test_importer_unknown_phone_column_lists_headers(campaign, tmp_path):
    path = write(tmp_path, "id,Name,Cell\n7,Ann,202-555-0101\n")
    with pytest.raises(CsvImportError) as err:
        run(campaign, path, phone_column="mobile")
    assert str(err.value) == ("numbers.csv: --phone-column mobile: no column named 'mobile'; "
                              "the first row has: id, Name, Cell (or give a column number, "
                              "counting from 1)")


def test_importer_rows_with_more_or_fewer_fields_than_header(campaign, tmp_path):
    path = write(tmp_path, "phone,a,b\n2025550101,1\n2025550102,1,2,,\n2025550103,Smith, J,2\n")
    report = run(campaign, path)
    assert (report.imported, report.invalid) == (2, 1)
    assert json.loads(Number.get(Number.phone == us(1)).extra) == {"a": "1", "b": ""}
    assert "4 fields but the header has 3" in read_rejects(report.rejects_path)[1][2]


def test_importer_wide_file_keeps_the_first_20_other_columns(campaign, tmp_path):
    path = write(tmp_path, ",".join("c%d" % i for i in range(6)) + ",phone,"
                 + ",".join("c%d" % i for i in range(6, 29)) + "\n"
                 + ",".join("v%d" % i for i in range(6)) + ",2025550101,"
                 + ",".join("v%d" % i for i in range(6, 29)) + "\n")
    report = run(campaign, path)
    assert (report.rows, report.imported) == (1, 1)
    assert json.loads(Number.get().extra) == {"c%d" % i: "v%d" % i for i in range(20)}
    assert report.read_as.endswith("phone column: 'phone' (column 7); 9 more columns not kept "
                                   "(at most 20 are stored)")
    with pytest.raises(CsvImportError, match="column name 'Name' appears twice; rename one"):
        run(campaign, write(tmp_path, "phone,name,Name\n", "d.csv"))


# ---- every row accounted for ---------------------------------------------------------------

def test_importer_duplicates_in_file_and_against_campaign(campaign, tmp_path):
    first = run(campaign, write(tmp_path, "phone\n2025550101\n(202) 555-0101\n+12025550102\n"))
    assert (first.imported, first.duplicates) == (2, 1)
    second = run(campaign, write(tmp_path, "phone\n+1 202 555 0102\n2025550103\n", "b.csv"))
    assert (second.imported, second.duplicates) == (1, 1)
    reasons = [r[2] for r in read_rejects(second.rejects_path)[1:]]
    assert reasons == ["already in the campaign (+12025550102)"]
    assert sorted(phones()) == [us(1), us(2), us(3)]


def test_importer_dnc_checked_on_normalised_number(campaign, tmp_path):
    dnc.add("global", ["+1 202 555 0102"], "US", NOW, "test", known_lists=["global", "other"])
    dnc.add("other", ["2025550103"], "US", NOW, "test", known_lists=["global", "other"])
    path = write(tmp_path, "phone\n2025550101\n(202) 555-0102\n202.555.0103\n")
    report = run(campaign, path, dnc_lists=["global"])
    assert (report.imported, report.dnc) == (2, 1)
    assert phones() == [us(1), us(3)]


def test_importer_invalid_reasons_with_line_numbers(campaign, tmp_path):
    path = write(tmp_path, "phone,n\n2025550101,a\n\nabc,b\n555-01,c\n+44 20 7946 0000x,d\n"
                           "202/555/0104,e\n,f\n")
    report = run(campaign, path)
    assert (report.rows, report.imported, report.invalid, report.blank) == (6, 1, 5, 1)
    rows = read_rejects(report.rejects_path)
    assert [(r[0], r[2]) for r in rows[1:]] == [
        ("4", "contains letters"), ("5", "too short"), ("6", "contains letters"),
        ("7", "contains '/'"), ("8", "empty")]


def test_importer_huge_field_and_long_record_are_rejected_not_fatal(campaign, tmp_path):
    huge = "x" * 2_000_000
    long_record = ",".join(["y" * 150] * 70)
    path = write(tmp_path, 'phone,a\n2025550101,ok\n2025550102,"%s"\n2025550103,%s\n'
                           '2025550104,%s\n"%s",z\n2025550105,ok\n'
                           % (huge, "v" * 1001, long_record, "9" * 5000))
    report = run(campaign, path)
    assert (report.rows, report.imported, report.invalid) == (6, 2, 4)
    rows = read_rejects(report.rejects_path)
    assert [r[2] for r in rows[1:]] == [
        "field 2 longer than 1000 characters", "field 2 longer than 1000 characters",
        "record longer than 10000 characters", "field 1 longer than 1000 characters"]
    assert all(len(cell) <= 1000 for row in rows for cell in row)


def test_importer_many_columns_without_header_keep_the_first_20(campaign, tmp_path):
    path = write(tmp_path, "2025550101," + ",".join("x%d" % i for i in range(25)) + "\n"
                 "2025550102," + ",".join(["y"] * 20) + "\n")
    report = run(campaign, path)
    assert (report.imported, report.invalid) == (2, 0)
    extra = json.loads(Number.get(Number.phone == us(1)).extra)
    assert extra == {"col%d" % (i + 2): "x%d" % i for i in range(20)}


def test_importer_formula_injection_kept_as_data_neutralised_in_rejects(campaign, tmp_path):
    path = write(tmp_path, 'phone,name,note\n2025550101,"=HYPERLINK(""http://x"")",@SUM(1)\n'
                           '2025550101,=1+2,-3\nbad,+cmd,"=2"\n')
    report = run(campaign, path)
    assert json.loads(Number.get().extra) == {"name": '=HYPERLINK("http://x")', "note": "@SUM(1)"}
    rows = read_rejects(report.rejects_path)
    assert rows[1][3:] == ["2025550101", "'=1+2", "'-3"]
    assert rows[2][3:] == ["bad", "'+cmd", "'=2"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_importer_counts_add_up_on_a_mixed_file(campaign, tmp_path):
    dnc.add("global", [us(i) for i in range(0, 300, 7)], "US", NOW, "t", known_lists=["global"])
    lines = ["phone,k"]
    for i in range(3000):
        choice = i % 5
        raw = {0: us(i % 400), 1: "(202) 555-%04d" % (100 + i % 350), 2: "12%d" % i,
               3: "x%d" % i, 4: "+1 202 555 %04d" % (100 + i % 900)}[choice]
        lines.append("%s,%d" % (raw, i))
    report = run(campaign, write(tmp_path, "\n".join(lines) + "\n"), dnc_lists=["global"])
    assert report.rows == 3000
    assert report.imported == Number.select().count() == len(set(phones()))
    assert report.dnc > 0 and report.duplicates > 0 and report.invalid == 1200
    assert len(read_rejects(report.rejects_path)) - 1 == 3000 - report.imported
    assert not set(phones()) & {e.phone for e in DncEntry.select()}


def test_importer_many_rows_cross_insert_chunks(campaign, tmp_path):
    count = 2 * importer.INSERT_ROWS + 345
    lines = ["+1212555%04d,%d" % (i, i) for i in range(count)]
    report = run(campaign, write(tmp_path, "phone,i\n" + "\n".join(lines)))
    assert report.imported == count == Number.select().count()
    row = Number.get(Number.phone == "+12125551234")
    assert (json.loads(row.extra), row.status, row.batch_id) == ({"i": "1234"}, "pending",
                                                                  report.batch_id)
    assert row.next_attempt_at == to_db(NOW)


@pytest.mark.parametrize("threads", [1, 2], ids=["fork", "spawn"])
def test_importer_worker_pool_gives_the_same_result(campaign, tmp_path, monkeypatch, threads):
    """With other threads running the pool is spawned, else forked: both must agree."""
    monkeypatch.setattr(csvreader.threading, "active_count", lambda: threads)
    monkeypatch.setattr(csvreader, "CHUNK_ROWS", 40)
    lines = ["phone"] + [us(i % 50) if i % 3 else "bad%d" % i for i in range(300)]
    report = run(campaign, write(tmp_path, "\n".join(lines)), workers=2)
    assert (report.rows, report.imported, report.duplicates, report.invalid) == (300, 50, 150, 100)
    assert sorted(phones()) == sorted({us(i % 50) for i in range(300) if i % 3})


# ---- transactions, dry run, progress -------------------------------------------------------

def test_importer_dry_run_writes_nothing(campaign, tmp_path):
    path = str(shutil.copy(DATA / "numbers.csv", tmp_path / "numbers.csv"))
    report = run(campaign, path, dry_run=True)
    assert (report.rows, report.imported, report.duplicates, report.invalid) == (20, 18, 1, 1)
    assert report.dry_run and report.batch_id is None and report.rejects_path is None
    assert Number.select().count() == 0 and ImportBatch.select().count() == 0
    assert [p for p in os.listdir(tmp_path) if p.startswith(".") or "rejects" in p] == []
    assert "dry run" in report.summary()


def test_importer_exception_mid_import_leaves_nothing(campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(csvreader, "CHUNK_ROWS", 10)
    monkeypatch.setattr(csvlayout, "PROGRESS_EVERY_S", 0)
    monkeypatch.setattr(importer, "INSERT_ROWS", 7)
    path = write(tmp_path, "phone\n" + "\n".join(us(i) for i in range(120)) + "\nbad\n")
    calls = []

    def progress(rows, done, total):
        calls.append(rows)
        if rows >= 100:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        run(campaign, path, progress=progress)
    assert calls == list(range(10, 101, 10))
    assert Number.select().count() == 0 and ImportBatch.select().count() == 0
    assert [p for p in os.listdir(tmp_path) if "rejects" in p] == []


def test_importer_progress_reports_rows_and_bytes(campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(csvreader, "CHUNK_ROWS", 10)
    monkeypatch.setattr(csvlayout, "PROGRESS_EVERY_S", 0)
    path = write(tmp_path, "phone\n" + "\n".join(us(i) for i in range(120)) + "\n")
    calls = []
    run(campaign, path, progress=lambda *a: calls.append(a))
    size = os.path.getsize(path)
    assert [c[0] for c in calls] == list(range(10, 121, 10))
    assert all(c[2] == size for c in calls) and calls[-1][1] == size
    assert 0 < calls[0][1] < calls[5][1] < size


def test_importer_rejects_path_given_and_unwritable(campaign, tmp_path):
    path = write(tmp_path, "phone\nbad\n")
    target = tmp_path / "out" / "r.csv"
    target.parent.mkdir()
    assert run(campaign, path, rejects_path=str(target)).rejects_path == str(target)
    with pytest.raises(CsvImportError, match="cannot write the rejects file"):
        run(campaign, path, rejects_path=str(tmp_path / "missing" / "r.csv"))


def test_importer_blank_lines_are_skipped_and_counted(campaign, tmp_path):
    report = run(campaign, write(tmp_path, "\n\nphone,a\n\n2025550101,x\n,\n \n2025550102,y\n"))
    assert (report.rows, report.imported, report.blank) == (2, 2, 5)
    assert "5 blank lines skipped" in report.summary()


def test_importer_empty_and_header_only_files(campaign, tmp_path):
    assert run(campaign, write(tmp_path, "")).rows == 0
    report = run(campaign, write(tmp_path, "phone,name\r\n", "h.csv"))
    assert (report.rows, report.rejects_path) == (0, None)
    assert ImportBatch.select().count() == 2


def test_importer_dnc_import_file_with_worker_pool(db, tmp_path):
    path = write(tmp_path, "\n".join([us(i % 40) for i in range(100)] + ["bad"]), "d.csv")
    report = dnc.import_file("global", path, "US", NOW, known_lists=["global"], workers=2)
    assert (report.rows, report.added, report.already, report.invalid) == (101, 40, 60, 1)


def test_importer_countries_reject_other_countries_with_the_reason(campaign, tmp_path):
    path = write(tmp_path, "phone\n2025550101\n+44 20 7946 0000\n+1 416 555 0123\n"
                           "+33 1 42 68 53 00\n")
    report = run(campaign, path, countries=("US", "CA"))
    assert (report.rows, report.imported, report.invalid) == (4, 2, 2)
    assert sorted(n.phone for n in Number.select()) == ["+12025550101", "+14165550123"]
    assert [row[2] for row in read_rejects(report.rejects_path)[1:]] == [
        "country GB is not allowed in this campaign (countries: US, CA)",
        "country FR is not allowed in this campaign (countries: US, CA)"]
    assert report.exit_status() == 3
