"""Files made the way real tools write them, for the import tests (tests/unit/test_realfiles.py).

Each generator returns ``(data, expected)``: the exact bytes of the file and an ``Expected``
with what `numbers import` must report for it, the exit status (contract of issue 10: 0 ok, 2
file refused, 3 some rows invalid, 4 nothing imported), the E.164 numbers imported and the
physical line of every data row. Rows are listed as ``(kind, e164, cells)``: kind ``ok``
(imported), ``dnc`` (imported unless on the campaign's DNC list: `Expected.dnc_seed`), ``dup``
(an earlier row's number in another spelling), ``bad`` (not a valid number), ``blank`` (no
cell filled: not a row). Every number was checked with ``phonenumbers.is_valid_number`` for the
file's region (test_realfiles re-checks them); note that phonenumbers accepts the fictional
``555-01xx`` US numbers and refuses Ofcom's drama range ``07700 900xxx``.

How each tool writes is stated in its generator's docstring. Facts shared by the Excel ones:
records end in CRLF, the last one too; a line break typed inside a cell (Alt+Enter) is a bare
LF inside the quoted field; a field is quoted only when it holds the separator, a quote or a
line break, and quotes inside are doubled; an empty row inside the used range is written as
separators only (``,,,``); numbers are written as displayed, so a phone typed as a number
loses its leading zero and one of 12+ digits becomes ``4.42079E+11`` (General format).
"""
import codecs
import dataclasses

EXCEL_EOL = "\r\n"


@dataclasses.dataclass(frozen=True)
class Expected:
    """What importing the file must give. `lines`: physical line -> (kind, raw phone, e164)
    of every data row; `args`: arguments both imports need; `error`: for a file refused as a
    whole (exit 2), substrings of the message; `phone_column`: 1-based, for the "read as"
    line; `encoding`, `delimiter`, `header`: how to read the bytes back (self-check)."""

    region: str
    rows: int
    imported: int
    duplicates: int
    invalid: int
    dnc: int
    exit: int
    numbers: frozenset
    dnc_seed: frozenset
    lines: dict
    encoding: str
    delimiter: str
    header: bool
    args: tuple = ()
    error: tuple = ()
    phone_column: int = None
    dnc_args: tuple = ()        # what `dnc import` needs besides `args` (one phone column)

    def invalid_lines(self):
        return {n: raw for n, (kind, raw, _) in self.lines.items() if kind == "bad"}

    def other_lines(self):
        """Lines of rows that are not imported yet not rejections (duplicates, on DNC)."""
        return {n for n, (kind, _, _) in self.lines.items() if kind in ("dup", "dnc")}


def exit_status(rows, invalid):
    """The contract's status of an import that read the file: 4 nothing imported (no rows, or
    all invalid), 3 some rows invalid, else 0 (duplicates and DNC rows are no rejections)."""
    if rows == 0 or invalid == rows:
        return 4
    return 3 if invalid else 0


def _cell(text, sep, quote_all):
    if quote_all is None:                       # verbatim: a hand-edited file
        return text
    if quote_all or any(c in text for c in (sep, '"', "\n", "\r")):
        return '"%s"' % text.replace('"', '""')
    return text


def _file(records, *, region, exit, sep=",", eol=EXCEL_EOL, codec="utf-8", bom=b"",
          final_eol=True, quote_all=False, phone=None, header=True, args=(), error=(),
          dnc_args=()):
    """Serialise `records` (the header first when `header`) and work out the expectation.
    `phone`: 0-based index of the phone cell, or a tuple of indexes joined (1+2);
    `quote_all`: True quotes every field, None writes the cells verbatim."""
    text, lines, seen, taken = "", {}, set(), []
    for i, (kind, e164, cells) in enumerate(records):
        start = text.count("\n") + 1
        text += sep.join(_cell(c, sep, quote_all) for c in cells)
        text += eol if final_eol or i < len(records) - 1 else ""
        if (header and i == 0) or kind == "blank":
            continue
        idx = phone if isinstance(phone, tuple) else (phone,)
        raw = "".join(cells[j] for j in idx) if idx != (None,) else None
        lines[start] = (kind, raw, e164)
        if kind in ("ok", "dnc"):
            assert e164 not in seen, "%s listed twice as new" % e164
            seen.add(e164)
            taken.append((kind, e164))
        elif kind == "dup":
            assert e164 in seen, "duplicate %s of nothing" % e164
    kinds = [k for k, _, _ in lines.values()]
    rows, invalid = len(kinds), kinds.count("bad")
    if not error:
        assert exit == exit_status(rows, invalid), "exit %d disagrees with the rule" % exit
        assert not (invalid and 0 < invalid < rows and not kinds.count("ok")), "ambiguous"
    data = bom + text.encode(codec)
    read = {"utf-16-le": "utf-16", "utf-8": "utf-8-sig" if bom else "utf-8"}.get(codec, codec)
    expected = Expected(
        region=region, rows=rows, imported=kinds.count("ok"), duplicates=kinds.count("dup"),
        invalid=invalid, dnc=kinds.count("dnc"), exit=exit,
        numbers=frozenset(e for k, e in taken if k == "ok"),
        dnc_seed=frozenset(e for k, e in taken if k == "dnc"), lines=lines, encoding=read,
        delimiter=sep, header=header, args=tuple(args), error=tuple(error),
        phone_column=phone + 1 if isinstance(phone, int) else None, dnc_args=tuple(dnc_args))
    return data, expected


def _ok(e164, *cells):
    return ("ok", e164, list(cells))


def _dnc(e164, *cells):
    return ("dnc", e164, list(cells))


def _dup(e164, *cells):
    return ("dup", e164, list(cells))


def _bad(*cells):
    return ("bad", None, list(cells))


def _head(*cells):
    return ("header", None, list(cells))


def _blank(width):
    return ("blank", None, [""] * width)


# ---- Excel -------------------------------------------------------------------------------

def excel_csv_windows():
    """Excel for Windows (2016-365, US locale), Save As "CSV (Comma delimited) (*.csv)":
    Windows-1252 (the ANSI code page), no BOM, ',' (the locale's list separator), CRLF, quotes
    only where needed (the notes). Accented names make it invalid UTF-8: import needs
    ``--encoding cp1252``. The third phone was typed as a number (written as digits)."""
    return _file([
        _head("First Name", "Last Name", "Phone", "Notes"),
        _ok("+12015550123", "José", "García", "(201) 555-0123", "Call after 5pm, weekdays"),
        _ok("+12015550124", "Zoë", "O'Brien", "201-555-0124", 'Prefers "Zo"'),
        _ok("+12015550125", "Renée", "Faÿ", "2015550125", ""),
        _blank(4),
        _bad("Ann", "Lee", "555-0126", "no area code"),
        _dup("+12015550123", "Bob", "Smith", "+1 201 555 0123", "same as José"),
        _dnc("+19735550142", "Cid", "Jones", "973-555-0142", "asked not to be called"),
        _bad("Dee", "Park", "n/a", ""),
        _ok("+12125550100", "Eve", "Ng", "212-555-0100", "€ 25 owed"),
    ], region="US", exit=3, codec="cp1252", phone=2, args=("--encoding", "cp1252"))


def excel_csv_utf8():
    """Excel 365 (US locale), Save As "CSV UTF-8 (Comma delimited) (*.csv)": UTF-8 with a BOM,
    ',', CRLF, quotes where needed ("Smith, John"). Shows Excel's number display: an 11-digit
    number with the country code survives, a 12-digit foreign one became ``4.42079E+11``."""
    return _file([
        _head("Name", "Mobile", "Email"),
        _ok("+12125550181", "Émilie Roux", "+1 (212) 555-0181", "emilie@example.com"),
        _ok("+12125550182", "李雷", "212.555.0182", "li@example.com"),
        _ok("+12125550183", "Smith, John", "(212) 555-0183", "john@example.com"),
        _ok("+12125550184", "Ana", "12125550184", "ana@example.com"),
        _bad("Ben", "4.42079E+11", "ben@example.com"),
        _blank(3),
        _bad("Cy", "212 555 018", "cy@example.com"),
        _dup("+12125550181", "Emilie R.", "+12125550181", "emilie@example.org"),
    ], region="US", exit=3, codec="utf-8", bom=codecs.BOM_UTF8, phone=1)


def excel_german_cp1252():
    """Excel for Windows, German locale, "CSV (Trennzeichen-getrennt)": Windows-1252, ';' (the
    German list separator, because ',' is the decimal mark), CRLF, no BOM. "Müller, Hans"
    holds a comma but no ';', so Excel leaves it unquoted; amounts have decimal commas. One
    phone typed as a number lost its leading 0 (``301234568``: phonenumbers still reads it as
    +49 30...); one of 12 digits became ``4,93012E+11``. Needs ``--encoding cp1252``."""
    return _file([
        _head("Name", "Telefon", "Umsatz", "Ort"),
        _ok("+49301234567", "Müller, Hans", "030 1234567", "1234,56", "Berlin"),
        _ok("+49891234567", "Schröder, Jürgen", "089 1234567", "99,90", "München"),
        _ok("+49301234568", "Weiß, Anna", "301234568", "0,00", "Berlin"),
        _ok("+4915123456789", "Öztürk, Aylin", "0151 23456789", "12,5", "Köln"),
        _blank(4),
        _bad("Becker, Tom", "4,93012E+11", "5,00", "Hamburg"),
        _dup("+49301234567", "Wagner, Eva", "+49 30 1234567", "1,00", "Berlin"),
        _bad("Hoffmann, Udo", "089 12", "7,00", "München"),
        _dnc("+493012345678", "Schulz, Ina", "030 12345678", "3,30", "Berlin"),
    ], region="DE", exit=3, sep=";", codec="cp1252", phone=1, args=("--encoding", "cp1252"))


def excel_french_utf8():
    """Excel 365, French locale, "CSV UTF-8 (délimité par des virgules)": UTF-8 with a BOM,
    but ';' (Excel uses the locale's list separator for every CSV type), CRLF; a name holding
    ';' is quoted; amounts have decimal commas."""
    return _file([
        _head("Nom", "Prénom", "Téléphone", "Montant"),
        _ok("+33142685300", "Dupont", "Jean", "01 42 68 53 00", "12,50"),
        _ok("+33612345678", "Lefèvre", "Chloé", "06 12 34 56 78", "0,99"),
        _ok("+33142685301", "Martin; fils", "Luc", "+33 1 42 68 53 01", "100,00"),
        _bad("Bernard", "Zoé", "01 42 68", "5,00"),
        _dup("+33142685300", "Petit", "Noël", "0142685300", "1,00"),
        _blank(4),
        _ok("+33612345679", "Durand", "Hélène", "+33 6 12 34 56 79", "3,00"),
    ], region="FR", exit=3, sep=";", codec="utf-8", bom=codecs.BOM_UTF8, phone=2)


def excel_unicode_text():
    """Excel for Windows, Save As "Unicode Text (*.txt)": UTF-16 LE with the BOM FF FE, TAB
    separated, CRLF; a cell holding quotes is quoted with the quotes doubled. GB numbers;
    ``07700 900123`` is Ofcom's drama range (not a valid number)."""
    return _file([
        _head("Name", "Telephone", "City"),
        _ok("+442079460018", "Oliver Twist", "020 7946 0018", "London"),
        _ok("+442079460999", 'Amélie "Amy" Poulain', "+44 20 7946 0999", "London"),
        _ok("+441614960000", "Harry", "0161 496 0000", "Manchester"),
        _bad("Jack", "07700 900123", "Leeds"),
        _dup("+442079460018", "Ivy", "+442079460018", "London"),
        _blank(3),
        _ok("+442079460019", "Noah", "020 7946 0019", "London"),
    ], region="GB", exit=3, sep="\t", codec="utf-16-le", bom=codecs.BOM_UTF16_LE, phone=1)


# ---- other spreadsheets -------------------------------------------------------------------

def libreoffice_calc():
    """LibreOffice Calc 7 on Linux, Italian locale, File > Save As "Text CSV" with the default
    filter options (44,34,76: ',' separator, '"' quote, UTF-8; "Quote all text cells" off):
    UTF-8 without BOM, LF (the platform's line end), last line ended. Amounts with a decimal
    comma must be quoted. Italian header "Cellulare"."""
    return _file([
        _head("Nome", "Cognome", "Cellulare", "Importo"),
        _ok("+393471234567", "Mario", "Rossi", "347 123 4567", "12,50"),
        _ok("+390612345678", "Giulia", "Bianchi", "+39 06 1234 5678", "0,99"),
        _dup("+393471234567", "Luca", "Verdi", "3471234567", "1,00"),
        _ok("+393123456789", "Sara", "Conti", "312 345 6789", "3,00"),
    ], region="IT", exit=0, eol="\n", phone=2)


def google_sheets():
    """Google Sheets, File > Download > "Comma-separated values (.csv)": UTF-8 without BOM,
    CRLF between records and NO line break after the last one (uniVocity/univocity-parsers
    issue #530: Sheets exports "in a Windows format" with no trailing line break; vslinko/
    deno-csv issue #11: Sheets CSV has CR LF line ends), quotes only where needed, an empty
    row as separators. No invalid row: duplicates and a DNC number still exit 0."""
    return _file([
        _head("Name", "Phone Number", "Signed up"),
        _ok("+17185550150", "Ann Lee", "(718) 555-0150", "2024-03-01"),
        _ok("+17185550151", "Lee, Bob", "718-555-0151", "2024-03-02"),
        _blank(3),
        _ok("+17185550152", "Cid", "+1 718 555 0152", "2024-03-03"),
        _dup("+17185550150", "Dee", "7185550150", "2024-03-04"),
        _dnc("+17185550153", "Eve", "718 555 0153", "2024-03-05"),
    ], region="US", exit=0, final_eol=False, phone=1)


def crm_export():
    """A CRM contacts export of 20 columns (HubSpot's column names), the phone in column 7
    ("Mobile Phone"), written as CRM/Data Loader style writers do: every field quoted, UTF-8
    without BOM, CRLF. "Fax Number" holds a valid number on every row (more valid cells than
    the phone column): the header synonym must win over content - for a call list; a
    Do-Not-Call import refuses a file with two number columns unless --phone-column says
    which (each column is imported on its own). "Number of Employees" contains the word
    "number" but is not a synonym; postcodes and revenues are digits but no phone numbers. A
    row with no mobile phone is invalid (its fax is not dialed)."""
    head = ["Record ID", "First Name", "Last Name", "Company Name", "Job Title", "Email",
            "Mobile Phone", "Street Address", "City", "State/Region", "Postal Code",
            "Country/Region", "Fax Number", "Lifecycle Stage", "Lead Status", "Contact owner",
            "Create Date", "Last Activity Date", "Annual Revenue", "Number of Employees"]
    people = [("ok", "+12015550171", "(201) 555-0171"), ("ok", "+12015550172", "201-555-0172"),
              ("bad", None, ""), ("dup", "+12015550171", "+1 201 555 0171"),
              ("dnc", "+12015550173", "201.555.0173"), ("bad", None, "201-555-01"),
              ("ok", "+12015550174", "2015550174")]
    records = [_head(*head)]
    for i, (kind, e164, mobile) in enumerate(people):
        records.append((kind, e164, [
            str(51234001 + i), "First%d" % i, "Last%d" % i, "Acme %d Inc." % i, "Buyer",
            "p%d@example.com" % i, mobile, "%d Main St" % (10 + i), "Hoboken", "NJ", "07030",
            "United States", "(973) 555-01%02d" % (10 + i), "lead", "New", "Sam Seller",
            "2024-01-0%d 10:00" % (i + 1), "2024-02-0%d" % (i + 1), "2500000", "250"]))
    return _file(records, region="US", exit=3, quote_all=True, phone=6,
                 dnc_args=("--phone-column", "7"))


def dnc_registry():
    """A US National Do Not Call Registry full-list download, "Flat Text File": no header,
    one area code and telephone number per line separated by a comma (dontphoneme.com,
    "Downloading DNC files"), e.g. ``201,5550123``. Line end not documented: CRLF here.
    Neither column alone is a valid number: it needs ``--phone-column 1+2``."""
    pairs = [("201", "5550123"), ("201", "5550124"), ("212", "5550100"), ("212", "5550181"),
             ("718", "5550150"), ("973", "5550142"), ("973", "5550171")]
    return _file([_ok("+1%s%s" % p, *p) for p in pairs], region="US", exit=0, header=False,
                 phone=(0, 1), args=("--phone-column", "1+2"))


# ---- plain files: headerless, multi-line cells, other separators -------------------------

def headerless_numbers():
    """One number a line, no header, as a text editor or ``cut -d, -f3`` writes it: UTF-8, LF,
    a blank line. The first line is a number and must be kept as data."""
    return _file([
        _ok("+12015550161", "2015550161"),
        _ok("+12015550162", "(201) 555-0162"),
        _bad("201-555-016"),
        _dup("+12015550161", "2015550161"),
        ("blank", None, []),
        _ok("+12015550163", "+1 201 555 0163"),
    ], region="US", exit=3, eol="\n", header=False, phone=0)


def headerless_two_columns():
    """Name and phone without a header (LibreOffice, LF): the first row has letters AND a valid
    number, so it is data; the phone column is found by content (column 2)."""
    return _file([
        _ok("+19735550171", "Ann Smith", "(973) 555-0171"),
        _ok("+19735550172", "Bob Jones", "973-555-0172"),
        _bad("Cid Brown", "973 555 017"),
        _ok("+19735550173", "Dee White", "+1 973 555 0173"),
    ], region="US", exit=3, eol="\n", header=False, phone=1)


def quoted_newlines():
    """Excel "CSV UTF-8" (BOM, CRLF) with an address column whose cells hold line breaks
    (Alt+Enter: bare LF inside the quoted field), one with an empty line inside. Line numbers
    in reports are physical lines, so the rows after them are shifted."""
    return _file([
        _head("Name", "Address", "Phone"),
        _ok("+12015550131", "Ann", "12 Main St\nApt 4\nSpringfield, NJ 07081", "201-555-0131"),
        _ok("+12015550132", "Bob", "1 Elm Rd", "201-555-0132"),
        _bad("Cid", "PO Box 7\nTrenton, NJ 08608", "201-555-013"),
        _ok("+12015550133", "Dee", "9 Oak Ave\n\nNewark, NJ 07102", "201-555-0133"),
        _dup("+12015550131", "Eve", "", "(201) 555-0131"),
    ], region="US", exit=3, codec="utf-8", bom=codecs.BOM_UTF8, phone=2)


def stray_quote():
    """An Excel CSV edited by hand: line 3 opens a quote that is never closed, which would
    swallow the rows after it. The file is refused (exit 2) naming line 3."""
    return _file([
        _head("Name", "Phone"),
        _ok("+12015550141", "Ann", "201-555-0141"),
        ("ok", "+12015550142", ['"Bob', "201-555-0142"]),
        _ok("+12015550143", "Cid", "201-555-0143"),
    ], region="US", exit=2, phone=1, quote_all=None, error=("line 3",))


def spanish_tsv():
    """Tab-separated values as database tools and "save as .tsv" write them: UTF-8 without
    BOM, LF, no quoting. Spanish header "Teléfono"."""
    return _file([
        _head("Nombre", "Teléfono", "Ciudad"),
        _ok("+34912345678", "Lucía", "912 345 678", "Madrid"),
        _ok("+34612345678", "Íñigo", "+34 612 345 678", "Bilbao"),
        _bad("Pilar", "91 234", "Madrid"),
        _dup("+34612345678", "Jorge", "612345678", "Sevilla"),
    ], region="ES", exit=3, sep="\t", eol="\n", phone=1)


def pipe_separated():
    """A '|'-separated export of an ERP/legacy system: UTF-8, LF, no quoting; German header
    "Telefonnummer"; customer numbers and postcodes are digits that are no valid numbers."""
    return _file([
        _head("Kundennr", "Kunde", "Telefonnummer", "PLZ"),
        _ok("+49891234567", "10001", "Becker GmbH", "089 1234567", "80331"),
        _ok("+493012345678", "10002", "Schmidt & Co", "030 12345678", "10115"),
        _bad("10003", "Klein AG", "089 12", "80331"),
    ], region="DE", exit=3, sep="|", eol="\n", phone=2)


# ---- degenerate files ---------------------------------------------------------------------

def empty_file():
    """A file of 0 bytes (an export of an empty selection): no rows, exit 4."""
    return _file([], region="US", exit=4, phone=1)


def header_only():
    """Excel CSV with the header row and nothing else: no rows, exit 4."""
    return _file([_head("Name", "Phone")], region="US", exit=4, phone=1)


def all_invalid():
    """Google Sheets CSV (CRLF, no final line break) where no row holds a valid number: every
    row rejected, exit 4. A row with its phone cell empty is a row (invalid), not blank."""
    return _file([
        _head("Name", "Phone Number"),
        _bad("Ann", "555-0100"),
        _bad("Bob", "n/a"),
        _bad("Cid", ""),
        _bad("Dee", "+1 123 456 7890"),
    ], region="US", exit=4, final_eol=False, phone=1)


LAYOUTS = {f.__name__: f for f in (
    excel_csv_windows, excel_csv_utf8, excel_german_cp1252, excel_french_utf8,
    excel_unicode_text, libreoffice_calc, google_sheets, crm_export, dnc_registry,
    headerless_numbers, headerless_two_columns, quoted_newlines, stray_quote, spanish_tsv,
    pipe_separated, empty_file, header_only, all_invalid)}
