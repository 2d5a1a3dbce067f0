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

Speed: ``phonenumbers.parse`` + ``is_valid_number`` + ``region_code_for_number`` cost ~50 us
a number (a 1M-row import spends most of its CPU there). ``parse_number`` first tries
``_fast``: the same steps as ``phonenumbers.parse`` (country code, national prefix, lengths)
and ``is_valid_number``/``region_code_for_number`` (region by leading digits, then number
type), transcribed for the inputs where they are plain (digits with ``+ ( ) . -`` and spaces),
using phonenumbers' own metadata patterns, compiled once and joined into one full-match regex
per region and length. It only ever *accepts*: any step it does not transcribe (an
international prefix such as ``011``, a national prefix with a transform rule, a number too
short, too long or invalid, a non-geographic code, a tab) returns None and the number goes
through phonenumbers itself, so every reject and its reason come from phonenumbers.
tests/unit/test_phone_exact.py compares the two on a large generated corpus, and
bench/bench_import.py on every row of the benchmark file.
"""
import functools
import re

import phonenumbers
from phonenumbers import timezone as _pn_timezone

from agi_campaign.errors import PhoneError

MAX_RAW_LENGTH = 64
_ALLOWED = frozenset("0123456789 \t-().")
_TOO_SHORT = (phonenumbers.ValidationResult.TOO_SHORT,
              phonenumbers.ValidationResult.INVALID_LENGTH)


def normalize(raw, region):
    """``raw`` as read from a CSV or the CLI -> E.164 ``'+12025550123'``, or PhoneError."""
    return parse_number(raw, region)[0]


def parse_number(raw, region):
    """``raw`` -> ``(e164, country)``: the E.164 form and the two-letter region the number
    belongs to (``phonenumbers.region_code_for_number``, e.g. ``'CA'`` for +1 416...), or
    PhoneError with the same reason ``normalize`` gives."""
    if raw is not None and len(raw) <= MAX_RAW_LENGTH:
        hit = _fast(raw.strip(" \t"), region)
        if hit is not None:
            return hit
    return parse_number_exact(raw, region)


def parse_number_exact(raw, region):
    """``parse_number`` through phonenumbers alone (no fast path): the reference."""
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
    return (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
            phonenumbers.region_code_for_number(number))


# ---- the fast path: phonenumbers' steps for plain inputs, accepting only -------------------

_PLAIN = re.compile(r"\+?[0-9 ().-]*").fullmatch     # no tab: phonenumbers' punctuation lacks it
_MAX_NSN = 17                                        # phonenumbers' _MAX_LENGTH_FOR_NSN
_VR = phonenumbers.ValidationResult
_KEEP_PREFIX = (_VR.TOO_SHORT, _VR.IS_POSSIBLE_LOCAL_ONLY, _VR.INVALID_LENGTH)
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
          "voicemail", "fixed_line")                # _number_type_helper's order; + mobile
_SUPPORTED = phonenumbers.SUPPORTED_REGIONS
_PLANS = {}                                          # region -> _Plan
_CC_PLANS = {}                                       # country code -> ((region, _Plan), ...)


def _fast(text, region):
    """``(e164, country)`` when ``text`` is plain and phonenumbers surely accepts it, else None.

    Mirrors ``phonenumbers.parse`` for text that is digits, spaces and ``( ) . -`` after an
    optional ``+`` (or our ``00``): the digits are the number (no extension, vanity letters
    or RFC 3966 part can occur), then the country code and national prefix steps below."""
    if not _PLAIN(text):
        return None
    plan = _PLANS.get(region) or _plan(region)
    digits = (text.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
              .replace(".", "").replace("+", ""))
    if plan is None or len(digits) < 3:
        return None
    if text[0] == "+" or text.startswith("00"):
        if text[0] != "+":
            digits = digits[2:]
        if len(digits) < 3 or digits[0] == "0":
            return None                     # too short after the '+', or parse's retry path
        for size in (1, 2, 3):              # _extract_country_code
            cc = int(digits[:size])
            if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        national = digits[size:]
        plan = _plan(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc][0])
    else:
        if plan.idd is not None and plan.idd(digits):
            return None                     # an international prefix such as 011: phonenumbers
        cc, national = plan.cc, digits
        if digits.startswith(plan.cc_text):  # _maybe_extract_country_code, default country
            rest = _strip_national_prefix(digits[len(plan.cc_text):], plan)
            if rest is None:
                return None
            if ((not plan.general(digits) and plan.general(rest))
                    or plan.lengths[len(digits)] == _VR.TOO_LONG):
                national = rest
                plan = _plan(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc][0])
    if plan is None or len(national) < 2:
        return None
    stripped = _strip_national_prefix(national, plan)
    if stripped is None:
        return None
    if plan.lengths[len(stripped)] not in _KEEP_PREFIX:
        national = stripped
    if len(national) > _MAX_NSN:
        return None
    country = _valid_region(cc, national)
    if country is None:
        return None
    return "+%d%s" % (cc, national), country


def _strip_national_prefix(number, plan):
    """``_maybe_strip_national_prefix_carrier_code``'s number; None for a transform rule."""
    if not number or plan.national_prefix is None:
        return number
    match = plan.national_prefix(number)
    if match is None:
        return number
    groups = match.groups()
    if plan.transform and (not groups or groups[-1] is not None):
        return None
    rest = number[match.end():]
    if plan.general(number) and not plan.general(rest):
        return number
    return rest


def _valid_region(cc, national):
    """``region_code_for_number`` when ``is_valid_number``, else None (also when unsure)."""
    plans = _CC_PLANS.get(cc) or _cc_plans(cc)
    if len(plans) == 1:
        region, plan = plans[0]
        return region if plan is not None and plan.cc == cc and plan.valid(national) else None
    for region, plan in plans:
        if plan is None or plan.cc != cc:
            return None
        if plan.leading is not None:
            if plan.leading(national):
                return region if plan.valid(national) else None
        elif plan.valid(national):
            return region
    return None


def _cc_plans(cc):
    plans = _CC_PLANS[cc] = tuple((region, _plan(region))
                                  for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc])
    return plans


def _plan(region):
    """The _Plan of a supported region (any case), else None. Cached."""
    plan = _PLANS.get(region)
    if plan is None and isinstance(region, str) and region.upper() in _SUPPORTED:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is not None:
            plan = _PLANS[region] = _Plan(metadata)
    return plan


def _full_match(pattern):
    """``_match_national_number(number, desc, False)``: a full match; never for no pattern."""
    if not pattern:
        return lambda number: False
    return re.compile(pattern).fullmatch


class _Plan:
    """One region's metadata, compiled: what ``_fast`` needs."""

    def __init__(self, metadata):
        self.cc = metadata.country_code
        self.cc_text = str(metadata.country_code)
        self.idd = (re.compile(metadata.international_prefix).match
                    if metadata.international_prefix else None)
        self.national_prefix = (re.compile(metadata.national_prefix_for_parsing).match
                                if metadata.national_prefix_for_parsing else None)
        self.transform = metadata.national_prefix_transform_rule
        self.leading = (re.compile(metadata.leading_digits).match
                        if metadata.leading_digits else None)
        self.general = _full_match(metadata.general_desc.national_number_pattern)
        self.lengths = tuple(_length_result(metadata.general_desc, length)
                             for length in range(MAX_RAW_LENGTH + 1))
        self.metadata = metadata
        self._valid = {}

    def valid(self, national):
        """``_number_type_helper(national, metadata) != UNKNOWN``, as one regex a length."""
        check = self._valid.get(len(national))
        if check is None:
            check = self._valid[len(national)] = self._valid_check(len(national))
        return check(national) is not None

    def _valid_check(self, length):
        metadata = self.metadata
        names = _TYPES if metadata.same_mobile_and_fixed_line_pattern else _TYPES + ("mobile",)
        general, types = metadata.general_desc, [getattr(metadata, name) for name in names]
        patterns = [desc.national_number_pattern for desc in types if _applies(desc, length)]
        if not _applies(general, length) or not patterns:
            return lambda national: None
        return re.compile(r"(?=(?:%s)\Z)(?:%s)" % (
            general.national_number_pattern,
            "|".join("(?:%s)" % pattern for pattern in patterns))).fullmatch


def _length_result(general, length):
    """``_test_number_length(number, metadata)`` for a number of ``length`` digits (it reads
    only the length, and of the general description only)."""
    possible = general.possible_length
    if length in general.possible_length_local_only:
        return _VR.IS_POSSIBLE_LOCAL_ONLY
    if possible[0] == length:
        return _VR.IS_POSSIBLE
    if possible[0] > length:
        return _VR.TOO_SHORT
    if possible[-1] < length:
        return _VR.TOO_LONG
    return _VR.IS_POSSIBLE if length in possible[1:] else _VR.INVALID_LENGTH


def _applies(desc, length):
    """``_is_number_matching_desc`` short of the pattern: a pattern, and the length allowed."""
    return (desc is not None and bool(desc.national_number_pattern)
            and (not desc.possible_length or length in desc.possible_length))


# ---- checks and reasons ---------------------------------------------------------------------

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
    zones = time_zones(e164)
    return zones[0] if zones else None


@functools.lru_cache(maxsize=65536)
def time_zones(e164):
    """Every IANA time zone phonenumbers' data gives for the number (``time_zones_for_number``:
    by prefix for a geographic number, the country's zones for a mobile or toll-free one), as a
    sorted tuple; ``()`` when unknown (a non-geographic code such as +800, or an invalid number).
    A US toll-free number gives every zone of the NANP (40 and more). Cached per number: a
    claim asks again for the numbers it defers and retries."""
    try:
        zones = _pn_timezone.time_zones_for_number(_parse(e164))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(sorted(z for z in zones if z != _pn_timezone.UNKNOWN_TIMEZONE))
