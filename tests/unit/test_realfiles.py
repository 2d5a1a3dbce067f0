"""`numbers import` and `dnc import` on files made the way real tools write them
(tests/unit/realfiles.py), through the real CLI in-process on a temporary SQLite config.

For every file: the exit status, the exact accounting of the summary line (rows = imported +
duplicates + invalid + DNC), the numbers actually stored, the rejects file, --dry-run (no
database created, same status), and that `dnc import` takes exactly the numbers `numbers
import` takes (a DNC file that would import as a call list can never be silently dropped).
"""
import codecs
import csv
import io
import re

import phonenumbers
import pytest

from agi_campaign.cli import main
from agi_campaign.db import database
from agi_campaign.models import DncEntry, Number, open_database

from tests.unit import realfiles
from tests.unit.support import close_database

CONFIG = """\
database:
  url: "sqlite:///%(db)s"
servers:
  main:
    ami: {username: u, secret: s}
    dial_template: "Local/{number}@callees"
dnc_lists:
  global: {}
campaigns:
  c1:
    caller_id: "12025550100"
    type: on_demand
    region: %(region)s
    dnc_lists: [global]
    on_connect: {type: message, sounds: [hello-world]}
"""

NUMBERS_SUMMARY = re.compile(
    r"(?P<file>.+?): (?P<rows>\d+) rows?: (?P<imported>\d+) imported, (?P<duplicates>\d+) "
    r"duplicates?, (?P<invalid>\d+) invalid, (?P<dnc>\d+) on Do-Not-Call lists?")
DNC_SUMMARY = re.compile(
    r"(?P<file>.+?) -> Do-Not-Call list (?P<list>\S+): (?P<rows>\d+) rows?: (?P<added>\d+) "
    r"added, (?P<already>\d+) already listed, (?P<invalid>\d+) invalid")

LAYOUTS = sorted(realfiles.LAYOUTS)
READABLE = [n for n in LAYOUTS if not realfiles.LAYOUTS[n]()[1].error]
REFUSED = [n for n in LAYOUTS if realfiles.LAYOUTS[n]()[1].error]
CP1252 = [n for n in LAYOUTS if "cp1252" in realfiles.LAYOUTS[n]()[1].args]
COMMANDS = ("numbers", "dnc")


# ---- the workspace: the file, a config, the CLI, what the database holds -------------------

class Workspace:
    """`name`'s file and a one-campaign config ("c1", the file's region, DNC list "global")
    on its own SQLite file in `folder`; `run()` calls the CLI and returns (status, out, err)."""

    def __init__(self, folder, name, capsys):
        self.data, self.expected = realfiles.LAYOUTS[name]()
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / (name + ".csv")
        self.file.write_bytes(self.data)
        self.db = folder / "t.db"
        self.config = folder / "config.yaml"
        self.config.write_text(CONFIG % {"db": self.db, "region": self.expected.region})
        self.capsys = capsys

    def run(self, *argv):
        try:
            status = main(["--config", str(self.config)] + list(argv))
        except SystemExit as exc:       # an argparse error (an option not there yet)
            status = exc.code
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return status, out, err

    def importing(self, command, *extra, args=True):
        """Run `numbers import c1 FILE` or `dnc import global FILE` with the file's `args`."""
        argv = (["numbers", "import", "c1"] if command == "numbers"
                else ["dnc", "import", "global"]) + [str(self.file)]
        if args:
            argv += self.expected.args + (self.expected.dnc_args if command == "dnc" else ())
        return self.run(*argv, *extra)

    def stored(self):
        """({E.164: status} of the campaign's numbers, {E.164} on list "global"), read with
        peewee after the command; None when no database file exists."""
        if not self.db.exists():
            return None
        close_bound()
        db = open_database("sqlite:///%s" % self.db, create=False)
        try:
            numbers = dict(Number.select(Number.phone, Number.status).tuples())
            listed = {p for (p,) in DncEntry.select(DncEntry.phone)
                      .where(DncEntry.list_name == "global").tuples()}
        finally:
            close_database(db)
        return numbers, listed

    def rejects(self):
        """{line: raw} of the rejects file (the CLI's default path), or None when absent."""
        path = self.file.parent / (self.file.name + ".rejects.csv")
        if not path.exists():
            return None
        data = path.read_bytes()
        for codec in ("utf-8-sig", "utf-16", "cp1252"):
            try:
                text = data.decode(codec)
                break
            except UnicodeDecodeError:
                continue
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows and rows[0][:3] == ["line", "raw", "reason"], rows[:1]
        return {int(r[0]): _plain(r[1]) for r in rows[1:] if r}


def _plain(cell):
    """A rejects cell without the leading ' that keeps formula-like text as text."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@") else cell


def close_bound():
    """Close the connection the CLI left bound to agi_campaign.db.database, if any."""
    if database.obj is not None:
        close_database(database)


@pytest.fixture
def workspace(tmp_path, capsys):
    made = []

    def make(name, sub="a"):
        made.append(Workspace(tmp_path / sub, name, capsys))
        return made[-1]
    yield make
    close_bound()


def summary(out, pattern, path):
    """The first line of `out` parsed by `pattern`, as ints; its file is `path`."""
    first = out.splitlines()[0] if out else ""
    match = pattern.match(first)
    assert match, "no summary line in %r" % out
    assert match.group("file").endswith(path.name), first
    return {k: int(v) for k, v in match.groupdict().items() if v.isdigit()}


def expected_dnc(exp):
    """What `dnc import` into an empty list must count: the rows `numbers import` imports or
    finds on a DNC list are added, its duplicates are already listed."""
    return {"rows": exp.rows, "added": exp.imported + exp.dnc, "already": exp.duplicates,
            "invalid": exp.invalid}


def check_rejects(ws):
    """The rejects file holds every invalid row (line and raw phone); any other line in it is
    a duplicate or DNC row. No file is fine when nothing was invalid."""
    found, exp = ws.rejects(), ws.expected
    invalid = exp.invalid_lines()
    if found is None:
        assert not invalid, "no rejects file, but lines %s are invalid" % sorted(invalid)
        return
    assert set(found) >= set(invalid), (sorted(found), sorted(invalid))
    assert set(found) <= set(invalid) | exp.other_lines(), sorted(found)
    assert {n: found[n] for n in invalid} == {
        n: raw if raw is not None else found[n] for n, raw in invalid.items()}


def check_read_as(out, exp):
    """The second line says how the file was read, naming the phone column's number."""
    if not exp.rows:
        return
    lines = [line for line in out.splitlines() if line.strip().startswith("read as:")]
    assert lines, "no 'read as:' line in %r" % out
    if exp.phone_column:
        assert re.search(r"column %d\b" % exp.phone_column, lines[0]), lines[0]


# ---- the files themselves agree with phonenumbers and with Python's csv module -------------

@pytest.mark.parametrize("name", LAYOUTS)
def test_realfiles_rows_agree_with_phonenumbers_and_csv(name):
    data, exp = realfiles.LAYOUTS[name]()
    for line, (kind, raw, e164) in exp.lines.items():
        try:
            number = phonenumbers.parse(raw, exp.region)
            valid = phonenumbers.is_valid_number(number)
        except phonenumbers.NumberParseException:
            valid = False
        assert valid == (kind != "bad"), (line, raw)
        if valid:
            assert phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164) == e164, (line, raw)
    if exp.error:
        return
    text = data.decode(exp.encoding)
    assert not text.startswith(codecs.BOM_UTF8.decode("utf-8"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=exp.delimiter, strict=True)
    starts, end = [], 0
    for cells in reader:
        if any(c.strip() for c in cells):
            starts.append(end + 1)
        end = reader.line_num
    assert starts[1 if exp.header else 0:] == sorted(exp.lines)


# ---- numbers import and dnc import: status, accounting, stored numbers, rejects ------------

@pytest.mark.parametrize("name", READABLE)
def test_realfiles_numbers_import_accounts_for_every_row(workspace, name):
    ws = workspace(name)
    exp = ws.expected
    if exp.dnc_seed:
        status, _, err = ws.run("dnc", "add", "global", *sorted(exp.dnc_seed))
        assert status == 0, err
    status, out, err = ws.importing("numbers")
    assert status == exp.exit, (status, out, err)
    counts = summary(out, NUMBERS_SUMMARY, ws.file)
    assert counts == {"rows": exp.rows, "imported": exp.imported, "duplicates": exp.duplicates,
                      "invalid": exp.invalid, "dnc": exp.dnc}
    assert counts["rows"] == sum(counts[k] for k in ("imported", "duplicates", "invalid", "dnc"))
    check_read_as(out, exp)
    stored = ws.stored()
    numbers = stored[0] if stored else {}
    assert {p for p, s in numbers.items() if s == "pending"} == exp.numbers
    assert set(numbers) <= exp.numbers | exp.dnc_seed
    check_rejects(ws)


@pytest.mark.parametrize("name", READABLE)
def test_realfiles_dnc_import_accounts_for_every_row(workspace, name):
    ws = workspace(name)
    exp = ws.expected
    status, out, err = ws.importing("dnc")
    want = expected_dnc(exp)
    assert status == realfiles.exit_status(exp.rows, exp.invalid) == exp.exit, (out, err)
    counts = summary(out, DNC_SUMMARY, ws.file)
    assert counts == want
    assert counts["rows"] == counts["added"] + counts["already"] + counts["invalid"]
    check_read_as(out, exp)
    stored = ws.stored()
    assert (stored[1] if stored else set()) == exp.numbers | exp.dnc_seed
    check_rejects(ws)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", READABLE)
def test_realfiles_dry_run_creates_no_database_and_exits_alike(workspace, name, command):
    ws = workspace(name)
    exp = ws.expected
    status, out, err = ws.importing(command, "--dry-run")
    assert status == exp.exit, (status, out, err)
    assert not ws.db.exists(), "--dry-run created %s" % ws.db
    assert not list(ws.file.parent.glob("*.rejects.csv"))
    if command == "numbers":
        assert summary(out, NUMBERS_SUMMARY, ws.file) == {
            "rows": exp.rows, "imported": exp.imported + exp.dnc,
            "duplicates": exp.duplicates, "invalid": exp.invalid, "dnc": 0}
    else:
        assert summary(out, DNC_SUMMARY, ws.file) == expected_dnc(exp)
    for line in exp.invalid_lines():
        assert re.search(r"\bline %d\b" % line, out), "reject of line %d not shown" % line


def test_realfiles_dnc_import_of_two_number_columns_is_refused_naming_both(workspace):
    ws = workspace("crm_export")
    status, out, err = ws.run("dnc", "import", "global", str(ws.file))
    assert status == 2 and out == "", (out, err)
    assert ("several columns hold phone numbers ('Mobile Phone' (column 7), 'Fax Number' "
            "(column 13))") in err and "--phone-column 7 and then --phone-column 13" in err
    assert ws.stored() in (None, ({}, set()))


# ---- files refused as a whole: exit 2, the file, the line and the fix named ----------------

@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", REFUSED)
def test_realfiles_refused_file_exits_2_naming_the_line(workspace, name, command):
    ws = workspace(name)
    status, out, err = ws.importing(command)
    assert status == 2 and out == "", (status, out, err)
    assert err.startswith("agi-campaign: error: ") and err.count("\n") == 1, err
    assert ws.file.name in err
    for text in ws.expected.error:
        assert text in err
    stored = ws.stored()
    assert not stored or stored == ({}, set())


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", CP1252)
def test_realfiles_cp1252_without_encoding_exits_2_suggesting_it(workspace, name, command):
    ws = workspace(name)
    try:
        ws.data.decode("utf-8")
        raise AssertionError("the file is valid UTF-8")
    except UnicodeDecodeError as bad:
        line = ws.data.count(b"\n", 0, bad.start) + 1
    status, out, err = ws.importing(command, args=False)
    assert status == 2, (status, out, err)
    assert ws.file.name in err and re.search(r"\bline %d\b" % line, err), err
    assert "--encoding" in err and "cp1252" in err, err
    stored = ws.stored()
    assert not stored or stored == ({}, set())


@pytest.mark.parametrize("command", COMMANDS)
def test_realfiles_dnc_registry_needs_phone_column_1_plus_2(workspace, command):
    ws = workspace("dnc_registry")
    status, out, err = ws.importing(command, args=False)
    assert status == 2, (status, out, err)
    assert ws.file.name in err and "--phone-column 1+2" in err, err
    status, out, err = ws.importing(command)
    assert status == 0, (status, out, err)
    stored = ws.stored()
    got = set(stored[0]) if command == "numbers" else stored[1]
    assert got == ws.expected.numbers and len(got) == 7


# ---- a DNC file with any layout `numbers import` accepts is imported completely -------------

@pytest.mark.parametrize("name", LAYOUTS)
def test_realfiles_dnc_import_takes_every_number_numbers_import_takes(workspace, name):
    calls, lists = workspace(name, "numbers"), workspace(name, "dnc")
    status_n, out_n, err_n = calls.importing("numbers")
    status_d, out_d, err_d = lists.importing("dnc")
    assert status_n == status_d, (out_n + err_n, out_d + err_d)
    taken = set((calls.stored() or ({}, set()))[0])
    listed = (lists.stored() or ({}, set()))[1]
    assert listed == taken
    assert taken == (set() if calls.expected.error
                     else calls.expected.numbers | calls.expected.dnc_seed)
