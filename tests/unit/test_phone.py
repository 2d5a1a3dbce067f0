import pytest

from agi_campaign.errors import PhoneError
from agi_campaign.phone import dial_digits, mask, national_digits, normalize, timezone_for


@pytest.mark.parametrize("raw", [
    "(202) 555-0123",
    "+1 202-555-0123",
    "202.555.0123",
    "\t202 555 0123 ",
    "12025550123",
    "0012025550123",        # leading 00 read as '+' even though the US prefix is 011
    "011 1 202 555 0123",   # the US international prefix works too
])
def test_phone_normalize_valid_us_forms(raw):
    assert normalize(raw, "US") == "+12025550123"


def test_phone_normalize_other_regions():
    assert normalize("06 1234 5678", "IT") == "+390612345678"
    assert normalize("0039 06 1234 5678", "US") == "+390612345678"
    assert normalize("+44 20 7946 0000", "US") == "+442079460000"
    assert normalize("020 7946 0000", "gb") == "+442079460000"


@pytest.mark.parametrize("raw, reason", [
    ("1-800-FLOWERS", "contains letters"),
    ("202555012x", "contains letters"),
    ("caf\u00e9", "contains letters"),
    ("john@example.com", "contains letters"),
    ("202@5550123", "contains '@'"),
    ("202/555/0123", "contains '/'"),
    ("2025550123&1", "contains '&'"),
    ("2025550123,1", "contains ','"),
    ("2025550123;1", "contains ';'"),
    ("202555\n0123", "contains '\\n'"),
    ("2025550123\n", "contains '\\n'"),
    ("2025550123\r", "contains '\\r'"),
    ("202\x00555", "contains '\\x00'"),
    ("202#5550123", "contains '#'"),
    ("202*5550123", "contains '*'"),
    ("\u0662\u0660\u0662", "contains '\u0662'"),       # non-ASCII digits
    ("+1 202+555 0123", "'+' is allowed only at the start"),
    ("", "empty"),
    ("  \t ", "empty"),
    ("1" * 65, "longer than 64 characters"),
    ("()-.", "no digits"),
    ("555-01", "too short"),
    ("2025550123456789", "too long"),
    ("+999 123456", "unknown country code"),
    ("+15550100123", "not a valid number for country code +1"),
    ("555 010 0123", "not a valid number for region US"),
])
def test_phone_normalize_rejections_give_reason(raw, reason):
    with pytest.raises(PhoneError) as info:
        normalize(raw, "US")
    assert str(info.value) == reason


def test_phone_normalize_max_length_is_64():
    assert normalize("(202) 555-0123".ljust(64), "US") == "+12025550123"


def test_phone_normalize_unknown_region():
    with pytest.raises(PhoneError) as info:
        normalize("2025550123", "XX")
    assert str(info.value) == "unknown region 'XX'"
    assert normalize("+12025550123", "XX") == "+12025550123"


def test_phone_dial_digits():
    assert dial_digits("+12025550123") == "12025550123"


def test_phone_national_digits_keep_trunk_prefix():
    assert national_digits("+12025550123") == "2025550123"
    assert national_digits("+442079460000") == "02079460000"
    assert national_digits("+390612345678") == "0612345678"


def test_phone_mask():
    assert mask("+12025550123") == "+1202*****23"
    assert mask("+390612345678") == "+39061*****78"


def test_phone_mask_never_raises_and_hides_digits():
    assert mask("+3912") == "+39**"
    assert "0100" not in mask("5550100")
    assert mask("") == ""


def test_phone_timezone_for():
    assert timezone_for("+12025550123") == "America/New_York"
    assert timezone_for("+390612345678") == "Europe/Rome"
    assert timezone_for("+80012345678") is None
