"""CSV -> the numbers of one campaign, in one transaction, with a report whose counts add up.

Rules (the contract of ``import_csv``):

- Reading is ``csvlayout.open_table``'s (and so the same as a Do-Not-Call import's): encoding
  (UTF-8 with or without BOM, UTF-16 with BOM, or ``encoding``), delimiter (detected, or
  ``delimiter``), quoting, stray quotes (the whole file refused naming the line to fix), the
  header and the phone column (``phone_column``, header synonyms, or content). The report
  says how the file was read (``read_as``) and counts its physical ``lines`` (header and blank
  lines included) besides its rows.
- Every data row is counted exactly once: imported, duplicate (same E.164 earlier in the file,
  or already in the campaign), invalid (with a reason: not a valid number, a country not in
  ``countries``, a record too large...), or dnc (the normalised number is on one of
  ``dnc_lists``). ``rows == imported + duplicates + invalid + dnc`` is asserted before commit.
  Lines with no non-blank cell are not data rows: they are counted in ``blank`` only.
- The other columns are kept as JSON (``csvlayout.Layout.split``). Cells starting with
  ``= + - @`` are stored as they are - they are data - and neutralised in every CSV written
  for people (``csvout``).
- One transaction (``database.atomic()``) writes the ``ImportBatch`` and the numbers; any
  exception (including one raised by ``progress``) rolls everything back. The rejects file
  (``line,raw,reason`` then the original cells; default ``<csv>.rejects.csv``) lists every row
  not imported, is written to a temporary file and renamed into place only after the commit.
  ``dry_run`` writes nothing to the database (and takes no write lock), and no file unless
  ``rejects_path`` is given.
- ``ImportReport.exit_status()``: 0 when every row was imported, a duplicate or on a DNC list;
  3 when some rows were invalid and at least one was imported; 4 when nothing was imported
  and the file had no data row or an invalid one.
- On SQLite the transaction holds the write lock for the whole import: claims wait meanwhile
  (busy_timeout 30 s). Memory: the file's text plus a set of the campaign's numbers and a dict
  of the file's (~500 MB peak for 1M rows).

Performance (bench/ 3: 1M rows in ~9 s, ~8x the bare ``sqlite3 .import``): large files are
parsed, split and normalised in segments by two worker processes (``csvlayout.settled``) while
this process classifies and inserts the previous segments; inserting is then most of this
process's time. Peewee's ``insert_many`` builds SQL at ~70 us a row, so the INSERT of a full
chunk is built once by ``Number.insert_many`` and executed again with each chunk's
parameters; on SQLite the import's connection gets a 64 MB page cache (``_import_cache``).
"""
import contextlib
import dataclasses
import datetime
import itertools
import logging
import os
import sqlite3

from agi_campaign import csvlayout, csvout, csvreader, dnc
from agi_campaign.clock import to_db
from agi_campaign.db import SQLITE_PRAGMAS, database, is_postgres
from agi_campaign.errors import NotFoundError
from agi_campaign.models import Campaign, ImportBatch, Number, NumberStatus

log = logging.getLogger(__name__)

RAW_STORED_CHARS = Number.raw.max_length
INSERT_ROWS = 1000
IMPORT_CACHE_KIB = -65536   # PRAGMA cache_size: negative = KiB


@dataclasses.dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0
    dnc: int = 0
    rejects_path: str = None
    batch_id: int = None
    dry_run: bool = False
    filename: str = ""
    blank: int = 0
    lines: int = 0
    read_as: str = ""
    shown: list = dataclasses.field(default_factory=list)   # first rejects (line, raw, reason)

    def summary(self):
        """The first line counts the rows, the second says how the file was read; a dry run
        lists the first rejects after them."""
        text = "%s: %d rows: %d imported, %d duplicates, %d invalid, %d on Do-Not-Call lists" % (
            os.path.basename(self.filename), self.rows, self.imported, self.duplicates,
            self.invalid, self.dnc)
        text += csvout.summary_details(self)
        return "\n".join([text, "read as: " + self.read_as] + self._rejected_lines())

    def _rejected_lines(self):
        rejected = self.rows - self.imported
        if not self.dry_run or not rejected:
            return []
        return ["rows not imported:"] + csvout.show_rejects(self.shown, rejected)

    def exit_status(self):
        return csvout.exit_status(self.rows, self.imported + self.duplicates + self.dnc,
                                  self.invalid)

    def to_dict(self):
        return dataclasses.asdict(self)


# ---- writing ------------------------------------------------------------------------------

class _Inserter:
    """Chunked inserts of pending numbers (see the module docstring for why the SQL of a full
    chunk is reused)."""

    FIELDS = (Number.campaign, Number.phone, Number.raw, Number.status, Number.attempts,
              Number.next_attempt_at, Number.extra, Number.batch, Number.updated_at)

    def __init__(self, campaign_id, batch_id, now):
        stamp = to_db(now)
        self.template = (campaign_id, "", "", NumberStatus.PENDING.value, 0, stamp, "{}",
                         batch_id, stamp)
        per_row = len(self.FIELDS)
        if is_postgres():
            self.size = INSERT_ROWS
        else:
            self.size = min(INSERT_ROWS, (999 if _old_sqlite() else 32766) // per_row)
        query = Number.insert_many([self.template] * self.size, fields=list(self.FIELDS))
        self.sql, params = query.sql()
        self.const = [_adapted(value) for value in params[:per_row]]   # as peewee converts them
        self.rows = []

    def extend(self, rows):
        """Queue ``(e164, raw, extra)`` rows; full chunks are inserted at once."""
        self.rows.extend(rows)
        size = self.size
        if len(self.rows) >= size:
            c0, _, _, c3, c4, c5, _, c7, c8 = self.const
            full = len(self.rows) - len(self.rows) % size
            for start in range(0, full, size):
                params = list(itertools.chain.from_iterable(
                    (c0, e164, raw[:RAW_STORED_CHARS], c3, c4, c5, extra, c7, c8)
                    for e164, raw, extra in self.rows[start:start + size]))
                database.execute_sql(self.sql, params)
            del self.rows[:full]

    def flush(self):
        """Insert what is queued."""
        rows, self.rows = self.rows, []
        if rows:
            t = self.template
            Number.insert_many([(t[0], e164, raw[:RAW_STORED_CHARS], t[3], t[4], t[5], extra,
                                 t[7], t[8])
                                for e164, raw, extra in rows], fields=list(self.FIELDS)).execute()


@contextlib.contextmanager
def _import_cache(dry_run):
    """On SQLite, a 64 MB page cache for the import's connection (the unique index of 1M
    numbers outgrows the usual 8 MB: inserting 1M rows took 6.0 s with it, 4.6 s with 64 MB)."""
    if dry_run or is_postgres():
        yield
        return
    database.execute_sql("PRAGMA cache_size = %d" % IMPORT_CACHE_KIB)
    try:
        yield
    finally:
        database.execute_sql("PRAGMA cache_size = %d" % SQLITE_PRAGMAS["cache_size"])


def _old_sqlite():
    return sqlite3.sqlite_version_info < (3, 32, 0)


def _adapted(value):
    """A datetime as the sqlite3 module would adapt it (done once, not once a row)."""
    if isinstance(value, datetime.datetime) and not is_postgres():
        return sqlite3.adapt(value)
    return value


# ---- the import ---------------------------------------------------------------------------

class _Run:
    """The state of one import: counts, the numbers seen so far, the writers."""

    def __init__(self, campaign_id, dnc_lists, report, inserter, rejects):
        self.dnc_lists = tuple(dnc_lists or ())
        self.report = report
        self.inserter = inserter
        self.rejects = rejects
        self.seen = {}                   # E.164 -> line of its first row in this file
        self.dnc = dnc.Lookup(self.dnc_lists)
        self.existing = {phone for (phone,) in Number.select(Number.phone)
                         .where(Number.campaign == campaign_id).tuples()}

    def take(self, rows, table):
        """Classify one segment's ``csvlayout.Preparer`` rows (the rejected ones' cells are
        read again from ``table`` for the rejects file)."""
        seen, existing, report = self.seen, self.existing, self.report
        numbers = [row[6] for row in rows]
        if (None not in numbers and len(set(numbers)) == len(numbers)
                and seen.keys().isdisjoint(numbers) and existing.isdisjoint(numbers)
                and not self.dnc.holding(numbers)):
            # the usual segment: every row valid, new and not on a list (set operations,
            # not a loop a row; the same outcome as the loop below)
            seen.update(zip(numbers, [row[0] for row in rows]))
            if self.inserter is not None:
                self.inserter.extend([(row[6], row[3], row[4]) for row in rows])
            report.rows += len(rows)
            report.imported += len(rows)
            return
        fresh, rejected = [], []
        for line, begin, end, raw, extra, why, e164 in rows:
            if why is not None:
                rejected.append(("invalid", line, raw, why, begin, end))
            elif e164 in seen:
                rejected.append(("duplicates", line, raw, "duplicate of line %d (%s)"
                                 % (seen[e164], e164), begin, end))
            elif e164 in existing:
                seen[e164] = line
                rejected.append(("duplicates", line, raw, "already in the campaign (%s)" % e164,
                                 begin, end))
            else:
                seen[e164] = line
                fresh.append((line, begin, end, raw, extra, e164))
        listed = self.dnc.holding([row[5] for row in fresh])
        for line, begin, end, raw, _, e164 in fresh:
            if e164 in listed:
                rejected.append(("dnc", line, raw, "on Do-Not-Call list %s (%s)"
                                 % (", ".join(listed[e164]), e164), begin, end))
        if self.inserter is not None:
            self.inserter.extend([(e164, raw, extra) for _, _, _, raw, extra, e164 in fresh
                                  if e164 not in listed])
        report.rows += len(rows)
        report.imported += len(fresh) - len(listed)
        for kind, line, raw, reason, begin, end in sorted(rejected, key=lambda r: r[1]):
            setattr(report, kind, getattr(report, kind) + 1)
            self.rejects.write(line, raw, reason, table.cells(begin, end))


def import_csv(campaign_id, path, region, dnc_lists, now, dry_run=False, rejects_path=None,
               phone_column=None, progress=None, workers=None, delimiter=None, encoding=None,
               countries=()):
    """Import the CSV at ``path`` into campaign ``campaign_id``; returns an ImportReport.

    ``phone_column``, ``delimiter``, ``encoding``: as ``csvlayout.open_table`` (None: detected).
    ``countries``: when not empty, numbers of other countries are invalid rows.
    ``progress(done_rows, bytes_done, total_bytes)`` is called about every
    ``csvlayout.PROGRESS_EVERY_S`` seconds and once at the end, inside the transaction (an
    exception from it rolls the import back; bytes are estimated from characters).
    ``workers``: worker processes reading the file (None: 2 for large files).
    """
    path = str(path)
    if Campaign.get_or_none(Campaign.id == campaign_id) is None:
        raise NotFoundError("campaign id %s does not exist" % (campaign_id,))
    table = csvlayout.open_table(path, region, phone_column, delimiter, encoding)
    report = ImportReport(dry_run=dry_run, filename=path, blank=table.blank, lines=table.lines,
                          read_as=table.read_as)
    rejects = csvout.open_rejects(path, rejects_path, dry_run, table.layout.header)
    try:
        transaction = contextlib.nullcontext() if dry_run else database.atomic()
        with csvreader.pool_for(workers, table.total_bytes) as pool, transaction, \
                _import_cache(dry_run):
            _import(campaign_id, path, dnc_lists, now, table, report, rejects,
                    csvlayout.Preparer(table, region, pool, countries), progress)
    except BaseException:
        rejects.discard()
        raise
    report.rejects_path = csvout.commit_rejects(rejects, path, report.batch_id)
    report.shown = rejects.shown
    log.info("import campaign=%s batch=%s %s", campaign_id, report.batch_id,
             report.summary().splitlines()[0])
    return report


def _import(campaign_id, path, dnc_lists, now, table, report, rejects, preparer, progress):
    inserter = None
    if not report.dry_run:
        report.batch_id = ImportBatch.insert(
            campaign=campaign_id, filename=path[-ImportBatch.filename.max_length:],
            started_at=to_db(now), dry_run=False).execute()
        inserter = _Inserter(campaign_id, report.batch_id, now)
    run = _Run(campaign_id, dnc_lists, report, inserter, rejects)
    for rows in csvlayout.settled(table, report, preparer,
                                  csvlayout.Progress(progress, table, report)):
        run.take(rows, table)
    if inserter is not None:
        inserter.flush()
    if report.rows != report.imported + report.duplicates + report.invalid + report.dnc:
        raise AssertionError("import counts do not add up, rolled back: %r" % (report,))
    if not report.dry_run:
        final = os.path.abspath(rejects.path) if rejects.count else None
        (ImportBatch.update(finished_at=to_db(now), rows=report.rows, imported=report.imported,
                            duplicates=report.duplicates, invalid=report.invalid, dnc=report.dnc,
                            rejects_path=final and final[-ImportBatch.rejects_path.max_length:])
         .where(ImportBatch.id == report.batch_id).execute())
