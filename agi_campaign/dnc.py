"""Do-Not-Call lists: entries are normalised E.164 numbers, so every spelling of a number matches.

A list must be configured (``dnc_lists:`` in the YAML) before numbers go on it or come off it:
``add``, ``remove`` and ``import_file`` take ``known_lists`` and raise NotFoundError naming the
valid lists, so a typo cannot create a list that no campaign checks. Lookups (``check``,
``lists_holding``, ``Lookup``) accept any names.

``import_file`` reads a file exactly as a numbers import does (``csvlayout.open_table``:
encoding, delimiter, header, phone column by ``--phone-column``, header name or content, stray
quotes) and writes the same rejects file, so any file ``numbers import`` accepts is read whole
here too. It runs in one transaction, and ``rows == added + already + invalid``: a number
listed twice in the file counts as ``already`` the second time. Its exit status follows
``csvout.exit_status`` (``added + already`` rows taken).

``entries(list_name)`` streams a list in phone order; ``export(lists, out)`` writes
``list,phone,added_at,source`` rows, a file ``import_file`` reads back (its ``phone`` header
names the column).
"""
import contextlib
import csv
import dataclasses
import os

import phonenumbers

from agi_campaign import csvlayout, csvout, csvreader, phone
from agi_campaign.clock import from_db, show_time, to_db
from agi_campaign.db import database
from agi_campaign.errors import NotFoundError, PhoneError, UsageError
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
    lines: int = 0
    read_as: str = ""
    rejects_path: str = None
    dry_run: bool = False
    shown: list = dataclasses.field(default_factory=list)    # first (line, raw, reason)

    def summary(self):
        """Counts, how the file was read, and the first invalid rows."""
        text = "%s -> Do-Not-Call list %s: %d rows: %d added, %d already listed, %d invalid" % (
            os.path.basename(self.filename), self.list_name, self.rows, self.added,
            self.already, self.invalid)
        text += csvout.summary_details(self)
        lines = [text, "read as: " + self.read_as]
        if self.invalid:
            lines += ["rows not added:"] + csvout.show_rejects(self.shown, self.invalid)
        return "\n".join(lines)

    def exit_status(self):
        return csvout.exit_status(self.rows, self.added + self.already, self.invalid)

    def to_dict(self):
        return dataclasses.asdict(self)


def require_list(list_name, known_lists):
    """NotFoundError unless ``list_name`` is one of the configured lists."""
    known = sorted(known_lists or ())
    if list_name not in known:
        raise NotFoundError("Do-Not-Call list %r is not configured; configured lists: %s "
                            "(add it under dnc_lists: in the configuration)"
                            % (list_name, ", ".join(known) or "none"))


def refuse_invalid(raws, region, where):
    """PhoneError naming every invalid number of ``raws``, before anything is written (all or
    nothing, like ``remove``); ``where`` names the command (``dnc add blocked``)."""
    bad = []
    for raw in raws:
        try:
            phone.normalize(raw, region)
        except PhoneError as err:
            bad.append("%r (%s)" % (raw, err))
    if bad:
        raise PhoneError("%s: not a valid phone number (region %s): %s; nothing was added, "
                         "fix or drop them and run it again" % (where, region, ", ".join(bad)))


def region_for(config, given, raws=None, option="--region"):
    """The region national numbers are read in: ``given`` (the ``option`` the user set), else
    the campaigns' one region; none is needed when every number of ``raws`` has its country
    code (+...). UsageError naming ``option`` otherwise."""
    if given:
        if given.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise UsageError("%s %r: not a two-letter region known to phonenumbers, like "
                             "US, GB or DE" % (option, given))
        return given.upper()
    regions = sorted({c.region for c in config.campaigns.values()})
    if len(regions) == 1:
        return regions[0]
    if raws and all(str(raw).strip().startswith("+") for raw in raws):
        return regions[0] if regions else "US"  # any region reads +<country code> alike
    raise UsageError("dnc: the campaigns use %s; give %s (e.g. %s %s) to say how numbers "
                     "without a country code are read"
                     % ("regions " + ", ".join(regions) if regions else "no region", option,
                        option, regions[0] if regions else "US"))


def normalized(raw, region):
    """The E.164 form of ``raw``; PhoneError naming it and the region."""
    try:
        return phone.normalize(raw, region)
    except PhoneError as err:
        raise PhoneError("%r is not a valid phone number (region %s): %s"
                         % (raw, region, err)) from None


def lists_holding(phones, lists=None):
    """``{e164: [list names]}`` for those of ``phones`` that are on any of ``lists``
    (None: on any list at all; an empty collection: on none).

    Plain SQL: on the claim path (claim.blocked_phones, 100 numbers a claim) building the
    query through Peewee cost more than running it (bench/, benchmark 4)."""
    phones = list(dict.fromkeys(phones))
    if lists is not None:
        lists = list(lists)
        if not lists:
            return {}
    p = database.param
    listed = "" if lists is None else " AND list_name IN (%s)" % ", ".join([p] * len(lists))
    found = {}
    for i in range(0, len(phones), LOOKUP_CHUNK):
        part = phones[i:i + LOOKUP_CHUNK]
        rows = database.execute_sql(
            "SELECT phone, list_name FROM dnc_entry WHERE phone IN (%s)%s ORDER BY list_name"
            % (", ".join([p] * len(part)), listed), part + (lists or []))
        for number, name in rows:
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
    e164 = normalized(raw, region)
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
    """Take numbers off a list; returns ``(removed, not_listed)``, lists of E.164 numbers in
    the order given. An invalid number raises PhoneError naming it, before anything is
    removed."""
    require_list(list_name, known_lists)
    phones = list(dict.fromkeys(normalized(raw, region) for raw in raws))
    removed = []
    with database.atomic():
        for i in range(0, len(phones), LOOKUP_CHUNK):
            part = phones[i:i + LOOKUP_CHUNK]
            where = (DncEntry.list_name == list_name) & DncEntry.phone.in_(part)
            listed = {p for (p,) in DncEntry.select(DncEntry.phone).where(where).tuples()}
            DncEntry.delete().where(where).execute()
            removed += [p for p in part if p in listed]
    gone = set(removed)
    return removed, [p for p in phones if p not in gone]


def import_file(list_name, path, region, now, *, known_lists, source=None, workers=None,
                dry_run=False, rejects_path=None, phone_column=None, delimiter=None,
                encoding=None, progress=None):
    """Add every number of a file to a list, in one transaction; returns a DncImportReport.
    ``workers``, ``dry_run``, ``rejects_path``, ``phone_column``, ``delimiter``, ``encoding``,
    ``progress``: as for ``importer.import_csv``."""
    require_list(list_name, known_lists)
    path = str(path)
    table = csvlayout.open_table(path, region, phone_column, delimiter, encoding,
                                   "dnc")
    report = DncImportReport(list_name=list_name, filename=path, blank=table.blank,
                             lines=table.lines, read_as=table.read_as, dry_run=dry_run)
    source = source or ("file " + os.path.basename(path))[:DncEntry.source.max_length]
    rejects = csvout.open_rejects(path, rejects_path, dry_run, table.layout.header)
    try:
        transaction = contextlib.nullcontext() if dry_run else database.atomic()
        with csvreader.pool_for(workers, table.total_bytes) as pool, transaction:
            preparer = csvlayout.Preparer(table, region, pool)
            seen = set()
            for rows in csvlayout.settled(table, report, preparer,
                                          csvlayout.Progress(progress, table, report)):
                fresh = []
                for line, begin, end, raw, _, why, e164 in rows:
                    if why is not None:
                        report.invalid += 1
                        rejects.write(line, raw, why, table.cells(begin, end))
                    elif e164 in seen:
                        report.already += 1
                    else:
                        seen.add(e164)
                        fresh.append(e164)
                report.rows += len(rows)
                added = _new_phones(list_name, fresh) if dry_run else _add_phones(
                    list_name, fresh, now, source)
                report.added += len(added) if dry_run else added
                report.already += len(fresh) - (len(added) if dry_run else added)
            if report.rows != report.added + report.already + report.invalid:
                raise AssertionError("DNC import counts do not add up, rolled back: %r"
                                     % (report,))
    except BaseException:
        rejects.discard()
        raise
    report.rejects_path = csvout.commit_rejects(rejects, path)
    report.shown = rejects.shown
    return report


def _new_phones(list_name, phones):
    """Those of ``phones`` not on the list (a dry run's "would be added")."""
    new = []
    for i in range(0, len(phones), LOOKUP_CHUNK):
        part = phones[i:i + LOOKUP_CHUNK]
        have = {p for (p,) in DncEntry.select(DncEntry.phone).where(
            (DncEntry.list_name == list_name) & DncEntry.phone.in_(part)).tuples()}
        new += [p for p in part if p not in have]
    return new


def entries(list_name, page=5000, after=""):
    """``(phone, added_at, source)`` of every entry of a list with a phone after ``after``, in
    phone order, read in pages (constant memory)."""
    while True:
        rows = list(DncEntry.select(DncEntry.phone, DncEntry.added_at, DncEntry.source)
                    .where((DncEntry.list_name == list_name) & (DncEntry.phone > after))
                    .order_by(DncEntry.phone).limit(page).tuples())
        for number, added_at, source in rows:
            yield number, from_db(added_at), source
        if len(rows) < page:
            return
        after = rows[-1][0]


def export(lists, out):
    """Write ``list,phone,added_at,source`` rows of ``lists`` to the text stream ``out`` (cells
    neutralised for spreadsheets); returns how many rows."""
    writer = csv.writer(out)
    writer.writerow(["list", "phone", "added_at", "source"])
    count = 0
    for name in lists:
        for number, added_at, source in entries(name):
            writer.writerow([csvout.neutralize(name), number,
                             show_time(added_at, "UTC", iso=True),
                             csvout.neutralize(source or "")])
            count += 1
    return count
