"""A campaign's numbers after their import: listing, removing and exporting them.

- ``list_numbers`` and ``export`` read in keyset pages (``id > last ORDER BY id LIMIT page``,
  served by the index ``number(campaign_id)`` whose entries end in the row id), so memory stays
  constant and each page costs the same at any size. ``export`` writes the numbers that existed
  when it started (ids up to the campaign's largest at that moment): its two passes see the
  same rows.
- ``remove`` never deletes: a removed number gets status ``removed`` and keeps its attempts
  and results. The claim takes only ``pending`` numbers, ``campaign reset`` re-arms only
  ``failed`` (and ``done`` with ``--all``), a late result updates only an ``in_flight`` number
  and completion waits only for ``pending`` ones, so a removed number is never dialed again
  and does not hold a campaign back from COMPLETED. A number in flight is refused (its call
  would overwrite the status when it ends): remove it after the call ends.
- CSV written here is for spreadsheets: every cell that carries text from outside (raw, extra
  columns and their names) goes through ``csvout.neutralize``. The E.164 ``phone`` is written
  bare, as ``dnc.export`` does: it is ``+`` and digits, validated at import, so no formula can
  hide in it, and the file stays readable by ``numbers import`` and ``dnc import``.
"""
import csv
import dataclasses
import json

from agi_campaign import csvout, phone
from agi_campaign.clock import from_db, show_time, to_db
from agi_campaign.db import database
from agi_campaign.errors import PhoneError, UsageError
from agi_campaign.models import Campaign, Number, NumberStatus, attempts_in_id_order

PAGE = 1000
CHUNK = 500                 # phones per IN (...): under SQLite's 999-variable floor
REMOVABLE = (NumberStatus.PENDING.value, NumberStatus.DONE.value, NumberStatus.FAILED.value,
             NumberStatus.DNC.value)
IN_FLIGHT_REASON = "in flight; remove it after the call ends"
LIST_COLUMNS = ("phone", "raw", "status", "attempts", "last_outcome", "next_attempt_at",
                "updated_at")
EXPORT_COLUMNS = ("phone", "raw", "status", "attempts", "last_outcome", "last_attempt_at",
                  "last_dial_status", "last_digits", "last_opted_out", "last_answered_at",
                  "last_ended_at", "last_hangup_cause", "last_amd_status", "last_amd_cause")


@dataclasses.dataclass(frozen=True)
class NumberRow:
    phone: str                  # E.164
    raw: str                    # as it was in the imported file
    status: str                 # a NumberStatus value
    attempts: int
    last_outcome: str           # an Outcome value, "dnc", or None before the first result
    next_attempt_at: object     # aware UTC datetime
    updated_at: object          # aware UTC datetime
    extra: dict                 # the file's other columns


def _pages(campaign_id, columns, status=None, upto=None, page=PAGE):
    """Lists of ``(id, *columns)`` tuples of the campaign's numbers in id order, ``page`` rows
    a query (keyset pagination: no OFFSET, no query reads more than its page plus the rows of
    other statuses it skips). Plain SQL: Peewee's row conversion cost 3/4 of a listing."""
    p = database.param
    sql = "SELECT id, %s FROM number WHERE campaign_id = %s AND id > %s" % (
        ", ".join(columns), p, p)
    params = [campaign_id, 0]
    if status is not None:
        sql += " AND status = %s" % p
        params.append(status)
    if upto is not None:
        sql += " AND id <= %s" % p
        params.append(upto)
    sql += " ORDER BY id LIMIT %s" % p
    params.append(page)
    while True:
        rows = database.execute_sql(sql, params).fetchall()
        if rows:
            yield rows
        if len(rows) < page:
            return
        params[1] = rows[-1][0]


def _status_value(status):
    """``status`` (a NumberStatus or its value, or None) as stored; UsageError if unknown."""
    if status is None:
        return None
    try:
        return NumberStatus(status).value
    except ValueError:
        raise UsageError("number status %r is not known; use one of %s"
                         % (status, ", ".join(s.value for s in NumberStatus))) from None


def list_numbers(campaign_id, status=None, page=PAGE):
    """The campaign's numbers (only those in ``status`` when given), as NumberRow in id (import)
    order; an iterator reading ``page`` rows at a time."""
    columns = ("phone", "raw", "status", "attempts", "last_outcome", "next_attempt_at",
               "updated_at", "extra")
    for rows in _pages(campaign_id, columns, _status_value(status), page=page):
        for _, e164, raw, st, attempts, outcome, next_at, updated, extra in rows:
            yield NumberRow(e164, raw, st, attempts, outcome, from_db(next_at), from_db(updated),
                            _extra(extra))


def _extra(text):
    return json.loads(text) if text and text != "{}" else {}


def _iso(value):
    """CSV times: ISO 8601 in UTC with its offset, to the second (machine-friendly whatever
    the campaign's zone; the text list shows the campaign's zone)."""
    return show_time(value, "UTC", iso=True) if value is not None else ""


def write_list(rows, out, as_csv=False, zone="UTC"):
    """Write NumberRows to the text stream ``out``; returns how many.

    Text: one line per number, ``phone status attempts last_outcome`` in aligned columns
    (``-`` before any result), then ``next <time>`` (in ``zone``) for a pending number. CSV: a
    header of LIST_COLUMNS, then one row per number.
    """
    count = 0
    if as_csv:
        writer = csv.writer(out)
        writer.writerow(LIST_COLUMNS)
        for r in rows:
            writer.writerow([r.phone, csvout.neutralize(r.raw), r.status, r.attempts,
                             r.last_outcome or "", _iso(r.next_attempt_at), _iso(r.updated_at)])
            count += 1
        return count
    for r in rows:
        line = "%-16s %-9s %3d  %s" % (r.phone, r.status, r.attempts, r.last_outcome or "-")
        if r.status == NumberStatus.PENDING.value and r.next_attempt_at is not None:
            line = "%-42s next %s" % (line, show_time(r.next_attempt_at, zone))
        out.write(line + "\n")
        count += 1
    return count


@dataclasses.dataclass
class Removal:
    """What ``remove`` did, each a list of E.164 numbers in the order given; ``given`` maps each
    to the text it was given as."""
    removed: list = dataclasses.field(default_factory=list)
    already: list = dataclasses.field(default_factory=list)      # removed before
    not_found: list = dataclasses.field(default_factory=list)    # not in the campaign
    in_flight: list = dataclasses.field(default_factory=list)    # refused, left alone
    given: dict = dataclasses.field(default_factory=dict)

    def _named(self, e164):
        raw = self.given.get(e164, e164)
        return e164 if raw.strip() == e164 else "%s (%s)" % (e164, raw.strip())

    def summary(self, campaign):
        """``campaign c1: removed 2, already removed 0, not in the campaign 1, in flight 1``,
        then a line for each number not removed (``  +12025550123: in flight; remove it after
        the call ends``)."""
        lines = ["campaign %s: removed %d, already removed %d, not in the campaign %d, in "
                 "flight %d" % (campaign, len(self.removed), len(self.already),
                                len(self.not_found), len(self.in_flight))]
        lines += ["  %s: not in campaign %s" % (self._named(p), campaign) for p in self.not_found]
        lines += ["  %s: %s" % (self._named(p), IN_FLIGHT_REASON) for p in self.in_flight]
        return "\n".join(lines)

    def exit_status(self):
        """1 when a number was refused because it was in flight (run it again after the call
        ends), else 0 (numbers not in the campaign are reported, as by ``dnc remove``)."""
        return 1 if self.in_flight else 0


def _campaign_name(campaign_id):
    row = Campaign.get_or_none(Campaign.id == campaign_id)
    return row.name if row is not None else "#%s" % campaign_id


def remove(campaign_id, raws, region, now):
    """Mark the campaign's numbers matching ``raws`` (normalised with ``region``) as removed,
    in one transaction; returns a Removal. Numbers in flight are left alone and reported.

    Every number is checked first: an invalid one raises PhoneError naming each invalid number,
    and nothing changes. The UPDATE's own condition (status not in flight) decides what is
    removed, so a number claimed at the same moment is reported in flight, never removed
    under a live call.
    """
    result = Removal()
    bad = []
    for raw in raws:
        try:
            e164 = phone.normalize(raw, region)
        except PhoneError as err:
            bad.append("%r (%s)" % (raw, err))
            continue
        result.given.setdefault(e164, raw)
    if bad:
        raise PhoneError("numbers remove %s: not a valid phone number (region %s): %s; nothing "
                         "was removed, fix or drop them and run it again"
                         % (_campaign_name(campaign_id), region, ", ".join(bad)))
    phones = list(result.given)
    p = database.param
    stamp = to_db(now)
    with database.atomic():
        removed, found = set(), {}
        for i in range(0, len(phones), CHUNK):
            part = phones[i:i + CHUNK]
            marks = ", ".join([p] * len(part))
            cursor = database.execute_sql(
                "UPDATE number SET status = %s, updated_at = %s WHERE campaign_id = %s AND "
                "status IN (%s) AND phone IN (%s) RETURNING phone"
                % (p, p, p, ", ".join([p] * len(REMOVABLE)), marks),
                [NumberStatus.REMOVED.value, stamp, campaign_id, *REMOVABLE, *part])
            removed.update(e164 for (e164,) in cursor.fetchall())
            found.update(database.execute_sql(
                "SELECT phone, status FROM number WHERE campaign_id = %s AND phone IN (%s)"
                % (p, marks), [campaign_id, *part]).fetchall())
    for e164 in phones:
        if e164 in removed:
            result.removed.append(e164)
        elif e164 not in found:
            result.not_found.append(e164)
        elif found[e164] == NumberStatus.REMOVED.value:
            result.already.append(e164)
        else:       # in flight when the UPDATE ran (it may have ended since)
            result.in_flight.append(e164)
    return result


def extra_keys(campaign_id, upto=None, page=PAGE):
    """The names of the extra columns of the campaign's numbers (ids up to ``upto``), in the
    order first met: one streaming pass."""
    keys = {}
    for rows in _pages(campaign_id, ("extra",), upto=upto, page=page):
        for _, extra in rows:
            keys.update(dict.fromkeys(_extra(extra)))
    return list(keys)


def _latest_attempts(first_id, last_id):
    """``{number id: (created_at, dial_status, digits, opted_out, answered_at, ended_at,
    hangup_cause, amd_status, amd_cause)}`` of the latest attempt of each number whose id is
    in ``first_id..last_id`` (the index attempt(number_id) serves the range)."""
    p = database.param
    rows = database.execute_sql(
        "SELECT number_id, created_at, dial_status, digits, opted_out, answered_at, ended_at, "
        "hangup_cause, amd_status, amd_cause FROM attempt WHERE "
        "number_id >= %s AND number_id <= %s ORDER BY number_id, id" % (p, p),
        (first_id, last_id)).fetchall()
    return {row[0]: row[1:] for row in rows}


def _yes_no(flag):
    """opted_out: 'yes' when the key was pressed, '' otherwise (not asked or not pressed)."""
    return "yes" if flag else ""


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return csvout.neutralize(value)


def export(campaign_id, out, page=PAGE):
    """Write the campaign's numbers as CSV to the text stream ``out``; returns how many rows.

    Columns: EXPORT_COLUMNS (``last_attempt_at``: when the latest attempt was placed, UTC ISO
    8601; ``last_dial_status``: its Asterisk DIALSTATUS; ``last_digits``: the keys it collected
    or its opt-out key; ``last_opted_out``: ``yes`` when the callee opted out; when it was
    answered and ended, its hangup cause, AMD status and cause), then every extra column of the
    import (a first pass collects their names). Rows in id order; a number without a value for an
    extra column gets an empty cell.
    """
    upto = (Number.select(Number.id).where(Number.campaign == campaign_id)
            .order_by(Number.id.desc()).limit(1).scalar())
    keys = extra_keys(campaign_id, upto, page) if upto is not None else []
    writer = csv.writer(out)
    writer.writerow(list(EXPORT_COLUMNS) + [csvout.neutralize(k) for k in keys])
    if upto is None:
        return 0
    count = 0
    columns = ("phone", "raw", "status", "attempts", "last_outcome", "extra")
    for rows in _pages(campaign_id, columns, upto=upto, page=page):
        latest = _latest_attempts(rows[0][0], rows[-1][0])
        for number_id, e164, raw, status, attempts, outcome, extra in rows:
            (at, dial_status, digits, opted_out, answered, ended, cause, amd_status,
             amd_cause) = latest.get(number_id, (None,) * 9)
            values = _extra(extra)
            writer.writerow([e164, _cell(raw), status, attempts, outcome or "",
                             _iso(from_db(at)), _cell(dial_status), _cell(digits),
                             _yes_no(opted_out), _iso(from_db(answered)), _iso(from_db(ended)),
                             _cell(cause), _cell(amd_status), _cell(amd_cause)]
                            + [_cell(values.get(k)) for k in keys])
            count += 1
    return count


ATTEMPT_COLUMNS = ("phone", "seq", "server", "created_at", "answered_at", "ended_at", "outcome",
                   "dial_status", "hangup_cause", "duration_s", "billsec_s", "dest_result",
                   "amd_status", "amd_cause", "digits", "opted_out", "note")
ATTEMPT_FIELDS = ("id", "phone", "seq", "server", "status", "created_at", "answered_at",
                  "ended_at", "outcome", "dial_status", "hangup_cause", "duration_s",
                  "billsec_s", "dest_result", "amd_status", "amd_cause", "digits", "opted_out",
                  "note")


def last_attempt_id(campaign_id):
    """The id of the campaign's latest attempt (0 when it has none)."""
    p = database.param
    return database.execute_sql("SELECT MAX(id) FROM attempt WHERE campaign_id = %s" % p,
                                (campaign_id,)).fetchone()[0] or 0


def attempt_page(campaign_id, after=0, page=PAGE, outcome=None, since=None, phone_e164=None,
                 upto=None):
    """At most ``page`` attempt tuples (ATTEMPT_FIELDS, times as stored) of the campaign with
    an id above ``after`` (and at most ``upto``), in id order: one keyset page (no OFFSET: each
    page costs the same at any depth). Filters: ``outcome`` (an Outcome value), ``since`` (an
    aware datetime: placed at or after it), ``phone_e164`` (the attempts of that number)."""
    p = database.param
    sql = ("SELECT a.id, n.phone, a.seq, a.server, a.status, a.created_at, a.answered_at, "
           "a.ended_at, a.outcome, a.dial_status, a.hangup_cause, a.duration_s, a.billsec_s, "
           "a.dest_result, a.amd_status, a.amd_cause, a.digits, a.opted_out, a.note "
           "FROM %s JOIN number n ON n.id = a.number_id "
           "WHERE a.campaign_id = %s AND a.id > %s" % (attempts_in_id_order(), p, p))
    params = [campaign_id, after]
    for clause, value in (("a.outcome = %s", outcome), ("a.created_at >= %s", to_db(since)),
                          ("n.phone = %s", phone_e164), ("a.id <= %s", upto)):
        if value is not None:
            sql += " AND " + clause % p
            params.append(value)
    sql += " ORDER BY a.id LIMIT %s" % p
    params.append(page)
    return database.execute_sql(sql, params).fetchall()


def attempt_pages(campaign_id, page=PAGE, **filters):
    """``attempt_page`` after ``attempt_page`` until the last (constant memory)."""
    after = 0
    while True:
        rows = attempt_page(campaign_id, after, page, **filters)
        if rows:
            yield rows
        if len(rows) < page:
            return
        after = rows[-1][0]


def attempt_csv_row(row):
    """One ATTEMPT_COLUMNS row of CSV cells from an ``attempt_pages`` tuple."""
    (_, e164, seq, server, _, created, answered, ended, outcome, dial_status, cause, duration,
     billsec, dest, amd_status, amd_cause, digits, opted_out, note) = row
    return [e164, seq, _cell(server), _iso(from_db(created)), _iso(from_db(answered)),
            _iso(from_db(ended)), outcome or "", _cell(dial_status), _cell(cause),
            _cell(duration), _cell(billsec), _cell(dest), _cell(amd_status), _cell(amd_cause),
            _cell(digits), _yes_no(opted_out), _cell(note)]


def export_attempts(campaign_id, out, page=PAGE):
    """Write every attempt of the campaign as CSV (ATTEMPT_COLUMNS: the audit trail - when it
    was placed, answered and ended, its outcome, Dial status and cause, AMD result, keys and
    opt-out), in id order, read in keyset pages (constant memory); returns how many rows."""
    writer = csv.writer(out)
    writer.writerow(ATTEMPT_COLUMNS)
    count = 0
    for rows in attempt_pages(campaign_id, page=page):
        writer.writerows(attempt_csv_row(row) for row in rows)
        count += len(rows)
    return count
