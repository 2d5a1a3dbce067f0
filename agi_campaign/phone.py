"""Phone numbers: normalisation to E.164, dial strings, masking for logs.

Pure: no I/O. Decisions:

- Before parsing, only ASCII digits, spaces, tabs, ``- ( ) .`` and one leading ``+`` are
  accepted; anything else is rejected, naming the first offending character. Letters are
  rejected outright (no vanity conversion: ``1-800-FLOWERS`` is more likely a data error than
  a number), so are ``@ / & , ;``, newlines and control characters; a dial string built from
  such input could inject extra channels or options.
- A leading ``00`` is read as the international prefix (``+``) for every region, even where
  the local one differs (``011`` in the US), because CSV exports use it that way.
- The number must pass ``phonenumbers.is_valid_number``, not only "possible".
- ``str(PhoneError)`` is a short reason, for per-row import reports.
"""
import phonenumbers
from phonenumbers import timezone as _pn_timezone

from agi_campaign.errors import PhoneError

MAX_RAW_LENGTH = 64
_ALLOWED = frozenset("0123456789 \t-().")
_TOO_SHORT = (phonenumbers.ValidationResult.TOO_SHORT,
              phonenumbers.ValidationResult.INVALID_LENGTH)


def normalize(raw, region):
    """``raw`` as read from a CSV or the CLI -> E.164 ``'+12025550123'``, or PhoneError."""
    text = _check_chars(raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+") and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneError("unknown region %r" % (region,))
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as err:
        raise PhoneError(_parse_reason(err)) from None
    if not phonenumbers.is_valid_number(number):
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible in _TOO_SHORT:
            raise PhoneError("too short")
        if possible == phonenumbers.ValidationResult.TOO_LONG:
            raise PhoneError("too long")
        if text.startswith("+"):
            raise PhoneError("not a valid number for country code +%d" % number.country_code)
        raise PhoneError("not a valid number for region %s" % region.upper())
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_chars(raw):
    """Reject anything but the accepted characters; return the stripped text."""
    if raw is None:
        raise PhoneError("empty")
    if len(raw) > MAX_RAW_LENGTH:
        raise PhoneError("longer than %d characters" % MAX_RAW_LENGTH)
    text = raw.strip(" \t")
    if not text:
        raise PhoneError("empty")
    for i, char in enumerate(text):
        if char.isalpha():
            raise PhoneError("contains letters")
        if char == "+" and i == 0:
            continue
        if char == "+":
            raise PhoneError("'+' is allowed only at the start")
        if char not in _ALLOWED:
            raise PhoneError("contains %r" % char)
    if not any(char.isdigit() for char in text):
        raise PhoneError("no digits")
    return text


def _parse_reason(err):
    kind = phonenumbers.NumberParseException
    return {
        kind.INVALID_COUNTRY_CODE: "unknown country code",
        kind.NOT_A_NUMBER: "not a number",
        kind.TOO_SHORT_AFTER_IDD: "too short",
        kind.TOO_SHORT_NSN: "too short",
        kind.TOO_LONG: "too long",
    }.get(err.error_type, "not a number")


def _parse(e164):
    return phonenumbers.parse(e164, None)


def dial_digits(e164):
    """``'+12025550123'`` -> ``'12025550123'`` (international digits, no '+')."""
    return e164.lstrip("+")


def national_digits(e164):
    """Digits as dialled inside the country, trunk prefix included: UK ``'02079460000'``,
    US ``'2025550123'``, Italy ``'0612345678'``."""
    text = phonenumbers.format_number(_parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(char for char in text if char.isdigit())


def mask(e164):
    """For logs at INFO and above: country code and first 3 digits, then '*', then the last 2:
    ``'+12025550123'`` -> ``'+1202*****23'``. Never raises; at least 3 digits are hidden."""
    try:
        number = _parse(e164)
        prefix = "+%d" % number.country_code
        nsn = phonenumbers.national_significant_number(number)
    except (phonenumbers.NumberParseException, TypeError, AttributeError):
        prefix, nsn = "", str(e164)
    head = min(3, max(0, len(nsn) - 5))
    tail = 2 if len(nsn) >= 5 else 0
    return prefix + nsn[:head] + "*" * (len(nsn) - head - tail) + nsn[len(nsn) - tail:]


def timezone_for(e164):
    """The first IANA time zone phonenumbers gives for the number, or None if unknown."""
    zones = _pn_timezone.time_zones_for_number(_parse(e164))
    if not zones or zones[0] == _pn_timezone.UNKNOWN_TIMEZONE:
        return None
    return zones[0]
