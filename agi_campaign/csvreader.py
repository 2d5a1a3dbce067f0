"""A CSV file -> decoded text and checked records. No database work.

- ``read_text(path, encoding=None)`` -> ``(text, size in bytes, how it was decoded)``. Without
  ``encoding``: UTF-8 with or without a BOM (removed), or UTF-16 with a BOM; anything else -
  a single-byte code page such as Excel's cp1252, invalid UTF-8, a NUL byte (binary data) - is
  a ``CsvImportError`` naming the line and byte offset and the ``--encoding`` to pass. With
  ``encoding`` the bytes are decoded strictly with it.
- ``detect_delimiter(text)``: ``,`` ``;`` TAB or ``|``, from the first records.
- ``iter_records(text, region, name, delimiter)`` yields ``(line, cells, chars_done)`` per CSV
  record. Line ends may be CRLF, LF or CR; fields may be quoted (``csv`` module, excel dialect
  with the delimiter), so quoted fields can hold delimiters and newlines. ``line`` is the
  physical line the record starts on; ``count_lines(text)`` counts physical lines (header and
  blank lines included).
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
  ``MAX_RECORD_CHARS``) or None.
- ``segments(text, start, size, delimiter)`` cuts the text into pieces of whole records
  (``quoted_at`` finds whether a line feed is inside a quoted field, a step a quote), so
  worker processes (``pool_for``) can parse, split and normalise pieces in parallel
  (``csvlayout.settled``). Which column is the phone: ``csvlayout``.

Errors: every refusal is a ``CsvImportError`` whose message reads
``"<file> line <n> (byte offset <b>): <what is wrong>; <how to fix it>"`` - ``<file>`` is the
base name (the path given, for an unreadable file); line and offset only where they apply.
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

MAX_FIELD_CHARS = 1000
MAX_RECORD_CHARS = 10_000
PHONE_LIKE = re.compile(r"[ \t]*\+?[0-9 \t().-]{4,64}")      # worth phone.normalize
CHUNK_ROWS = 10_000
PARALLEL_MIN_BYTES = 2_000_000


# ---- reading ------------------------------------------------------------------------------

def read_text(path, encoding=None):
    """``(text, size in bytes, how)``: the file's text, BOM removed, and how it was decoded
    (``"UTF-8"``, ``"UTF-8 with BOM"``, ``"UTF-16"``, or the ``encoding`` given), or
    CsvImportError.

    Without ``encoding`` only what is certain is decoded: UTF-8 (with or without BOM) and
    UTF-16 with a BOM (Excel's "Unicode Text"). Other bytes are refused with the line and byte
    offset, a hint (``--encoding cp1252`` for Excel on Windows) and the line as cp1252 would
    read it: guessing a single-byte code page could import mojibake silently."""
    name = os.path.basename(str(path))
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise CsvImportError("%s: cannot read the file: %s" % (path, err.strerror or err)) from None
    if encoding is not None:
        return _decode_as(data, encoding, name), len(data), encoding
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_as(data, "utf-16", name), len(data), "UTF-16"
    _refuse_nul(data, name)
    bom = data.startswith(codecs.BOM_UTF8)
    start = len(codecs.BOM_UTF8) if bom else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = start + err.start
        line_start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
        line_end = min([at for at in (data.find(b"\n", offset), data.find(b"\r", offset))
                        if at >= 0] or [len(data)])
        as_cp1252 = data[line_start:line_end].decode("cp1252", "replace").strip()
        raise CsvImportError(
            "%s line %d (byte offset %d): not UTF-8 (byte 0x%02x); if Excel on Windows saved "
            "it (\"CSV (Comma delimited)\"), import again with --encoding cp1252 (read so, "
            "the line is %r), else name the file's encoding with --encoding (e.g. latin-1), "
            "or save it as CSV UTF-8" % (name, _line_of(data, offset), offset, data[offset],
                                          as_cp1252[:60])) from None
    return text, len(data), "UTF-8 with BOM" if bom else "UTF-8"


def _line_of(data, offset):
    """The physical line (CRLF, LF or CR ends) of byte ``offset`` of ``data``."""
    return (data.count(b"\n", 0, offset) + data.count(b"\r", 0, offset)
            - data.count(b"\r\n", 0, offset) + 1)


def _decode_as(data, encoding, name):
    """``data`` decoded strictly with ``encoding``, a BOM removed; a UTF-8 BOM under another
    encoding is refused (the file is UTF-8: decoding it otherwise would garble it)."""
    family = codecs.lookup(encoding).name
    if data.startswith(codecs.BOM_UTF8) and family not in ("utf-8", "utf-8-sig"):
        raise CsvImportError("%s: the file starts with a UTF-8 byte order mark, so it is UTF-8, "
                             "not %s: import it without --encoding" % (name, encoding))
    try:
        text = data.decode(family)
    except UnicodeDecodeError as err:
        raise CsvImportError("%s line %d (byte offset %d): not valid %s (byte 0x%02x); check "
                             "the file's encoding and pass it with --encoding"
                             % (name, _line_of(data, err.start), err.start, encoding,
                                data[err.start])) from None
    text = text[1:] if text.startswith("\ufeff") else text
    if family not in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        _refuse_nul(data, name)
    if "\x00" in text:
        raise CsvImportError("%s: NUL character: this is binary data, not a CSV text file; "
                             "export it as CSV" % name)
    return text


def _refuse_nul(data, name):
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CsvImportError("%s line %d (byte offset %d): NUL byte: this is binary data (or "
                             "UTF-16 without a BOM: pass --encoding utf-16-le), not a CSV text "
                             "file; export it as CSV (UTF-8)"
                             % (name, _line_of(data, nul), nul))


DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_RECORDS = 50
SNIFF_CHARS = 65536


def detect_delimiter(text):
    """The delimiter of ``text`` among ``DELIMITERS``: the one that splits the first record
    into more than one field and gives that same count on the most of the first
    ``SNIFF_RECORDS`` non-blank records (tie: more fields, then the order of DELIMITERS);
    ``","`` when none splits the first record (a one-column file)."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS:
        sample = sample[:max(sample.rfind("\n"), sample.rfind("\r")) + 1] or sample
    best, best_score = ",", None
    for delimiter in DELIMITERS:
        counts = []
        for cells in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            if not is_blank(cells):
                counts.append(len(cells))
                if len(counts) >= SNIFF_RECORDS:
                    break
        if not counts or counts[0] < 2:
            continue
        score = (counts.count(counts[0]) / len(counts), counts[0])
        if best_score is None or score > best_score:
            best, best_score = delimiter, score
    return best


def count_lines(text):
    """Physical lines: ended by CRLF, LF or CR; a last line without an end counts too."""
    return line_ends(text) + (1 if text and not text.endswith(("\n", "\r")) else 0)


def line_ends(text, start=0, end=None):
    """How many physical line ends (CRLF, LF or CR) ``text[start:end]`` holds."""
    end = len(text) if end is None else end
    return (text.count("\n", start, end) + text.count("\r", start, end)
            - text.count("\r\n", start, end))


def quoted_at(text, start, end, delimiter, inside=False):
    """Whether a quoted field is open at ``end``, reading ``text[start:end]`` from a record
    start (or, with ``inside``, from within a quoted field) the way the ``csv`` module's excel
    dialect does: ``"`` opens a field only at the field's start, inside one ``""`` is a quote
    and a lone ``"`` closes it; any other ``"`` is text. Costs a step a quote, not a
    character."""
    pos, find = start, text.find
    while True:
        at = find('"', pos, end)
        if at < 0:
            return inside
        if inside:
            if text.startswith('"', at + 1) and at + 1 < end:
                pos = at + 2
                continue
            inside = False
        elif at == 0 or text[at - 1] in (delimiter, "\n", "\r"):
            inside = True
        pos = at + 1


def segments(text, start, size, delimiter):
    """``(begin, end)`` pieces covering ``text[start:]``, about ``size`` characters each,
    each ending just after a line feed (a CR in a file without line feeds) outside any quoted
    field (``quoted_at``), or at the end: so every piece holds whole records and can be
    parsed on its own. A quote left open (a stray one) makes the piece run to the end, where
    its parser reports it."""
    total, begin = len(text), start
    eol = "\n" if text.find("\n", start) >= 0 else "\r"       # CR alone: old Mac files
    while begin < total:
        end, scanned, inside = begin, begin, False
        while True:
            nl = text.find(eol, max(end, begin + size - 1))
            if nl < 0:
                end = total
                break
            end = nl + 1
            inside = quoted_at(text, scanned, end, delimiter, inside)
            scanned = end
            if not inside:
                break
        yield begin, end
        begin = end


def iter_records(text, region, name, delimiter=",", first_line=1):
    """Yield ``(line, cells, chars_done)`` for each CSV record (``[]`` for an empty line);
    ``line`` is the physical line the record starts on (``text`` starting on ``first_line``).
    A stray quote (see the module docstring) raises CsvImportError naming the file ``name``
    when its record is reached."""
    if csv.field_size_limit() < len(text) + 1:
        csv.field_size_limit(len(text) + 1)     # every field fits; sizes are checked per row
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, delimiter=delimiter)
    line, done, shift = 1, 0, first_line - 1
    for cells in reader:
        start, done = done, stream.tell()
        if reader.line_num > line or done == len(text):   # multi-line, or may end in a quote
            check_quotes(text[start:done], line + shift, region, name, delimiter)
        yield line + shift, cells, done
        line = reader.line_num + 1


def check_quotes(record, line, region, name, delimiter=","):
    """CsvImportError when a quoted field of ``record`` (the text of one CSV record, starting
    on physical ``line``) runs over a line that looks like a row, or is never closed. Of the
    line where the field closes only the text inside the field counts: the cells after it (a
    phone column after a multi-line address) belong to the record."""
    lines = list(io.StringIO(record, newline=""))
    opened = _quote_openings(lines, delimiter)
    for i in range(1, len(lines)):
        if _looks_like_row(_inside_quotes(lines[i]), region, delimiter):
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
    if len(lines) > 1:
        try:        # a field that runs over lines must close cleanly: `"..."` then , or the end
            for _ in csv.reader(io.StringIO(record, newline=""), delimiter=delimiter,
                                strict=True):
                pass
        except csv.Error:
            at = line + next(i for i in opened if i is not None)
            raise CsvImportError(
                "%s line %d: a quoted field opens here, runs over %d lines and its closing "
                "quote is followed by more text (%s), so the lines it swallowed may be rows; "
                "check line %d for a stray \" quote (a quote inside a field is written \"\"), "
                "fix it and import again" % (name, at, len(lines), _after_close(lines, opened),
                                             at)) from None


def _after_close(lines, opened):
    """Where the quoted field that spans lines closes: ``line +N: '...'`` for the message."""
    for i in range(1, len(lines)):
        if opened[i] is None or opened[i] != opened[i - 1]:
            return "%r" % lines[i].rstrip("\r\n")[:40]
    return "at the end"


def _inside_quotes(text):
    """The start of a line that continues a quoted field, up to the field's closing quote."""
    pos = 0
    while True:
        end = text.find('"', pos)
        if end < 0:
            return text
        if not text.startswith('"', end + 1):
            return text[:end]
        pos = end + 2


def _quote_openings(lines, delimiter):
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
                pos = text.find(delimiter, pos) + 1
                if not pos:
                    break
                at_field_start = True
                continue
            at_field_start = False
        out.append(opened if quoted else None)
    return out


def _looks_like_row(text, region, delimiter):
    """True when a cell of one physical line, read as CSV on its own, is a phone number."""
    for cell in next(csv.reader([text], delimiter=delimiter), []):
        if PHONE_LIKE.fullmatch(cell):
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


# ---- the worker pool ----------------------------------------------------------------------

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
