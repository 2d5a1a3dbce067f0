"""CSV -> the numbers of one campaign, in one transaction, with a report whose counts add up.

Rules (the contract of ``import_csv``):

- Reading is ``csvreader``'s: encoding (UTF-8, with or without a BOM), quoting, physical line
  numbers, and stray quotes each refuse the whole file with a ``CsvImportError`` naming the
  line to fix. The report counts the file's physical ``lines`` (header and blank lines
  included) besides its rows.
- Phone column: ``phone_column`` chooses it by header name (case-insensitive; an unknown name
  is a ``CsvImportError`` listing the headers). Otherwise a first-row cell named
  phone/number/telephone/msisdn/tel chooses it, else the first column.
- Header detection: when ``phone_column`` is given, or a first-row cell has one of those
  names, the first row is the header. Otherwise the first row is a header when its
  phone-column cell contains letters and does not normalise as a phone number; a first row
  like ``"12"`` (no letters) is data and is rejected as invalid, never silently dropped.
- Every data row is counted exactly once: imported, duplicate (same E.164 earlier in the file,
  or already in the campaign), invalid (with a reason), or dnc (the normalised number is on
  one of ``dnc_lists``). ``rows == imported + duplicates + invalid + dnc`` is asserted before
  commit. Lines with no non-blank cell are not data rows: they are counted in ``blank`` only.
- The other columns are kept as a JSON object ``{header: value}`` (``col2``, ``col3``... by
  position without a header; a row with fewer cells gets ``""``). At most 20 such columns
  and 200 characters a value; a field over 1000 characters, a record over 10,000 characters,
  more cells than the header (unless the extra ones are empty) reject the row as invalid.
- Formula injection: cells starting with ``= + - @`` (or tab, CR) are stored as they are - they
  are data - but every cell written to the rejects file gets a leading ``'`` so a spreadsheet
  shows it as text. Whatever exports numbers for spreadsheets must do the same.
- One transaction (``database.atomic()``) writes the ``ImportBatch`` and the numbers; any
  exception (including one raised by ``progress``) rolls everything back. The rejects file
  (``line,raw,reason`` then the original cells; default ``<csv>.rejects.csv``) lists every row
  not imported, is written to a temporary file and renamed into place only after the commit.
  ``dry_run`` writes nothing to the database or the disk (and takes no write lock).
- On SQLite the transaction holds the write lock for the whole import (~25 s for 1M rows):
  claims wait meanwhile (busy_timeout 30 s). Memory: the file's text plus a set of the
  campaign's numbers and a dict of the file's (~500 MB peak for 1M rows).

Performance: large files are normalised by ``csvreader``'s pool of worker processes while this
process parses, checks and inserts the previous chunks. Peewee's ``insert_many`` builds SQL at
~70 us a row, more than the rest of the import together; so the INSERT for a full chunk is
built once by ``Number.insert_many`` and executed again with each chunk's parameters.
Measured on 2 cores, SQLite WAL: 1M rows with two extra columns in ~25 s.
"""
import collections
import contextlib
import csv
import dataclasses
import datetime
import itertools
import json
import logging
import os
import sqlite3
import tempfile

from agi_campaign import csvreader, dnc
from agi_campaign.clock import to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.errors import CsvImportError, NotFoundError
from agi_campaign.models import Campaign, ImportBatch, Number, NumberStatus

log = logging.getLogger(__name__)

MAX_EXTRA_COLUMNS = 20
MAX_EXTRA_CHARS = 200
MAX_HEADER_CHARS = 100
RAW_STORED_CHARS = Number.raw.max_length
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PROGRESS_EVERY_ROWS = 50_000
INSERT_ROWS = 1000


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

    def summary(self):
        text = "%s: %d rows: %d imported, %d duplicates, %d invalid, %d on Do-Not-Call lists" % (
            os.path.basename(self.filename), self.rows, self.imported, self.duplicates,
            self.invalid, self.dnc)
        text += "; %d lines read" % self.lines
        if self.blank:
            text += "; %d blank lines skipped" % self.blank
        if self.rejects_path:
            text += "; rejected rows in %s" % self.rejects_path
        if self.dry_run:
            text += " (dry run: nothing written)"
        return text

    def to_dict(self):
        return dataclasses.asdict(self)


# ---- layout: which column is the phone, what the others are called -------------------------

class Layout:
    """The phone column and the names of the other columns, from the first record."""

    def __init__(self, phone_index, header):
        self.phone_index = phone_index
        self.header = header            # list of names, or None when the file has no header
        if header is not None:
            self.names = [name or "col%d" % (i + 1) for i, name in enumerate(header)]
        else:
            self.names = []

    @classmethod
    def detect(cls, first_cells, name, region, phone_column):
        cells = [cell.strip() for cell in first_cells]
        lowered = [cell.lower() for cell in cells]
        if phone_column is not None:
            wanted = phone_column.strip().lower()
            if wanted not in lowered:
                raise CsvImportError("%s: no column named %r; the first row has: %s"
                                     % (name, phone_column, ", ".join(cells) or "(nothing)"))
            return cls._with_header(lowered.index(wanted), cells, name)
        for header_name in csvreader.PHONE_HEADERS:
            if header_name in lowered:
                return cls._with_header(lowered.index(header_name), cells, name)
        if csvreader.looks_like_header(first_cells[0], region):
            return cls._with_header(0, cells, name)
        return cls(0, None)

    @classmethod
    def _with_header(cls, index, cells, name):
        if len(cells) - 1 > MAX_EXTRA_COLUMNS:
            raise CsvImportError("%s: the header has %d columns besides the phone column; at "
                                 "most %d are kept: remove the others"
                                 % (name, len(cells) - 1, MAX_EXTRA_COLUMNS))
        seen = set()
        for cell in cells:
            if len(cell) > MAX_HEADER_CHARS:
                raise CsvImportError("%s line 1: header %r... is longer than %d characters"
                                     % (name, cell[:20], MAX_HEADER_CHARS))
            if cell and cell.lower() in seen:
                raise CsvImportError("%s line 1: column name %r appears twice; rename one"
                                     % (name, cell))
            seen.add(cell.lower())
        return cls(index, cells)

    def split(self, cells):
        """``(raw phone, extra JSON, None)`` or ``(raw, None, reason)`` for one record."""
        idx = self.phone_index
        count = len(cells)
        raw = cells[idx] if idx < count else ""
        problem = csvreader.record_problem(cells)
        if problem:
            return raw, None, problem
        if idx >= count:
            return raw, None, "no phone column (only %d fields)" % count
        if self.header is None:
            if count - 1 > MAX_EXTRA_COLUMNS:
                return raw, None, ("%d columns besides the phone; at most %d are kept"
                                   % (count - 1, MAX_EXTRA_COLUMNS))
            names = ["col%d" % (i + 1) for i in range(count)]
        else:
            names = self.names
            if count != len(names):
                if count > len(names) and not csvreader.is_blank(cells[len(names):]):
                    return raw, None, ("%d fields but the header has %d (a comma in an "
                                       "unquoted field?)" % (count, len(names)))
                cells = (cells + [""] * len(names))[:len(names)]
        extra = dict(zip(names, cells))
        del extra[names[idx]]
        if max(map(len, extra.values()), default=0) > MAX_EXTRA_CHARS:
            long_name = next(k for k, v in extra.items() if len(v) > MAX_EXTRA_CHARS)
            return raw, None, "column %r longer than %d characters" % (long_name,
                                                                        MAX_EXTRA_CHARS)
        return raw, _to_json(extra), None


_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


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

    def add(self, e164, raw, extra):
        self.rows.append((e164, raw[:RAW_STORED_CHARS], extra))
        if len(self.rows) >= self.size:
            self.flush()

    def flush(self):
        rows, self.rows = self.rows, []
        if len(rows) == self.size:
            c0, _, _, c3, c4, c5, _, c7, c8 = self.const
            params = list(itertools.chain.from_iterable(
                (c0, e164, raw, c3, c4, c5, extra, c7, c8) for e164, raw, extra in rows))
            database.execute_sql(self.sql, params)
        elif rows:
            t = self.template
            Number.insert_many([(t[0], e164, raw, t[3], t[4], t[5], extra, t[7], t[8])
                                for e164, raw, extra in rows], fields=list(self.FIELDS)).execute()


def _old_sqlite():
    return sqlite3.sqlite_version_info < (3, 32, 0)


def _adapted(value):
    """A datetime as the sqlite3 module would adapt it (done once, not once a row)."""
    if isinstance(value, datetime.datetime) and not is_postgres():
        return sqlite3.adapt(value)
    return value


def neutralize(cell):
    """A cell for a spreadsheet-bound CSV: a leading ' keeps formula-like text as text."""
    text = str(cell)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class RejectsWriter:
    """Rejected rows to a temporary file next to ``path``; ``commit()`` renames it into place
    (and returns the path) when something was rejected, else removes it."""

    def __init__(self, path, header):
        self.path = os.path.abspath(str(path))
        folder = os.path.dirname(self.path)
        try:
            fd, self.temp = tempfile.mkstemp(prefix="." + os.path.basename(self.path),
                                             suffix=".tmp", dir=folder)
        except OSError as err:
            raise CsvImportError("%s: cannot write the rejects file there: %s; choose another "
                                 "rejects path" % (self.path, err.strerror or err)) from None
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["line", "raw", "reason"] + [neutralize(h) for h in header or ()])
        self.count = 0

    def write(self, line, raw, reason, cells):
        self.count += 1
        self.writer.writerow([line, neutralize(raw[:RAW_STORED_CHARS]), neutralize(reason)]
                             + [neutralize(cell[:csvreader.MAX_FIELD_CHARS]) for cell in cells])

    def commit(self):
        self.fh.close()
        if not self.count:
            os.unlink(self.temp)
            return None
        os.replace(self.temp, self.path)
        return self.path

    def discard(self):
        self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


class _NoRejects:
    count = 0

    def write(self, line, raw, reason, cells):
        self.count += 1


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

    def take(self, chunk, results):
        """Classify one chunk of rows, given their normalisation results."""
        fresh, rejected = [], []
        for (line, cells, raw, extra, problem), (e164, why) in zip(chunk, results):
            if problem or why:
                rejected.append(("invalid", line, raw, problem or why, cells))
            elif e164 in self.seen:
                rejected.append(("duplicates", line, raw, "duplicate of line %d (%s)"
                                 % (self.seen[e164], e164), cells))
            elif e164 in self.existing:
                self.seen[e164] = line
                rejected.append(("duplicates", line, raw, "already in the campaign (%s)" % e164,
                                 cells))
            else:
                self.seen[e164] = line
                fresh.append((line, cells, raw, extra, e164))
        listed = self.dnc.holding([row[4] for row in fresh])
        for line, cells, raw, extra, e164 in fresh:
            if e164 in listed:
                rejected.append(("dnc", line, raw, "on Do-Not-Call list %s (%s)"
                                 % (", ".join(listed[e164]), e164), cells))
            elif self.inserter is not None:
                self.inserter.add(e164, raw, extra)
        report = self.report
        report.rows += len(chunk)
        report.imported += len(fresh) - len(listed)
        for kind, line, raw, reason, cells in sorted(rejected, key=lambda r: r[1]):
            setattr(report, kind, getattr(report, kind) + 1)
            self.rejects.write(line, raw, reason, cells)


def _chunks(records, layout, report):
    """Lists of ``(line, cells, raw, extra_json, problem)``, ``csvreader.CHUNK_ROWS`` at a
    time, plus the characters read so far."""
    chunk, done = [], 0
    for line, cells, done in records:
        if csvreader.is_blank(cells):
            report.blank += 1
            continue
        raw, extra, problem = layout.split(cells)
        chunk.append((line, cells, raw, extra, problem))
        if len(chunk) >= csvreader.CHUNK_ROWS:
            yield chunk, done
            chunk = []
    if chunk:
        yield chunk, done


def import_csv(campaign_id, path, region, dnc_lists, now, dry_run=False, rejects_path=None,
               phone_column=None, progress=None, workers=None):
    """Import the CSV at ``path`` into campaign ``campaign_id``; returns an ImportReport.

    ``progress(done_rows, bytes_done, total_bytes)`` is called every ~50,000 rows and once at
    the end, inside the transaction (an exception from it rolls the import back; bytes are
    estimated from characters). ``workers``: normalising processes (None: 2 for large files).
    """
    path = str(path)
    name = os.path.basename(path)
    if Campaign.get_or_none(Campaign.id == campaign_id) is None:
        raise NotFoundError("campaign id %s does not exist" % (campaign_id,))
    text, total_bytes = csvreader.read_text(path)
    records = csvreader.iter_records(text, region, name)
    first, blank = next(records, None), 0
    while first is not None and csvreader.is_blank(first[1]):
        first, blank = next(records, None), blank + 1
    layout = Layout(0, None)
    if first is not None:
        layout = Layout.detect(first[1], name, region, phone_column)
        if layout.header is None:
            records = itertools.chain([first], records)
    report = ImportReport(dry_run=dry_run, filename=path, blank=blank,
                          lines=csvreader.count_lines(text))
    rejects = _NoRejects() if dry_run else RejectsWriter(rejects_path or path + ".rejects.csv",
                                                         layout.header)
    try:
        transaction = contextlib.nullcontext() if dry_run else database.atomic()
        with csvreader.pool_for(workers, total_bytes) as pool, transaction:
            _import(campaign_id, path, dnc_lists, now, layout, records, report, rejects,
                    csvreader.Normalizer(region, pool), progress, (len(text), total_bytes))
    except BaseException:
        if not dry_run:
            rejects.discard()
        raise
    if not dry_run:
        try:
            report.rejects_path = rejects.commit()
        except OSError as err:
            raise CsvImportError("%s: batch %d was imported, but the rejects file %s could not "
                                 "be written: %s" % (name, report.batch_id, rejects.path,
                                                     err.strerror or err)) from None
    log.info("import campaign=%s batch=%s %s", campaign_id, report.batch_id, report.summary())
    return report


def _import(campaign_id, path, dnc_lists, now, layout, records, report, rejects, normalizer,
            progress, sizes):
    inserter = None
    if not report.dry_run:
        report.batch_id = ImportBatch.insert(
            campaign=campaign_id, filename=path[-ImportBatch.filename.max_length:],
            started_at=to_db(now), dry_run=False).execute()
        inserter = _Inserter(campaign_id, report.batch_id, now)
    run = _Run(campaign_id, dnc_lists, report, inserter, rejects)
    total_chars, total_bytes = sizes
    pending = collections.deque()
    next_progress = PROGRESS_EVERY_ROWS
    last_reported = [None]

    def settle():
        nonlocal next_progress
        chunk, job, done = pending.popleft()
        run.take(chunk, job.get())
        if progress is not None and report.rows >= next_progress:
            next_progress += PROGRESS_EVERY_ROWS
            last_reported[0] = report.rows
            progress(report.rows, done * total_bytes // max(total_chars, 1), total_bytes)

    for chunk, done in _chunks(records, layout, report):
        raws = [row[2] if row[4] is None else "" for row in chunk]
        pending.append((chunk, normalizer.submit(raws), done))
        if len(pending) >= 3:
            settle()
    while pending:
        settle()
    if inserter is not None:
        inserter.flush()
    if progress is not None and last_reported[0] != report.rows:
        progress(report.rows, total_bytes, total_bytes)
    if report.rows != report.imported + report.duplicates + report.invalid + report.dnc:
        raise AssertionError("import counts do not add up, rolled back: %r" % (report,))
    if not report.dry_run:
        final = os.path.abspath(rejects.path) if rejects.count else None
        (ImportBatch.update(finished_at=to_db(now), rows=report.rows, imported=report.imported,
                            duplicates=report.duplicates, invalid=report.invalid, dnc=report.dnc,
                            rejects_path=final and final[-ImportBatch.rejects_path.max_length:])
         .where(ImportBatch.id == report.batch_id).execute())
