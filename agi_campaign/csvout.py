"""CSV files written for people: rejected rows, exports opened in spreadsheets; and the exit
status an import reports (``exit_status``: 0 when every row was taken - imported, a duplicate,
on a DNC list -, ``EXIT_SOME_REJECTED`` when some rows were invalid and at least one was
taken, ``EXIT_NOTHING_IMPORTED`` when none was taken and the file had no data row or an
invalid one).

Formula injection: a cell starting with ``= + - @`` (or tab, CR) would run as a formula in a
spreadsheet, so every cell written here gets a leading ``'`` (``neutralize``) and shows as
text. The data stays as it was in the database.
"""
import contextlib
import csv
import os
import tempfile

from agi_campaign.errors import CsvImportError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
RAW_CHARS = 100             # Number.raw's length: a longer raw is cut to it in rejects too
CELL_CHARS = 1000           # csvreader.MAX_FIELD_CHARS
SHOWN = 50                  # rejects kept in memory to print (dry runs)
EXIT_SOME_REJECTED = 3
EXIT_NOTHING_IMPORTED = 4


def neutralize(cell):
    """A cell for a spreadsheet-bound CSV: a leading ' keeps formula-like text as text."""
    text = str(cell)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class NoRejects:
    """Rejected rows counted, the first ``SHOWN`` kept (to print); no file (dry runs)."""

    def __init__(self):
        self.count = 0
        self.shown = []

    def write(self, line, raw, reason, cells):
        self.count += 1
        if len(self.shown) < SHOWN:
            self.shown.append((line, raw, reason))

    def commit(self):
        return None

    def discard(self):
        pass


class RejectsWriter(NoRejects):
    """Rejected rows (``line,raw,reason`` then the original cells, under the file's header)
    to a temporary file next to ``path``; ``commit()`` renames it into place (and returns the
    path) when something was rejected, else removes it; ``discard()`` removes it."""

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
        super().__init__()

    def write(self, line, raw, reason, cells):
        super().write(line, raw, reason, cells)
        self.writer.writerow([line, neutralize(raw[:RAW_CHARS]), neutralize(reason)]
                             + [neutralize(cell[:CELL_CHARS]) for cell in cells])

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


def show_rejects(shown, total):
    """Lines listing rejected rows: ``  line 7: '12': too short``, then ``... and K more``."""
    lines = ["  line %d: %r: %s" % (line, raw[:40], reason) for line, raw, reason in shown]
    if total > len(shown):
        lines.append("  ... and %d more" % (total - len(shown)))
    return lines


def summary_details(report):
    """The end of an import report's first line: lines read, blank lines, where the rejects
    are, a dry run (``report`` has ``rows``, ``lines``, ``blank``, ``rejects_path``,
    ``dry_run``)."""
    text = "; %d lines read" % report.lines
    if not report.rows:
        text += " (no data rows: nothing to import)"
    if report.blank:
        text += "; %d blank lines skipped" % report.blank
    if report.rejects_path:
        text += "; rejected rows in %s" % report.rejects_path
    if report.dry_run:
        text += " (dry run: nothing written)"
    return text


def exit_status(rows, taken, invalid):
    """0, EXIT_SOME_REJECTED or EXIT_NOTHING_IMPORTED (see the module docstring); ``taken``:
    the rows that were not invalid (imported, duplicates, on a DNC list; added to a list or
    already on it)."""
    if rows == 0 or (invalid and not taken):
        return EXIT_NOTHING_IMPORTED
    return EXIT_SOME_REJECTED if invalid else 0


def open_rejects(path, rejects_path, dry_run, header):
    """The rejects writer of an import: a file (``rejects_path``, else ``<path>.rejects.csv``
    unless this is a dry run) or, for a dry run without ``rejects_path``, a counter."""
    if dry_run and rejects_path is None:
        return NoRejects()
    return RejectsWriter(rejects_path or path + ".rejects.csv", header)


def commit_rejects(rejects, path, batch_id=None):
    """Move the rejects file into place after the commit; its path, or None."""
    try:
        return rejects.commit()
    except OSError as err:
        raise CsvImportError("%s: %s was imported, but the rejects file %s could not be "
                             "written: %s" % (os.path.basename(path), "batch %s" % batch_id
                                              if batch_id else "the file", rejects.path,
                                              err.strerror or err)) from None
