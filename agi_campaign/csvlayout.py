"""Which column of a CSV file holds the phone number, and whether its first record is a header.

``open_table(path, region, phone_column, delimiter, encoding, purpose)`` reads a file
(``csvreader``) and returns a ``Table``: its ``Layout``, its text, where the data starts and how
it was read; ``settled(table, counts, Preparer(table, region, pool, countries), progress)``
yields its rows a segment at a time, parsed, split and normalised (in a pool of worker
processes for large files: the main process only cuts the text at record boundaries,
``csvreader.segments``, and writes). Both imports (numbers and Do-Not-Call lists) read files
through them, so one file is read the same way by both. The rules, applied to the first
non-blank record and the ``SAMPLE_ROWS`` records after it:

- Phone column, in this order: ``phone_column`` (``spec``) when given: a header name (compared
  by ``header_key``: case, accents and punctuation ignored), a 1-based column number, or
  several of those joined by ``+`` whose cells are concatenated in that order (``1+2`` for a
  registry file with the area code and the number in two columns); else a header cell that is
  one of ``SYNONYMS`` (several: the one whose sampled cells are most often valid numbers, then
  the leftmost); else by content: the column with the most valid numbers among the sampled
  rows, if at least half of them are. Otherwise the file is refused (CsvImportError, naming
  the columns, and ``--phone-column A+B`` when two adjacent columns together are valid).
- Header: the first record is a header when ``spec`` names a header, or one of its cells is a
  synonym, or none of its cells is a valid phone number and one has letters - unless its cell
  in the phone column looks like a number (a first row with a name and a bad number is data).
  Otherwise it is data and is kept (a headerless file whose first row is a number loses
  nothing). A header and no data row is a file of 0 rows.
- ``purpose="dnc"`` (a Do-Not-Call list): no other column is kept or checked, and a file where
  a column besides the phone column holds mostly valid numbers is refused unless ``spec``
  names the column: each is imported on its own, none is left out unnoticed.
- ``Layout.split(cells)`` -> ``(raw phone, extra JSON, None)`` or ``(raw, None, reason)``: the
  first ``MAX_EXTRA_COLUMNS`` other columns are kept as a JSON object ``{header: value}``
  (``col2``, ``col3``... by position without a header; a row with fewer cells gets ``""``;
  ``describe()`` says how many more were not kept). A value over ``MAX_EXTRA_CHARS``, a too
  large record (``csvreader.record_problem``) or more cells than the header (unless the extra
  ones are empty) make the row invalid.
"""
import collections
import csv
import dataclasses
import io
import json
import multiprocessing
import operator
import os
import re
import time
import unicodedata

from agi_campaign import csvreader, phone
from agi_campaign.errors import CsvImportError, PhoneError

MAX_EXTRA_COLUMNS = 20         # other columns kept with a number (the first ones)
MAX_EXTRA_CHARS = 1000         # a longer value makes its row invalid
MAX_HEADER_CHARS = 100
SAMPLE_ROWS = 200
MAX_SCAN_COLUMNS = 100         # columns searched for numbers by content
MAX_SCAN_CELLS = 20_000        # cells read to find the phone column (fewer rows when wide)
MIN_VALID_SHARE = 0.5
PROGRESS_EVERY_S = 0.5
WORKER_TIMEOUT_S = 120      # for one chunk; a pool whose workers cannot start never answers

# Header names of a phone column, as header_key gives them: English, French, German, Spanish,
# Italian, Portuguese and Dutch, the languages of the regions operators write to us from.
SYNONYMS = frozenset("""
phone|phone number|phone no|phonenumber|telephone|telephone number|telephone no|tel|tel no|
mobile|mobile phone|mobile number|mobile no|mobilephone|cell|cell phone|cell number|cellphone|
msisdn|number|contact number|contact phone|primary phone|work phone|home phone|business phone|
main phone|phone mobile|dial|dial number|
numero|numero de telephone|no de telephone|portable|telephone portable|tel portable|
telefon|telefonnummer|telefon nr|tel nr|rufnummer|handy|handynummer|mobil|mobilnummer|
mobiltelefon|nummer|festnetz|
telefono|numero de telefono|movil|celular|telefono movil|numero movil|
cellulare|numero di telefono|telefono cellulare|
telefone|numero de telefone|telemovel|
telefoonnummer|telefoon|mobiel|mobiele nummer|gsm
""".replace("\n", "").split("|"))

_NOT_WORD = re.compile(r"[^0-9a-z]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_TRAILING_NUMBER = re.compile(r" ?[0-9]+$")


def header_key(cell, drop_number=True):
    """A header cell as compared with SYNONYMS (and, with ``drop_number=False``, with
    ``--phone-column``): camelCase split, accents removed, lower case, punctuation as single
    spaces, a trailing number dropped (``"Téléphone"`` -> ``"telephone"``, ``"PhoneNumber"``
    -> ``"phone number"``, ``"Phone 1"`` -> ``"phone"``, ``"Tel."`` -> ``"tel"``)."""
    text = unicodedata.normalize("NFKD", _CAMEL.sub(" ", cell.strip()))
    text = "".join(char for char in text if not unicodedata.combining(char)).lower()
    text = _NOT_WORD.sub(" ", text).strip()
    return (_TRAILING_NUMBER.sub("", text) or text) if drop_number else text


def _is_phone(cell, region):
    try:
        phone.normalize(cell, region)
    except PhoneError:
        return False
    return True


def _column_label(index, header):
    if header is not None and index < len(header) and header[index]:
        return "%r (column %d)" % (header[index], index + 1)
    return "column %d" % (index + 1)


class Layout:
    """The phone column(s), the names of the other columns and which of them are kept
    (``keep_extra=False``, for Do-Not-Call lists: none, and no check of them)."""

    def __init__(self, phone_indexes, header, found_by, header_line=1, keep_extra=True):
        self.phone_indexes = tuple(phone_indexes)
        self.header = header            # list of names, or None when the file has no header
        self.found_by = found_by        # "--phone-column", "header name" or "content"
        self.header_line = header_line
        self.keep_extra = keep_extra
        self.names = ([name or "col%d" % (i + 1) for i, name in enumerate(header)]
                      if header is not None else [])
        others = [i for i in range(len(self.names)) if i not in self.phone_indexes]
        self.kept = others[:MAX_EXTRA_COLUMNS] if keep_extra else []
        self.dropped = len(others) - len(self.kept) if keep_extra else 0
        self._template = None           # the extra JSON of a full row, as a % template
        if header is not None and keep_extra and len(self.phone_indexes) == 1:
            keys = [_encode(self.names[i]) for i in self.kept]
            self._template = "{%s}" % ", ".join(key.replace("%", "%%") + ": %s" for key in keys)
            self._kept_cells = (operator.itemgetter(*self.kept) if len(self.kept) > 1
                                else _Cells(self.kept))

    def describe(self):
        columns = " + ".join(_column_label(i, self.header) for i in self.phone_indexes)
        text = "%s, phone %s: %s" % (
            "header on line %d" % self.header_line if self.header is not None else "no header",
            "columns" if len(self.phone_indexes) > 1 else "column", columns
            + {"content": " (found by its content)", "header name": ""}.get(self.found_by, ""))
        if self.dropped:
            text += "; %d more columns not kept (at most %d are stored)" % (self.dropped,
                                                                             MAX_EXTRA_COLUMNS)
        return text

    def split(self, cells):
        """``(raw phone, extra JSON, None)`` or ``(raw, None, reason)`` for one record."""
        count = len(cells)
        if (self._template is not None and count == len(self.names)
                and sum(map(len, cells)) <= MAX_EXTRA_CHARS):
            # The usual row, short and as wide as the header: the same JSON as below
            # (test_csvlayout checks they agree), built ~4x faster.
            return (cells[self.phone_indexes[0]],
                    self._template % tuple(map(_encode, self._kept_cells(cells))), None)
        return self._split(cells, count)

    def _split(self, cells, count):
        indexes = self.phone_indexes
        if len(indexes) == 1:
            raw = cells[indexes[0]] if indexes[0] < count else ""
        else:
            raw = "".join(cells[i].strip() for i in indexes if i < count)
        if max(indexes) >= count:
            return raw, None, "no phone column (only %d fields)" % count
        if not self.keep_extra:
            return raw, None, None
        problem = csvreader.record_problem(cells)
        if problem:
            return raw, None, problem
        if self.header is None:
            names = ["col%d" % (i + 1) for i in range(count)]
            kept = [i for i in range(count) if i not in indexes][:MAX_EXTRA_COLUMNS]
        else:
            names, kept = self.names, self.kept
            if count > len(names) and not csvreader.is_blank(cells[len(names):]):
                return raw, None, ("%d fields but the header has %d (a delimiter in an "
                                   "unquoted field?)" % (count, len(names)))
            cells = (cells + [""] * len(names))[:len(names)]
        extra = {names[i]: cells[i] for i in kept}
        if max(map(len, extra.values()), default=0) > MAX_EXTRA_CHARS:
            long_name = next(k for k, v in extra.items() if len(v) > MAX_EXTRA_CHARS)
            return raw, None, "column %r longer than %d characters" % (long_name,
                                                                        MAX_EXTRA_CHARS)
        return raw, _to_json(extra), None


class _Cells:
    """``itemgetter`` that always returns a tuple (for 0 or 1 index too); picklable."""

    def __init__(self, indexes):
        self.indexes = tuple(indexes)

    def __call__(self, cells):
        return tuple(cells[i] for i in self.indexes)


_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_encode = json.encoder.encode_basestring        # one string as _to_json writes it


def detect(sample, region, name, spec=None, purpose="numbers", header_line=1):
    """The Layout of a file whose first non-blank records are ``sample`` (the first one
    first, on physical line ``header_line``); ``name`` names the file in errors; ``purpose``
    ``"dnc"`` keeps no other column and refuses a file where several columns hold numbers.
    See the module docstring for the rules."""
    first = [cell.strip() for cell in sample[0]]
    layout = _layout(sample, first, region, name, spec, purpose == "numbers", header_line)
    if purpose == "dnc" and not (spec and spec.strip()):
        _one_phone_column(layout, sample, region, name)
    return _checked(layout, name)


def _layout(sample, first, region, name, spec, keep, line):
    if spec is not None and spec.strip():
        indexes, named = _resolve(spec, first, name)
        header = named or (_looks_like_header(first, region) and not (
            len(indexes) == 1 and csvreader.PHONE_LIKE.fullmatch(first[indexes[0]])))
        return Layout(indexes, first if header else None, "--phone-column", line, keep)
    synonyms = [i for i, cell in enumerate(first) if header_key(cell) in SYNONYMS]
    if synonyms:
        shares = _valid_shares(sample[1:], region, len(first))
        best = max(synonyms, key=lambda i: (shares[i], -i))
        return Layout([best], first, "header name", line, keep)
    header = _looks_like_header(first, region)
    rows = sample[1:] if header else sample
    if not rows:                        # a header and nothing else: no data row to import
        return Layout([0], first, "content", line, keep)
    width = min(max(map(len, rows)), MAX_SCAN_COLUMNS)
    rows = rows[:max(MAX_SCAN_CELLS // width, 10)]
    shares = _valid_shares(rows, region, width)
    best = max(range(width), key=lambda i: (shares[i], -i))
    if shares[best] < MIN_VALID_SHARE:
        raise CsvImportError(_no_phone_column(rows, region, width, first if header else None,
                                              name))
    if header and best < len(first) and csvreader.PHONE_LIKE.fullmatch(first[best]):
        header = False                  # letters elsewhere, a (bad) number in the phone column
    return Layout([best], first if header else None, "content", line, keep)


def _one_phone_column(layout, sample, region, name):
    """CsvImportError when a column besides the chosen one holds mostly valid numbers: a
    Do-Not-Call import takes one column, and must not leave the other one's numbers out."""
    rows = sample[1:] if layout.header is not None else sample
    if not rows:
        return
    width = min(max(map(len, rows)), MAX_SCAN_COLUMNS)
    shares = _valid_shares(rows[:max(MAX_SCAN_CELLS // width, 10)], region, width)
    others = [i for i in range(width)
              if i not in layout.phone_indexes and shares[i] >= MIN_VALID_SHARE]
    if others:
        columns = [layout.phone_indexes[0]] + others
        raise CsvImportError(
            "%s: several columns hold phone numbers (%s); a Do-Not-Call import takes one column "
            "at a time, so that none is left out unnoticed: import the file once for each, "
            "with %s" % (name, ", ".join(_column_label(i, layout.header) for i in columns),
                         " and then ".join("--phone-column %d" % (i + 1) for i in columns)))


def _resolve(spec, first, name):
    """``(indexes, named)`` for a ``--phone-column`` value; ``named``: a header name was used."""
    keys = [header_key(cell, drop_number=False) for cell in first]
    parts = [spec] if header_key(spec, False) in keys else spec.split("+")
    indexes, named = [], False
    for part in parts:
        part = part.strip()
        if not part:
            raise CsvImportError("%s: --phone-column %s: an empty column name; give names or "
                                 "numbers joined by + (e.g. 1+2)" % (name, spec))
        if part.isdigit():
            index = int(part) - 1
            if not 0 <= index < len(first):
                raise CsvImportError("%s: --phone-column %s: there is no column %s; the first "
                                     "row has %d columns" % (name, spec, part, len(first)))
        elif header_key(part, False) in keys:
            index, named = keys.index(header_key(part, False)), True
        else:
            raise CsvImportError("%s: --phone-column %s: no column named %r; the first row "
                                 "has: %s (or give a column number, counting from 1)"
                                 % (name, spec, part, ", ".join(first) or "(nothing)"))
        indexes.append(index)
    return indexes, named


def _looks_like_header(cells, region):
    """No cell is a phone number and one has letters."""
    like = csvreader.PHONE_LIKE.fullmatch
    return (any(any(char.isalpha() for char in cell) for cell in cells)
            and not any(like(cell) and _is_phone(cell, region) for cell in cells))


def _valid_shares(rows, region, width):
    """For each column, the share of ``rows`` whose cell there is a valid number."""
    valid, like = [0] * width, csvreader.PHONE_LIKE.fullmatch
    for cells in rows:
        for i, cell in enumerate(cells[:width]):
            if like(cell) and _is_phone(cell, region):
                valid[i] += 1
    return [count / len(rows) if rows else 0.0 for count in valid]


def _no_phone_column(rows, region, width, header, name):
    text = "%s: no column holds phone numbers" % name
    if header is not None:
        text += " (header: %s)" % ", ".join(header)
    for i in range(width - 1):
        joined = [["".join(cells[i:i + 2])] for cells in rows if len(cells) > i + 1]
        if joined and _valid_shares(joined, region, 1)[0] >= MIN_VALID_SHARE:
            return text + ("; columns %d and %d together are phone numbers (area code and "
                           "number?): import again with --phone-column %d+%d"
                           % (i + 1, i + 2, i + 1, i + 2))
    return text + ("; name the phone column with --phone-column NAME or NUMBER (from 1), or "
                   "check the region (%s) numbers without a country code are read in" % region)


def _checked(layout, name):
    header = layout.header
    if header is None:
        return layout
    seen = set()
    for cell in header:
        if len(cell) > MAX_HEADER_CHARS:
            raise CsvImportError("%s line %d: header %r... is longer than %d characters"
                                 % (name, layout.header_line, cell[:20], MAX_HEADER_CHARS))
        if cell and cell.lower() in seen:
            raise CsvImportError("%s line %d: column name %r appears twice; rename one"
                                 % (name, layout.header_line, cell))
        seen.add(cell.lower())
    return layout


@dataclasses.dataclass
class Table:
    """An opened file: its Layout, its text, and where the data starts (``start``, a
    character offset, on physical line ``first_line``: just after the header, or at 0);
    ``blank`` counts the blank lines before a header (those after it are counted as the data
    is read)."""
    layout: Layout
    text: str
    start: int
    first_line: int
    blank: int
    lines: int
    total_bytes: int
    read_as: str
    delimiter: str
    name: str
    chars_per_row: float

    def cells(self, begin, end):
        """The cells of the record at ``text[begin:end]`` (for a rejects file)."""
        return next(csv.reader(io.StringIO(self.text[begin:end], newline=""),
                               delimiter=self.delimiter), [])


def open_table(path, region, phone_column=None, delimiter=None, encoding=None,
               purpose="numbers"):
    """Read ``path`` and find its layout (CsvImportError when it cannot be read, has a stray
    quote in its first records, or has no phone column). An empty file (or only blank lines)
    gets a Layout of column 1, no header."""
    name = os.path.basename(str(path))
    text, total_bytes, decoded = csvreader.read_text(path, encoding)
    forced = delimiter is not None
    delimiter = delimiter if forced else csvreader.detect_delimiter(text)
    blank, head = 0, []
    for record in csvreader.iter_records(text, region, name, delimiter):
        if not head and csvreader.is_blank(record[1]):
            blank += 1
            continue
        head.append(record)
        if len(head) > SAMPLE_ROWS:
            break
    layout = Layout([0], None, "content")
    if head:
        sample = [cells for _, cells, _ in head if not csvreader.is_blank(cells)]
        layout = detect(sample, region, name, phone_column, purpose, head[0][0])
    start = head[0][2] if layout.header is not None else 0
    if layout.header is None:
        blank = 0                       # counted again with the data
    sampled = head[-1][2] - start if head else 0
    read_as = "%s, %s-separated%s, %s" % (
        decoded, csvreader.DELIMITER_NAMES[delimiter], " (--delimiter)" if forced else "",
        layout.describe())
    return Table(layout, text, start, 1 + csvreader.line_ends(text, 0, start), blank,
                 csvreader.count_lines(text), total_bytes, read_as, delimiter, name,
                 max(sampled / max(len(head) - (start > 0), 1), 1.0))


def _prepare_segment(args):
    """Parse, split and normalise the records of one segment of a file; returns
    ``(rows, blank)``: ``blank`` records skipped, and for each other record
    ``(line, begin, end, raw, extra_json, reason, e164)``: ``reason`` None and ``e164`` set
    for a valid number (of one of ``countries`` when there are any); ``begin``/``end`` are
    its offsets in the whole text. Runs in a worker process for large files."""
    text, offset, first_line, layout, region, countries, delimiter, name = args
    split, parse, is_blank = layout.split, phone.parse_number, csvreader.is_blank
    rows, blank, begin = [], 0, 0
    for line, cells, done in csvreader.iter_records(text, region, name, delimiter, first_line):
        where, begin = (offset + begin, offset + done), done
        if not (cells and cells[0].strip()) and is_blank(cells):
            blank += 1
            continue
        raw, extra, problem = split(cells)
        if problem is not None:
            rows.append((line, *where, raw, None, problem, None))
            continue
        try:
            e164, country = parse(raw, region)
        except PhoneError as err:
            rows.append((line, *where, raw, None, str(err), None))
            continue
        if countries and country not in countries:
            rows.append((line, *where, raw, None, "country %s is not allowed in this campaign "
                         "(countries: %s)" % (country, ", ".join(countries)), None))
        else:
            rows.append((line, *where, raw, extra, None, e164))
    return rows, blank


class Preparer:
    """``submit(begin, end, first_line)`` -> a job whose ``get()`` is ``_prepare_segment``'s
    result for ``table.text[begin:end]``, computed in ``pool`` (``csvreader.pool_for``) or,
    without one, in this process."""

    def __init__(self, table, region, pool=None, countries=()):
        self.table, self.region, self.pool = table, region, pool
        self.countries = tuple(countries or ())

    def submit(self, begin, end, first_line):
        table = self.table
        args = (table.text[begin:end], begin, first_line, table.layout, self.region,
                self.countries, table.delimiter, table.name)
        if self.pool is None:
            return _Done(_prepare_segment(args))
        return _Pooled(self.pool.apply_async(_prepare_segment, (args,)))


class _Done:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class _Pooled:
    def __init__(self, job):
        self.job = job

    def get(self):
        try:
            return self.job.get(WORKER_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            raise CsvImportError("the worker processes reading the file did not answer within "
                                 "%d s (is the machine overloaded?); nothing was imported: "
                                 "import again" % WORKER_TIMEOUT_S) from None


class Progress:
    """Calls ``progress(rows, bytes_done, total_bytes)`` when ``PROGRESS_EVERY_S`` passed since
    the last call (the first after the first chunk), and ``end()`` once at the end."""

    def __init__(self, progress, table, counts):
        self.progress, self.counts = progress, counts
        self.sizes = (len(table.text), table.total_bytes)
        self.last, self.reported = None, None

    def step(self, chars_done):
        if self.progress is None:
            return
        now = time.monotonic()
        if self.last is None or now - self.last >= PROGRESS_EVERY_S:
            self.last, self.reported = now, self.counts.rows
            total_chars, total_bytes = self.sizes
            self.progress(self.counts.rows, chars_done * total_bytes // max(total_chars, 1),
                          total_bytes)

    def end(self):
        if self.progress is not None and self.reported != self.counts.rows:
            self.progress(self.counts.rows, self.sizes[1], self.sizes[1])


def settled(table, counts, preparer, progress):
    """Lists of ``_prepare_segment`` rows, a segment of about ``csvreader.CHUNK_ROWS`` rows
    at a time, in file order; up to three segments are prepared ahead by the pool. Blank
    records add to ``counts.blank``; ``progress`` (a Progress) is stepped after each segment."""
    pending = collections.deque()
    size = max(int(csvreader.CHUNK_ROWS * table.chars_per_row), 1)
    text, line = table.text, table.first_line
    for begin, end in csvreader.segments(text, table.start, size, table.delimiter):
        pending.append((preparer.submit(begin, end, line), end))
        line += csvreader.line_ends(text, begin, end)
        if len(pending) >= 3:
            yield from _settle(pending.popleft(), counts, progress)
    while pending:
        yield from _settle(pending.popleft(), counts, progress)
    progress.end()


def _settle(item, counts, progress):
    job, end = item
    rows, blank = job.get()
    counts.blank += blank
    yield rows
    progress.step(end)
