"""csvlayout and csvreader's sniffing: delimiter, header, phone column, encodings."""
import pytest

from agi_campaign import csvlayout, csvreader
from agi_campaign.errors import CsvImportError

US1, US2, US3 = "+12015550123", "+12015550124", "+12015550125"


def table(tmp_path, data, region="US", **kwargs):
    path = tmp_path / "list.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    opened = csvlayout.open_table(path, region, **kwargs)
    records = csvreader.iter_records(opened.text[opened.start:], region, "list.csv",
                                     opened.delimiter, opened.first_line)
    return opened, [(line, cells) for line, cells, _ in records if not csvreader.is_blank(cells)]


@pytest.mark.parametrize("text, expected", [
    ("a,b\n1,2\n", ","), ("a;b\n1;2\n", ";"), ("a\tb\n1\t2\n", "\t"), ("a|b\n1|2\n", "|"),
    ("+12015550123\n", ","),                                    # one column
    ("Name;Phone\nMüller, Hans;+12015550123\nDoe, J;+12015550124\n", ";"),
    ("name,phone\n\"a;b\",1\n\"c;d\",2\n", ","),                # ; only inside quotes
    ("Name;Phone\nMüller, Hans, Jr;1\n", ";"),                  # commas disagree with the header
])
def test_detect_delimiter(text, expected):
    assert csvreader.detect_delimiter(text) == expected


@pytest.mark.parametrize("cell, key", [
    ("Téléphone", "telephone"), ("PhoneNumber", "phone number"), ("Phone 1", "phone"),
    ("Tel.", "tel"), (" MOBILE_NO ", "mobile no"), ("Teléfono", "telefono"), ("2", "2"),
])
def test_header_key(cell, key):
    assert csvlayout.header_key(cell) == key


@pytest.mark.parametrize("header", ["Téléphone", "Telefon", "Teléfono", "Cellulare", "Mobile",
                                    "Cell", "Phone Number", "MSISDN", "Handynummer", "GSM"])
def test_synonym_headers_name_the_phone_column(tmp_path, header):
    opened, rows = table(tmp_path, "Name;%s;Note\nAnn;%s;x\n" % (header, US1))
    assert opened.layout.phone_indexes == (1,) and opened.layout.found_by == "header name"
    assert rows == [(2, ["Ann", US1, "x"])]


def test_several_synonyms_pick_the_column_of_valid_numbers(tmp_path):
    opened, _ = table(tmp_path, "Phone,Mobile,Fax\n,%s,%s\nn/a,%s,%s\n" % (US1, US2, US3, US1))
    assert opened.layout.phone_indexes == (1,)


def test_headerless_first_row_is_kept_and_column_found_by_content(tmp_path):
    opened, rows = table(tmp_path, "Ann,%s\nBob,%s\n" % (US1, US2))
    assert opened.layout.header is None and opened.layout.phone_indexes == (1,)
    assert [line for line, _ in rows] == [1, 2]
    assert "no header, phone column: column 2 (found by its content)" in opened.read_as


def test_unnamed_header_column_found_by_content(tmp_path):
    opened, rows = table(tmp_path, "Kontakt,Rufnr.\nAnn,%s\n" % US1)   # Rufnr. is no synonym
    assert opened.layout.header == ["Kontakt", "Rufnr."] and opened.layout.phone_indexes == (1,)
    assert rows == [(2, ["Ann", US1])]


def test_no_phone_column_is_refused_with_the_fix(tmp_path):
    with pytest.raises(CsvImportError, match=r"list.csv: no column holds phone numbers "
                                             r"\(header: name, note\); name the phone column "
                                             r"with --phone-column"):
        table(tmp_path, "name,note\nAnn,x\nBob,y\n")


def test_area_code_and_number_columns_suggest_and_accept_a_combination(tmp_path):
    data = "201,5550123\n201,5550124\n"
    with pytest.raises(CsvImportError, match=r"columns 1 and 2 together .* --phone-column 1\+2"):
        table(tmp_path, data)
    opened, rows = table(tmp_path, data, phone_column="1+2")
    assert opened.layout.header is None
    assert opened.layout.split(rows[0][1])[0] == "2015550123"
    opened, rows = table(tmp_path, "Area Code,Number,Name\n201,5550123,Ann\n",
                         phone_column="area code+number")
    raw, extra, problem = opened.layout.split(rows[0][1])
    assert (raw, extra, problem) == ("2015550123", '{"Name": "Ann"}', None)


@pytest.mark.parametrize("spec, message", [
    ("Mobile", r"--phone-column Mobile: no column named 'Mobile'; the first row has: "
               r"name, phone"),
    ("3", r"--phone-column 3: there is no column 3; the first row has 2 columns"),
])
def test_phone_column_errors(tmp_path, spec, message):
    with pytest.raises(CsvImportError, match=message):
        table(tmp_path, "name,phone\nAnn,%s\n" % US1, phone_column=spec)


def test_phone_column_by_number_keeps_a_header_found_by_its_letters(tmp_path):
    opened, rows = table(tmp_path, "a,b\nAnn,%s\n" % US1, phone_column="2")
    assert opened.layout.header == ["a", "b"] and rows == [(2, ["Ann", US1])]


def test_forced_delimiter_and_encoding(tmp_path):
    data = "Nom;Téléphone\nDupont;01 42 68 53 00\n".encode("cp1252")
    with pytest.raises(CsvImportError, match=r"line 1 \(byte offset 5\): not UTF-8 .*--encoding "
                                             r"cp1252 \(read so, the line is 'Nom;Téléphone'\)"):
        table(tmp_path, data, region="FR")
    opened, rows = table(tmp_path, data, region="FR", encoding="cp1252", delimiter=";")
    assert rows == [(2, ["Dupont", "01 42 68 53 00"])]
    assert opened.read_as.startswith("cp1252, semicolon-separated (--delimiter), header")
    with pytest.raises(CsvImportError, match=r"line 1 \(byte offset 5\): not valid ascii"):
        table(tmp_path, data, region="FR", encoding="ascii")


def test_quoted_multiline_field_before_the_phone_is_one_record(tmp_path):
    opened, rows = table(tmp_path, 'name,address,phone\nAnn,"1 Main St\nApt 4",%s\n' % US1)
    assert rows == [(2, ["Ann", "1 Main St\nApt 4", US1])]


def test_split_fast_path_writes_the_same_json_as_the_general_one():
    import random

    rng = random.Random(7)
    alphabet = 'aZé"\\\n\t\x01/%s,;{}\u2028😀 '
    header = ["phone", "na\"me", "%s", "Ünï", "", "x\\y"]
    layout = csvlayout.Layout([0], header, "header name")
    for _ in range(2000):
        cells = [US1] + ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
                         for _ in header[1:]]
        assert layout.split(cells) == layout._split(cells, len(cells))
    long_row = [US1, "x" * 1001, "", "", "", ""]
    assert layout.split(long_row)[2] == "field 2 longer than 1000 characters"
    assert layout.split([US1, "x" * 999, "y", "", "", ""])[2] is None


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_segments_cut_only_between_records(delimiter):
    """Parsing each segment alone gives exactly the records of the whole text, for texts full
    of quoted fields with line breaks, doubled quotes and quotes inside unquoted fields."""
    import csv
    import io
    import random

    rng = random.Random(11)
    pieces = ["a", "b", " ", '"', '""', delimiter, "\n", "\r\n", ",", ";", "x\"y", '"q\nr"']

    def records(text):
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))

    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(200)))
        for size in (1, 3, 17):
            cut = list(csvreader.segments(text, 0, size, delimiter))
            assert "".join(text[b:e] for b, e in cut) == text
            assert [r for b, e in cut for r in records(text[b:e])] == records(text), text


def test_headerless_first_row_with_a_bad_number_is_data_not_a_header(tmp_path):
    opened, rows = table(tmp_path, "Smith,555-01\nJones,%s\nBrown,%s\n" % (US1, US2))
    assert opened.layout.header is None and opened.layout.phone_indexes == (1,)
    assert rows[0] == (1, ["Smith", "555-01"])
    opened, rows = table(tmp_path, "Smith,555-01\nJones,%s\n" % US1, phone_column="2")
    assert opened.layout.header is None and len(rows) == 2


def test_header_only_file_without_a_phone_header_has_no_data_rows(tmp_path):
    opened, rows = table(tmp_path, "name,contact\n")
    assert opened.layout.header == ["name", "contact"] and rows == []


def test_empty_part_of_a_joined_phone_column_is_refused(tmp_path):
    with pytest.raises(CsvImportError, match=r"--phone-column 2\+: an empty column name"):
        table(tmp_path, "name,Phone,\nAnn,%s,x\n" % US1, phone_column="2+")


def test_header_line_is_named_after_blank_lines(tmp_path):
    opened, _ = table(tmp_path, "\n\n\nname,phone\nAnn,%s\n" % US1)
    assert "header on line 4" in opened.read_as and opened.blank == 3
    with pytest.raises(CsvImportError, match=r"list.csv line 3: column name 'Name' appears"):
        table(tmp_path, "\n\nphone,name,Name\n%s,a,b\n" % US1)


def test_utf8_bom_under_a_single_byte_encoding_is_refused_and_bom_removed_otherwise(tmp_path):
    data = "\ufeffName,Phone\nAnn,%s\n" % US1
    with pytest.raises(CsvImportError, match="starts with a UTF-8 byte order mark"):
        table(tmp_path, data.encode("utf-8"), encoding="cp1252")
    opened, _ = table(tmp_path, data.encode("utf-16-le"), encoding="utf-16-le")
    assert opened.layout.header == ["Name", "Phone"]


@pytest.mark.parametrize("data, line", [
    # a registry file: no single cell is a number, a stray quote swallows three rows
    ('area,number,name\n202,5550701,"Smith\n202,5550702,Jones\n202,5550703,Brown\n'
     '202,5550704,O"Neil\n202,5550705,Lee\n', 2),
    # every field quoted: a field left open ends at the next row's first quote
    ('"name","phone","note"\n"A","+12015550123","line one\n"B","+12015550124","x"\n', 2),
])
def test_stray_quote_whose_closing_quote_is_followed_by_text_refuses(tmp_path, data, line):
    spec = "area+number" if "area" in data else None
    with pytest.raises(CsvImportError, match=r"list.csv line %d: a quoted field opens here, "
                                             r"runs over \d lines and its closing quote is "
                                             r"followed by more text" % line):
        table(tmp_path, data, phone_column=spec)


def test_cr_only_files_are_cut_into_segments():
    text = "".join("a%d,b\r" % i for i in range(100))
    cut = list(csvreader.segments(text, 0, 50, ","))
    assert len(cut) > 5 and "".join(text[b:e] for b, e in cut) == text
    assert all(text[e - 1] == "\r" for _, e in cut)
