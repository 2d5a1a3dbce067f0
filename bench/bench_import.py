"""Benchmark 3: CSV import of 1,000,000 rows (phone + two extra columns).

Ours: agi_campaign.importer.import_csv into a fresh SQLite database (normalisation and
validation of every number, duplicates, JSON extras, one transaction).
Baseline: the sqlite3 command-line shell's `.import --csv --skip 1` of the same file into a
bare table of three TEXT columns (no parsing of numbers, no index): the floor for getting the
bytes into SQLite on this machine. Run before and after ours; the better run counts.
Exactness (untimed, after the import): every row's fate in the database - imported with
which E.164, or not imported - is the one plain phonenumbers gives (parse, is_valid_number,
format E164; a later row with an E.164 already seen is a duplicate), computed in two
processes; one row that differs fails the benchmark. The file's phone cells are distinct, so
a row is found in the database by its raw text.
"""
import multiprocessing
import os
import shutil
import subprocess
import threading
import time

from common import fresh_campaign, main_for, row  # noqa: E402

import phonenumbers

from agi_campaign.models import Number

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))
AREAS = ("202", "212", "303", "415", "312", "617", "713", "206", "305", "404", "503", "602")
EXCHANGES = [e for e in range(201, 1000) if e % 100 != 11 and e != 555]


def phone(i):
    area = AREAS[i % len(AREAS)]
    rest = i // len(AREAS)
    exch = EXCHANGES[rest % len(EXCHANGES)]
    line = rest // len(EXCHANGES)
    return "(%s) %03d-%04d" % (area, exch, line)


def write_csv(path, n):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,city\n")
        for i in range(n):
            fh.write("%s,Name%d,City%d\n" % (phone(i), i, i % 997))


def ensure_sqlite3():
    """The baseline needs Debian's sqlite3 shell: installed with apt-get when missing."""
    if shutil.which("sqlite3"):
        return
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "sqlite3"]):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit("bench_import: the sqlite3 shell is missing and `%s` failed: %s; "
                             "install it (apt-get install sqlite3) and run again"
                             % (" ".join(cmd), done.stderr.strip()[-300:]))


def bare_import(workdir, csv_path):
    db = os.path.join(workdir, "bare.db")
    if os.path.exists(db):
        os.unlink(db)
    began = time.monotonic()
    subprocess.run(["sqlite3", db, "CREATE TABLE t(phone TEXT, first_name TEXT, city TEXT);",
                    ".import --csv --skip 1 %s t" % csv_path], check=True)
    return time.monotonic() - began


def ours(workdir, csv_path):
    camp, now = fresh_campaign(os.path.join(workdir, "ours.db"), "imp", "ready")
    began = time.monotonic()
    report = importer_run(camp.id, csv_path, now)
    took = time.monotonic() - began
    assert Number.select().count() == report.imported
    return took, report


def reference(raw, region="US"):
    """Plain phonenumbers (with phone's one pre-step, a leading 00 read as +): E.164 or None."""
    text = raw.strip(" \t")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _references(raws):
    return [reference(raw) for raw in raws]


def exactness(raws):
    """Rows whose fate in the database differs from phonenumbers': (count, first examples)."""
    stored = dict(Number.select(Number.raw, Number.phone).tuples())
    method = "fork" if threading.active_count() == 1 else "spawn"
    step = 20_000
    with multiprocessing.get_context(method).Pool(2) as pool:
        expected = [e164 for part in pool.imap(_references, (
            raws[i:i + step] for i in range(0, len(raws), step))) for e164 in part]
    seen, wrong = set(), []
    for raw, e164 in zip(raws, expected):
        want = None if e164 is None or e164 in seen else e164
        seen.add(e164)
        if stored.get(raw) != want:
            wrong.append("%r: phonenumbers %s, ours %s" % (raw, want, stored.get(raw)))
    return len(wrong), wrong[:3]


def importer_run(campaign_id, csv_path, now):
    from agi_campaign import importer
    return importer.import_csv(campaign_id, csv_path, "US", (), now)


def run(workdir):
    ensure_sqlite3()
    csv_path = os.path.join(workdir, "numbers.csv")
    write_csv(csv_path, ROWS)
    base1 = bare_import(workdir, csv_path)
    took, report = ours(workdir, csv_path)
    base2 = bare_import(workdir, csv_path)
    base = min(base1, base2)
    checked = time.monotonic()
    differ, examples = exactness([phone(i) for i in range(ROWS)])
    checked = time.monotonic() - checked
    note = ("%d rows, %.0f MB; %.0f rows/s; %s; bare runs %.2f s and %.2f s" % (
        ROWS, os.path.getsize(csv_path) / 1e6, ROWS / took,
        "%d imported, %d invalid, %d duplicates" % (
            report.imported, report.invalid, report.duplicates), base1, base2))
    ratio = took / base
    return [row("3 CSV import", "1M-row import time vs sqlite3 .import", took, base, "s",
                "< 15 s and <= 10x", took < 15 and ratio <= 10 and differ == 0, ratio=ratio,
                note=note),
            row("3 CSV import", "rows whose fate differs from phonenumbers'", differ, ROWS,
                "rows", "0", differ == 0,
                note="every row checked (in %.0f s): imported with the E.164 phonenumbers "
                     "gives, or rejected/duplicate when it does%s" % (
                         checked, "; e.g. " + "; ".join(examples) if examples else ""))]


if __name__ == "__main__":
    main_for(run)
