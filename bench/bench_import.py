"""Benchmark 3: CSV import of 1,000,000 rows (phone + two extra columns).

Ours: agi_campaign.importer.import_csv into a fresh SQLite database (normalisation and
validation of every number with phonenumbers, duplicates, JSON extras, one transaction).
Baseline: the sqlite3 command-line shell's `.import --csv --skip 1` of the same file into a
bare table of three TEXT columns (no parsing of numbers, no index): the floor for getting the
bytes into SQLite on this machine.
"""
import os
import shutil
import subprocess
import time

from common import fresh_campaign, main_for, row  # noqa: E402

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
    if shutil.which("sqlite3"):
        return
    subprocess.run(["apt-get", "update"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "sqlite3"], check=True, capture_output=True)


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
    note = ("%d rows, %.0f MB; %s; bare runs %.2f s and %.2f s" % (
        ROWS, os.path.getsize(csv_path) / 1e6, "%d imported, %d invalid, %d duplicates" % (
            report.imported, report.invalid, report.duplicates), base1, base2))
    ratio = took / base
    return [row("3 CSV import", "1M-row import time vs sqlite3 .import", took, base, "s",
                "< 15 s and <= 10x", took < 15 and ratio <= 10, ratio=ratio, note=note)]


if __name__ == "__main__":
    main_for(run)
