"""A CSV file -> checked records and normalised phone numbers. No database work.

- ``read_text(path)`` -> ``(text, size in bytes)``. The file must be UTF-8, with or without a
  BOM (removed). Anything else - UTF-16, invalid UTF-8, a NUL byte (binary data) - and an
  unreadable file are a ``CsvImportError`` naming the line and byte offset where one applies.
- ``iter_records(text, region, name)`` yields ``(line, cells, chars_done)`` per CSV record.
  Line ends may be CRLF, LF or CR; fields may be quoted (``csv`` module, excel dialect), so
  quoted fields can hold commas and newlines. ``line`` is the physical line the record starts
  on; ``count_lines(text)`` counts physical lines (header and blank lines included).
- Stray quotes: a field that starts with ``"`` runs to the next lone ``"``, over line ends too,
  so one stray quote can swallow the rows after it into one field. The whole file is refused
  when a quoted field is never closed, or runs over a line that looks like a row of its own: a
  cell of that line, read as CSV on its own, normalises as a phone number. ``iter_records``
  raises the ``CsvImportError`` (naming the line where the quote opened and the swallowed
  line) on reaching that record, after yielding the ones before it: commit nothing until it
  ends. Refused rather than that record rejected: past a stray quote the record boundaries are
  guesses, so rejecting the record would drop the numbers inside it and re-reading its lines
  as rows could import text never meant as a row; refusing imports nothing and names the line
  to fix. A multi-line field whose other lines hold no phone number (an address, a note) is
  kept; a note with a phone number on a line of its own is refused too (join its lines).
- Per record, no refusal: ``is_blank(cells)`` (no non-blank cell); ``record_problem(cells)``,
  the reason a record is too large to be a row (a field over ``MAX_FIELD_CHARS``, a record over
  ``MAX_RECORD_CHARS``) or None; ``looks_like_header(cell, region)``, the header rule (letters,
  and not a phone number); ``PHONE_HEADERS``, the names that mark a phone column.
- ``Normalizer(region, pool).submit(raws).get()`` -> ``[(e164, None) | (None, reason)]``, one
  pair a raw string, in order; ``pool_for(workers, total_bytes)`` gives the pool (or None).

Errors: every refusal is a ``CsvImportError`` whose message reads
``"<file> line <n> (byte offset <b>): <what is wrong>; <how to fix it>"`` - ``<file>`` is the
base name (the path given, for an unreadable file); line and offset only where they apply. A
pool whose workers do not answer within ``WORKER_TIMEOUT_S`` is a ``CsvImportError`` saying
to import again with workers=0.

Performance: ``phonenumbers`` costs ~28 us a number, ~28 s of CPU for 1M rows, so files over
``PARALLEL_MIN_BYTES`` are normalised by a pool of worker processes while the caller parses,
checks and writes the previous chunks (``CHUNK_ROWS`` rows each); repeated raw strings are
normalised once (a bounded memo keyed on the exact raw text, so it can never accept what
``phone.normalize`` rejects).
"""
import codecs
import contextlib
import csv
import io
import multiprocessing
import os
import re
import threading

from agi_campaign import phone
from agi_campaign.errors import CsvImportError, PhoneError

PHONE_HEADERS = ("phone", "number", "telephone", "msisdn", "tel")
MAX_FIELD_CHARS = 1000
MAX_RECORD_CHARS = 10_000
_PHONE_LIKE = re.compile(r"[ \t]*\+?[0-9 \t().-]{4,64}")     # worth phone.normalize
CHUNK_ROWS = 10_000
PARALLEL_MIN_BYTES = 2_000_000
MEMO_MAX = 200_000
WORKER_TIMEOUT_S = 120      # for one chunk; a pool whose workers cannot start never answers


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
