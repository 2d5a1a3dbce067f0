"""phone.parse_number against plain phonenumbers on a large generated corpus.

``parse_number`` is ``phone._fast`` when that accepts, else ``parse_number_exact`` (the plain
phonenumbers path, which also gives every reject and its reason). So exactness comes down to:
whenever ``_fast`` accepts, phonenumbers accepts with the same E.164 and region. The corpus
test checks exactly that on 200,000 inputs over every region (``_fast`` is called directly:
``parse_number`` would pay the reference a second time for every reject); a smaller sample
checks ``parse_number`` end to end, reasons included.

phonenumbers recompiles its metadata patterns on every call and relies on the ``re`` module's
cache of 512, which every-region corpora overflow (~130 us a reference call instead of ~45);
``enable_pattern_cache`` keeps them compiled, same patterns, same results.
"""
import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from agi_campaign import phone
from agi_campaign.errors import PhoneError

MAIN_REGIONS = ("US", "CA", "GB", "DE", "FR", "IT", "ES", "NL", "AU", "IN", "BR", "MX", "JP")
SHARED_REGIONS = ("PR", "JM", "BS", "DO", "GU", "VI", "AG", "BB", "TT", "KN", "SX",   # +1
                  "RU", "KZ", "GG", "IM", "JE", "VA", "CC", "CX", "NO", "SJ", "GP", "BL",
                  "MF", "RE", "YT", "CW", "BQ", "MA", "EH", "FI", "AX")
REGIONS = MAIN_REGIONS + SHARED_REGIONS
TYPES = (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
         PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST, PhoneNumberType.VOIP,
         PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER, PhoneNumberType.UAN,
         PhoneNumberType.VOICEMAIL)
SEPARATORS = (" ", " ", "-", "-", ".", "  ", " - ")
CORPUS_SIZE = 200_000
OTHER_REGIONS = tuple(sorted(phonenumbers.SUPPORTED_REGIONS - set(REGIONS)))

getattr(phonenumbers, "enable_pattern_cache", lambda: None)()    # recent phonenumbers only


def reference(raw, region):
    """Plain phonenumbers after phone's documented pre-steps (characters already allowed,
    surrounding blanks dropped, a leading 00 read as +): (e164, region) or None."""
    text = raw.strip(" \t")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return (phonenumbers.format_number(number, PhoneNumberFormat.E164),
            phonenumbers.region_code_for_number(number))


def _seeds(rng):
    """Valid numbers of every type of every region, with their last digits varied: many for
    the regions named above, a few for all the others."""
    out = []
    for region in REGIONS + OTHER_REGIONS:
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            nsn = phonenumbers.national_significant_number(example)
            for _ in range(60 if region in REGIONS else 6):
                keep = max(1, len(nsn) - rng.randint(1, 6))
                digits = nsn[:keep] + "".join(rng.choice("0123456789")
                                              for _ in range(len(nsn) - keep))
                if rng.random() < 0.1:        # a digit more or less
                    digits = (digits[:-1] if rng.random() < 0.5
                              else digits + rng.choice("0123456789"))
                out.append((region, example.country_code, digits))
    return out


def _spaced(rng, digits):
    """Digits with separators at random places, sometimes a '(area)'."""
    if len(digits) > 4 and rng.random() < 0.25:
        cut = rng.randint(1, min(4, len(digits) - 1))
        return "(%s) %s" % (digits[:cut], _spaced(rng, digits[cut:]))
    out = []
    for i, char in enumerate(digits):
        if i and rng.random() < 0.25:
            out.append(rng.choice(SEPARATORS))
        out.append(char)
    return "".join(out)


def _formatted(rng, region, cc, nsn):
    """One way a person or a spreadsheet might write the number, and the region to read it
    with (usually its own, sometimes another)."""
    read_as = region if rng.random() < 0.75 else rng.choice(REGIONS + OTHER_REGIONS[::7])
    number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    if nsn.startswith("0"):
        number.italian_leading_zero = True
        zeros = len(nsn) - len(nsn.lstrip("0"))
        if zeros > 1:
            number.number_of_leading_zeros = min(zeros, len(nsn) - 1)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    shape = rng.randrange(12)
    if shape == 0:
        return read_as, phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if shape == 1:
        return read_as, phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if shape == 2:
        return read_as, "+%d%s" % (cc, nsn)
    if shape == 3:
        return read_as, "00%d %s" % (cc, _spaced(rng, nsn))
    if shape == 4:
        return read_as, "%d%s" % (cc, nsn)                            # code without '+'
    if shape == 5:
        prefix = meta.national_prefix or ""
        return read_as, _spaced(rng, prefix + nsn)                    # trunk prefix
    if shape == 6:
        return read_as, "+%d (%s) %s" % (cc, meta.national_prefix or "0", _spaced(rng, nsn))
    if shape == 7:
        idd = (meta.preferred_international_prefix or meta.international_prefix or "00")
        idd = idd if idd.isdigit() else "00"
        return read_as, "%s %d %s" % (idd, cc, _spaced(rng, nsn))   # the region's own IDD
    if shape == 8:
        return read_as, "\t" + _spaced(rng, nsn).replace(" ", rng.choice((" ", "\t"))) + " "
    if shape == 9:
        prefix = meta.national_prefix or ""
        return read_as, "%d %s" % (cc, _spaced(rng, prefix + nsn))   # code and trunk prefix
    return read_as, _spaced(rng, nsn)                                   # national, no prefix


def _random_digits(rng):
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 17)))
    start = rng.choice(("", "", "+", "00", "0", "1", "011"))
    return rng.choice(REGIONS), start + _spaced(rng, digits)


def corpus(size, seed=10):
    rng = random.Random(seed)
    seeds = _seeds(rng)
    out = []
    while len(out) < size:
        if rng.random() < 0.2:
            out.append(_random_digits(rng))
        else:
            out.append(_formatted(rng, *rng.choice(seeds)))
    return out


def test_phone_fast_path_agrees_with_phonenumbers_on_corpus():
    mismatches, accepted, fast_accepted, plain_accepted = [], 0, 0, 0
    for region, raw in corpus(CORPUS_SIZE):
        expected = reference(raw, region)
        got = phone._fast(raw.strip(" \t"), region)
        if got is not None and got != expected:
            mismatches.append((raw, region, got, expected))
        if expected is not None:
            accepted += 1
            fast_accepted += got is not None
            plain_accepted += "\t" not in raw.strip(" \t")
    assert mismatches[:10] == []
    # The fast path must carry most of the load, not hand it all back.
    assert accepted > CORPUS_SIZE // 3
    assert fast_accepted >= 0.75 * plain_accepted, (fast_accepted, plain_accepted, accepted)


def test_phone_parse_number_matches_exact_path_reasons_included():
    for region, raw in corpus(10_000, seed=11):
        try:
            expected = phone.parse_number_exact(raw, region)
        except PhoneError as err:
            expected = "PhoneError: %s" % err
        else:
            assert expected == reference(raw, region), raw
        try:
            got = phone.parse_number(raw, region)
        except PhoneError as err:
            got = "PhoneError: %s" % err
        assert (raw, region, got) == (raw, region, expected)


@pytest.mark.parametrize("raw, region, expected", [
    ("(202) 555-0123", "US", ("+12025550123", "US")),
    ("1 202 555 0123", "US", ("+12025550123", "US")),       # country code without '+'
    ("+1 416 555 0123", "US", ("+14165550123", "CA")),      # shared +1: region by number
    ("(787) 555-0123", "US", ("+17875550123", "PR")),
    ("020 7946 0000", "GB", ("+442079460000", "GB")),       # trunk prefix stripped
    ("+44 (0)20 7946 0000", "US", ("+442079460000", "GB")),
    ("01624 612345", "GB", ("+441624612345", "IM")),        # shared +44
    ("06 1234 5678", "IT", ("+390612345678", "IT")),        # Italian leading zero kept
    ("0039 06 1234 5678", "US", ("+390612345678", "IT")),
    ("8 (495) 123-45-67", "RU", ("+74951234567", "RU")),    # shared +7, trunk 8
    ("(11) 91234-5678", "BR", ("+5511912345678", "BR")),
    ("03-1234-5678", "JP", ("+81312345678", "JP")),
])
def test_phone_fast_path_examples(raw, region, expected):
    assert phone.parse_number(raw, region) == expected
    assert reference(raw, region) == expected


@pytest.mark.parametrize("raw, region", [
    ("011 44 20 7946 0000", "US"),     # the region's own international prefix
    ("\t202\t555\t0123", "US"),        # tabs inside: not phonenumbers' punctuation
    ("+800 1234 5678", "US"),          # non-geographic code
    ("555 010 0123", "US"),            # invalid: every reject goes to phonenumbers
    ("12", "US"),
])
def test_phone_fast_path_declines_what_it_does_not_transcribe(raw, region):
    assert phone._fast(raw.strip(" \t"), region) is None


def test_phone_fast_path_compiles_for_every_region_and_length():
    # A pattern that failed to compile on first use would raise out of parse_number.
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        plan = phone._plan(region)
        for length in range(2, 18):
            assert plan.valid("1" * length) in (True, False)
