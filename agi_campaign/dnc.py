"""Do-Not-Call lists: entries are normalised E.164 numbers, so every spelling of a number matches.

A list must be configured (``dnc_lists:`` in the YAML) before numbers go on it or come off it:
``add``, ``remove`` and ``import_file`` take ``known_lists`` and raise NotFoundError naming the
valid lists, so a typo cannot create a list that no campaign checks. Lookups (``check``,
``lists_holding``, ``Lookup``) accept any names.

``import_file`` reads one number per line, or the first column of a CSV, with ``csvreader``'s
encoding rule (UTF-8 with or without BOM; anything else is a CsvImportError), stray-quote rule
(a quoted field never closed, or running over a line that looks like a row, refuses the file)
and header rule (a first cell named phone/number/... or one with letters that is not a number
is a header). It runs in one transaction, and ``rows == added + already + invalid``: a number
listed twice in the file counts as ``already`` the second time.
"""
import dataclasses
import os

from agi_campaign import csvreader, phone
from agi_campaign.clock import to_db
from agi_campaign.db import database
from agi_campaign.errors import NotFoundError, PhoneError
from agi_campaign.models import DncEntry

LOOKUP_CHUNK = 500          # phones per IN (...) query: under SQLite's 999-variable floor
INSERT_CHUNK = 200          # 4 fields a row
PRELOAD_MAX = 2_000_000


@dataclasses.dataclass
class DncImportReport:
    list_name: str
    filename: str
    rows: int = 0
    added: int = 0
    already: int = 0
    invalid: int = 0
    blank: int = 0
    rejects: list = dataclasses.field(default_factory=list)    # (line, raw, reason)

    def summary(self):
        text = "%s -> Do-Not-Call list %s: %d rows: %d added, %d already listed, %d invalid" % (
            os.path.basename(self.filename), self.list_name, self.rows, self.added,
            self.already, self.invalid)
        for line, raw, reason in self.rejects[:10]:
            text += "\n  line %d: %r: %s" % (line, raw[:40], reason)
        if len(self.rejects) > 10:
            text += "\n  ... and %d more invalid rows" % (len(self.rejects) - 10)
        return text

    def to_dict(self):
        return dataclasses.asdict(self)


def require_list(list_name, known_lists):
    """NotFoundError unless ``list_name`` is one of the configured lists."""
    known = sorted(known_lists or ())
    if list_name not in known:
        raise NotFoundError("Do-Not-Call list %r is not configured; configured lists: %s "
                            "(add it under dnc_lists: in the configuration)"
                            % (list_name, ", ".join(known) or "none"))


def _normalized(raw, region):
    try:
        return phone.normalize(raw, region)
    except PhoneError as err:
        raise PhoneError("%r is not a valid phone number (region %s): %s"
                         % (raw, region, err)) from None


def lists_holding(phones, lists=None):
    """``{e164: [list names]}`` for those of ``phones`` that are on any of ``lists``
    (None: on any list at all; an empty collection: on none)."""
    phones = list(dict.fromkeys(phones))
    if lists is not None:
        lists = list(lists)
        if not lists:
            return {}
    found = {}
    for i in range(0, len(phones), LOOKUP_CHUNK):
        cond = DncEntry.phone.in_(phones[i:i + LOOKUP_CHUNK])
        if lists is not None:
            cond &= DncEntry.list_name.in_(lists)
        query = (DncEntry.select(DncEntry.phone, DncEntry.list_name).where(cond)
                 .order_by(DncEntry.list_name).tuples())
        for number, name in query:
            found.setdefault(number, []).append(name)
    return found


class Lookup:
    """``holding(phones)`` -> ``{e164: [list names]}`` for many chunks of numbers against
    fixed ``lists``: the lists are read into memory once when they hold at most
    ``PRELOAD_MAX`` entries (one query instead of one per chunk), else queried per chunk."""

    def __init__(self, lists):
        self.lists = list(lists)
        self.preloaded = None
        if not self.lists:
            self.preloaded = {}
            return
        where = DncEntry.list_name.in_(self.lists)
        if DncEntry.select().where(where).limit(PRELOAD_MAX + 1).count() <= PRELOAD_MAX:
            self.preloaded = {}
            query = (DncEntry.select(DncEntry.phone, DncEntry.list_name).where(where)
                     .order_by(DncEntry.list_name).tuples())
            for number, name in query:
                self.preloaded.setdefault(number, []).append(name)

    def holding(self, phones):
        if self.preloaded is None:
            return lists_holding(phones, self.lists)
        table = self.preloaded
        return {p: table[p] for p in phones if p in table}


def check(raw, region, lists=None):
    """Names of the lists (of ``lists``, or of all) holding the number; PhoneError if invalid."""
    e164 = _normalized(raw, region)
    return lists_holding([e164], lists).get(e164, [])


def _add_phones(list_name, phones, now, source):
    """Insert the distinct E.164 numbers not yet on the list; returns how many were added."""
    added = 0
    stamp = to_db(now)
    for i in range(0, len(phones), LOOKUP_CHUNK):
        part = phones[i:i + LOOKUP_CHUNK]
        have = {p for (p,) in DncEntry.select(DncEntry.phone).where(
            (DncEntry.list_name == list_name) & DncEntry.phone.in_(part)).tuples()}
        new = [(list_name, p, stamp, source) for p in part if p not in have]
        for j in range(0, len(new), INSERT_CHUNK):
            DncEntry.insert_many(new[j:j + INSERT_CHUNK],
                                 fields=[DncEntry.list_name, DncEntry.phone, DncEntry.added_at,
                                         DncEntry.source]).execute()
        added += len(new)
    return added


def add(list_name, raws, region, now, source, *, known_lists):
    """Put numbers on a list. Returns ``(added, already, invalid)``; ``invalid`` is a list of
    ``(raw, reason)``; numbers given twice count as ``already`` the second time."""
    require_list(list_name, known_lists)
    invalid, phones = [], []
    for raw in raws:
        try:
            phones.append(phone.normalize(raw, region))
        except PhoneError as err:
            invalid.append((raw, str(err)))
    distinct = list(dict.fromkeys(phones))
    with database.atomic():
        added = _add_phones(list_name, distinct, now, source)
    return added, len(phones) - added, invalid


def remove(list_name, raws, region, *, known_lists):
    """Take numbers off a list; returns how many were on it. An invalid number raises
    PhoneError naming it, before anything is removed."""
    require_list(list_name, known_lists)
    phones = list(dict.fromkeys(_normalized(raw, region) for raw in raws))
    removed = 0
    with database.atomic():
        for i in range(0, len(phones), LOOKUP_CHUNK):
            removed += DncEntry.delete().where(
                (DncEntry.list_name == list_name)
                & DncEntry.phone.in_(phones[i:i + LOOKUP_CHUNK])).execute()
    return removed


def import_file(list_name, path, region, now, *, known_lists, source=None, workers=None):
    """Add every number of a file to a list, in one transaction; returns a DncImportReport.
    ``workers``: normalising processes, as for ``importer.import_csv``."""
    require_list(list_name, known_lists)
    path = str(path)
    text, total_bytes = csvreader.read_text(path)
    report = DncImportReport(list_name=list_name, filename=path)
    source = source or ("file " + os.path.basename(path))[:DncEntry.source.max_length]
    rows = _file_rows(text, region, report)
    with csvreader.pool_for(workers, total_bytes) as pool, database.atomic():
        normalizer = csvreader.Normalizer(region, pool)
        seen = set()
        chunks = [rows[start:start + csvreader.CHUNK_ROWS]
                  for start in range(0, len(rows), csvreader.CHUNK_ROWS)]
        jobs = [normalizer.submit([raw if not problem else "" for _, raw, problem in chunk])
                for chunk in chunks]                  # all queued: the pool works ahead
        for chunk, job in zip(chunks, jobs):
            fresh = []
            for (line, raw, problem), (e164, why) in zip(chunk, job.get()):
                if problem or why:
                    report.invalid += 1
                    report.rejects.append((line, raw, problem or why))
                elif e164 in seen:
                    report.already += 1
                else:
                    seen.add(e164)
                    fresh.append(e164)
            added = _add_phones(list_name, fresh, now, source)
            report.added += added
            report.already += len(fresh) - added
        report.rows = len(rows)
        if report.rows != report.added + report.already + report.invalid:
            raise AssertionError("DNC import counts do not add up, rolled back: %r" % (report,))
    return report


def _file_rows(text, region, report):
    """``(line, raw, problem)`` for each data row: the first cell of each non-blank record."""
    rows = []
    first = True
    for line, cells, _ in csvreader.iter_records(text, region, os.path.basename(report.filename)):
        if csvreader.is_blank(cells):
            report.blank += 1
            continue
        raw = cells[0]
        if first:
            first = False
            if (raw.strip().lower() in csvreader.PHONE_HEADERS
                    or csvreader.looks_like_header(raw, region)):
                continue
        rows.append((line, raw, csvreader.record_problem(cells)))
    return rows
