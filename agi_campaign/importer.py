"""CSV -> the numbers of one campaign, in one transaction, with a report whose counts add up.

Rules (the contract of ``import_csv``):

- The file is read as bytes and must be UTF-8, with or without a BOM. Anything else is a
  ``CsvImportError`` naming the line and byte offset ("save it as UTF-8"); so is a NUL byte
  (binary data). Line ends may be CRLF, LF or CR; fields may be quoted (``csv`` module, excel
  dialect), so quoted fields can hold commas and newlines. Line numbers are physical lines.
- Stray quotes: a field that starts with ``"`` runs to the next lone ``"``, over line ends too,
  so one stray quote can swallow the rows after it into one field. The whole file is refused
  (``CsvImportError`` naming the line where the quote opened and the swallowed line) when a
  quoted field is never closed, or runs over a line that looks like a row of its own: a cell
  of that line, read as CSV on its own, normalises as a phone number. Refused rather than that
  record rejected: past a stray quote the record boundaries are guesses, so rejecting the
  record would drop the numbers inside it and re-reading its lines as rows could import text
  never meant as a row; refusing imports nothing and names the line to fix. A multi-line field
  whose other lines hold no phone number (an address, a note) is kept; a note with a phone
  number on a line of its own is refused too (join its lines). The report counts the file's
  physical ``lines`` (header and blank lines included) besides its rows.
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

Performance: ``phonenumbers`` costs ~28 us a number, ~28 s of CPU for 1M rows, so files over
``PARALLEL_MIN_BYTES`` are normalised by a pool of worker processes (spawned, not forked: the
caller may have threads) while this process parses, checks and inserts the previous chunks;
repeated raw strings are normalised once (a bounded memo keyed on the exact raw text, so it
can never accept what ``phone.normalize`` rejects). Peewee's ``insert_many`` builds SQL at
~70 us a row, more than the rest of the import together; so the INSERT for a full chunk is
built once by ``Number.insert_many`` and executed again with each chunk's parameters.
Measured on 2 cores, SQLite WAL: 1M rows with two extra columns in ~25 s.

Length: over the ~400-line guide because reading rules, row layout and the pipeline serve
only this import; the reading half (``read_text`` .. ``Layout``) could become its own module.
"""
import codecs
import collections
import contextlib
import csv
import dataclasses
import datetime
import io
import itertools
import json
import logging
import multiprocessing
import os
import re
import sqlite3
import tempfile
import threading

from agi_campaign import dnc, phone
from agi_campaign.clock import to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.errors import CsvImportError, NotFoundError, PhoneError
from agi_campaign.models import Campaign, ImportBatch, Number, NumberStatus

log = logging.getLogger(__name__)

PHONE_HEADERS = ("phone", "number", "telephone", "msisdn", "tel")
MAX_EXTRA_COLUMNS = 20
MAX_EXTRA_CHARS = 200
MAX_FIELD_CHARS = 1000
MAX_RECORD_CHARS = 10_000
MAX_HEADER_CHARS = 100
RAW_STORED_CHARS = Number.raw.max_length
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PHONE_LIKE = re.compile(r"[ \t]*\+?[0-9 \t().-]{4,64}")     # worth phone.normalize
CHUNK_ROWS = 10_000
PROGRESS_EVERY_ROWS = 50_000
PARALLEL_MIN_BYTES = 2_000_000
MEMO_MAX = 200_000
INSERT_ROWS = 1000
WORKER_TIMEOUT_S = 120      # for one chunk; a pool whose workers cannot start never answers


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


# ---- reading ------------------------------------------------------------------------------

def read_text(path):
    """The file's text (UTF-8, BOM removed) and its size in bytes, or CsvImportError."""
    name = os.path.basename(str(path))
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise CsvImportError("%s: cannot read the file: %s" % (path, err.strerror or err)) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvImportError("%s: the file is UTF-16; save it as UTF-8" % name)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CsvImportError("%s line %d (byte offset %d): NUL byte: this is binary data, not a "
                             "CSV text file; export it as CSV (UTF-8)"
                             % (name, data.count(b"\n", 0, nul) + 1, nul))
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = start + err.start
        raise CsvImportError("%s line %d (byte offset %d): not UTF-8 (byte 0x%02x); save it as "
                             "UTF-8" % (name, data.count(b"\n", 0, offset) + 1, offset,
                                        data[offset])) from None
    return text, len(data)


def count_lines(text):
    """Physical lines: ended by CRLF, LF or CR; a last line without an end counts too."""
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends + (1 if text and not text.endswith(("\n", "\r")) else 0)


def iter_records(text, region, name):
    """Yield ``(line, cells, chars_done)`` for each CSV record (``[]`` for an empty line);
    ``line`` is the physical line the record starts on. A stray quote (see the module
    docstring) raises CsvImportError naming the file ``name`` when its record is reached."""
    if csv.field_size_limit() < len(text) + 1:
        csv.field_size_limit(len(text) + 1)     # every field fits; sizes are checked per row
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream)
    line, done = 1, 0
    for cells in reader:
        start, done = done, stream.tell()
        if reader.line_num > line or done == len(text):   # multi-line, or may end in a quote
            check_quotes(text[start:done], line, region, name)
        yield line, cells, done
        line = reader.line_num + 1


def check_quotes(record, line, region, name):
    """CsvImportError when a quoted field of ``record`` (the text of one CSV record, starting
    on physical ``line``) runs over a line that looks like a row, or is never closed."""
    lines = list(io.StringIO(record, newline=""))
    opened = _quote_openings(lines)
    for i in range(1, len(lines)):
        if _looks_like_row(lines[i], region):
            at = line + opened[i - 1]
            raise CsvImportError(
                "%s line %d: a quoted field opens here and runs on over line %d, which looks "
                "like a row of its own (%r); check line %d for a stray \" quote (a quote inside "
                "a field is written \"\"), fix it and import again"
                % (name, at, line + i, lines[i].rstrip("\r\n")[:40], at))
    if opened[-1] is not None:
        at = line + opened[-1]
        raise CsvImportError(
            "%s line %d: a quoted field opens here and is never closed (it runs to the end of "
            "the file, line %d); check line %d for a stray \" quote (a quote inside a field is "
            "written \"\"), fix it and import again" % (name, at, line + len(lines) - 1, at))


def _quote_openings(lines):
    """For each line of one record: None, or, when a quoted field is still open at the line's
    end, the index of the line where it opened (excel dialect: ``"`` opens only a field start)."""
    out, quoted, opened = [], False, None
    for index, text in enumerate(lines):
        pos, at_field_start = 0, index == 0
        while pos < len(text):
            if quoted:
                pos = text.find('"', pos) + 1
                if not pos:
                    break
                if text.startswith('"', pos):       # "" inside a quoted field
                    pos += 1
                else:
                    quoted = False
            elif at_field_start and text[pos] == '"':
                quoted, opened, pos = True, index, pos + 1
            else:
                pos = text.find(",", pos) + 1
                if not pos:
                    break
                at_field_start = True
                continue
            at_field_start = False
        out.append(opened if quoted else None)
    return out


def _looks_like_row(text, region):
    """True when a cell of one physical line, read as CSV on its own, is a phone number."""
    for cell in next(csv.reader([text]), []):
        if _PHONE_LIKE.fullmatch(cell):
            try:
                phone.normalize(cell, region)
                return True
            except PhoneError:
                pass
    return False


def record_problem(cells):
    """Why a record is too large to be a row, or None."""
    size = sum(map(len, cells))
    if size <= MAX_FIELD_CHARS:
        return None
    for i, cell in enumerate(cells):
        if len(cell) > MAX_FIELD_CHARS:
            return "field %d longer than %d characters" % (i + 1, MAX_FIELD_CHARS)
    if size + len(cells) - 1 > MAX_RECORD_CHARS:
        return "record longer than %d characters" % MAX_RECORD_CHARS
    return None


def is_blank(cells):
    return not any(map(str.strip, cells))


def looks_like_header(cell, region):
    """The header rule: letters, and not a phone number."""
    if not any(char.isalpha() for char in cell):
        return False
    try:
        phone.normalize(cell, region)
    except PhoneError:
        return True
    return False


def neutralize(cell):
    """A cell for a spreadsheet-bound CSV: a leading ' keeps formula-like text as text."""
    text = str(cell)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


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
        for header_name in PHONE_HEADERS:
            if header_name in lowered:
                return cls._with_header(lowered.index(header_name), cells, name)
        if looks_like_header(first_cells[0], region):
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
        problem = record_problem(cells)
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
                if count > len(names) and not is_blank(cells[len(names):]):
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


# ---- normalising, in this process or in a pool ---------------------------------------------

def _normalize_many(args):
    """Worker: ``[(e164, None) | (None, reason)]`` for each raw string."""
    raws, region = args
    out = []
    for raw in raws:
        try:
            out.append((phone.normalize(raw, region), None))
        except PhoneError as err:
            out.append((None, str(err)))
    return out


class Normalizer:
    """``submit(raws)`` -> a handle whose ``get()`` is the list of (e164, reason) pairs."""

    def __init__(self, region, pool=None):
        self.region = region
        self.pool = pool
        self.memo = {}

    def submit(self, raws):
        known, todo = {}, []
        for raw in dict.fromkeys(raws):
            hit = self.memo.get(raw)
            if hit is None:
                todo.append(raw)
            else:
                known[raw] = hit
        if self.pool is None:
            job = _Done(_normalize_many((todo, self.region)))
        else:
            job = self.pool.apply_async(_normalize_many, ((todo, self.region),))
        return _Pending(self.memo, raws, known, todo, job)


class _Done:
    def __init__(self, value):
        self.value = value

    def get(self, timeout=None):
        return self.value


class _Pending:
    def __init__(self, memo, raws, known, todo, job):
        self.memo, self.raws, self.known, self.todo, self.job = memo, raws, known, todo, job

    def get(self):
        try:
            fresh = dict(zip(self.todo, self.job.get(WORKER_TIMEOUT_S)))
        except multiprocessing.TimeoutError:
            raise CsvImportError("the phone-number worker processes did not answer within %d s; "
                                 "import again with workers=0" % WORKER_TIMEOUT_S) from None
        if len(self.memo) + len(fresh) > MEMO_MAX:
            self.memo.clear()
        self.memo.update(fresh)
        self.known.update(fresh)
        return [self.known[raw] for raw in self.raws]


@contextlib.contextmanager
def pool_for(workers, total_bytes):
    """A pool of ``workers`` processes (None: 2 when the file is large and there are 2 CPUs),
    or None for "normalise in this process".

    Forked when this process runs a single thread (the CLI: fast start, nothing to
    re-import); spawned when other threads run, because a forked child could inherit a lock
    held by one of them. Spawned children import the caller's ``__main__``, which must be
    guarded by ``if __name__ == "__main__"`` (console scripts are)."""
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if total_bytes >= PARALLEL_MIN_BYTES else 0
    if workers < 2:
        yield None
        return
    method = "fork" if (threading.active_count() == 1
                        and "fork" in multiprocessing.get_all_start_methods()) else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield pool


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
                             + [neutralize(cell[:MAX_FIELD_CHARS]) for cell in cells])

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
    """Lists of ``(line, cells, raw, extra_json, problem)``, CHUNK_ROWS at a time, plus the
    characters read so far."""
    chunk, done = [], 0
    for line, cells, done in records:
        if is_blank(cells):
            report.blank += 1
            continue
        raw, extra, problem = layout.split(cells)
        chunk.append((line, cells, raw, extra, problem))
        if len(chunk) >= CHUNK_ROWS:
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
    text, total_bytes = read_text(path)
    records = iter_records(text, region, name)
    first, blank = next(records, None), 0
    while first is not None and is_blank(first[1]):
        first, blank = next(records, None), blank + 1
    layout = Layout(0, None)
    if first is not None:
        layout = Layout.detect(first[1], name, region, phone_column)
        if layout.header is None:
            records = itertools.chain([first], records)
    report = ImportReport(dry_run=dry_run, filename=path, blank=blank, lines=count_lines(text))
    rejects = _NoRejects() if dry_run else RejectsWriter(rejects_path or path + ".rejects.csv",
                                                         layout.header)
    try:
        transaction = contextlib.nullcontext() if dry_run else database.atomic()
        with pool_for(workers, total_bytes) as pool, transaction:
            _import(campaign_id, path, dnc_lists, now, layout, records, report, rejects,
                    Normalizer(region, pool), progress, (len(text), total_bytes))
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
