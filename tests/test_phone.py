"""Phone numbers (DESIGN §2, §8): E.164 normalization with a default region, masking for logs,
and the fast path for common Russian spellings, checked against phonenumbers.parse."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kernel.errors import InvalidPhone
from leads.lead import InvalidReason
from leads.phone import _fast_parse, format_for_dialing, mask_phone, normalize_phone, zones_for_number


@pytest.mark.parametrize("raw", [
    "8 (912) 345-67-89", "+7 912 345 67 89", "9123456789", "89123456789", "+79123456789", "79123456789",
    "+7(912)345-67-89", "8-912-345-6789", "  8 912 345 67 89  ", "8.912.345.67.89", "+7 (912) 345 - 67 - 89",
])
def test_given_a_usual_spelling_when_normalized_then_e164(raw):
    phone = normalize_phone(raw, "RU")
    assert (phone.e164, phone.extension) == ("+79123456789", None)


def test_given_a_landline_with_an_extension_when_normalized_then_the_extension_is_kept():
    phone = normalize_phone("8 (495) 123-45-67 доб. 123", "RU")
    assert (phone.e164, phone.extension, str(phone)) == ("+74951234567", "123", "+74951234567 ext. 123")


def test_given_a_foreign_number_with_country_code_when_normalized_then_region_does_not_matter():
    assert normalize_phone("+49 30 901820", "RU").e164 == "+4930901820"


def test_given_another_default_region_when_normalized_then_national_numbers_use_it():
    assert normalize_phone("030 901820", "DE").e164 == "+4930901820"
    assert normalize_phone("8 (701) 123-45-67", "KZ").e164 == "+77011234567"


@pytest.mark.parametrize("raw, reason", [
    (None, InvalidReason.NO_PHONE), ("", InvalidReason.NO_PHONE), (" \t", InvalidReason.NO_PHONE),
    ("не скажу", InvalidReason.UNPARSABLE), ("9" * 101, InvalidReason.UNPARSABLE),
    ("+7 000", InvalidReason.NOT_VALID), ("12345", InvalidReason.NOT_VALID),
    ("8 800 555-35-35", InvalidReason.NOT_CALLABLE_TYPE),
    ("9999999999", InvalidReason.FAKE), ("+7 999 999 99 99", InvalidReason.FAKE),
    ("9876543210", InvalidReason.FAKE),
])
def test_given_a_number_that_cannot_be_called_when_normalized_then_the_reason_says_why(raw, reason):
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw, "RU")
    assert caught.value.reason == reason


def test_given_a_number_when_masked_then_only_the_start_and_the_last_four_digits_show():
    assert mask_phone("+79123456789") == "+7912***6789"
    assert mask_phone("+4930901820") == "+4930***1820"
    assert mask_phone("+7912") == "+7***"
    assert mask_phone(None) == "-"
    assert mask_phone("") == "-"


def test_given_a_mask_when_compared_with_the_number_then_no_middle_digit_leaks():
    masked = mask_phone("+79123456789")
    assert "345" not in masked and "3456789" not in masked


@pytest.mark.parametrize("style, expected", [("e164", "+79123456789"), ("digits", "79123456789"),
                                             ("national", "89123456789")])
def test_given_a_trunk_style_when_formatting_for_dialing_then_the_number_is_written_that_way(style, expected):
    assert format_for_dialing("+79123456789", style) == expected


def test_given_a_vladivostok_landline_when_asking_its_zones_then_vladivostok():
    assert zones_for_number("+74232123456") == ("Asia/Vladivostok",)


# ---- the fast path agrees with phonenumbers.parse

SEPARATORS = st.sampled_from([" ", "-", "(", ")", ".", "  ", " - ", "\t", "\u00a0", "\u2009"])


@st.composite
def plain_spellings(draw):
    """Strings shaped like phone numbers: an optional + and prefix, 8 to 12 digits, any separators."""
    prefix = draw(st.sampled_from(["", "+", "+7", "8", "7", "+8", "(8", "+7 (", "8 ("]))
    digits = draw(st.text(alphabet="0123456789", min_size=8, max_size=12))
    parts = [prefix]
    for digit in digits:
        if draw(st.booleans()) and draw(st.booleans()):
            parts.append(draw(SEPARATORS))
        parts.append(digit)
    if draw(st.booleans()) and draw(st.booleans()):
        parts.append(draw(SEPARATORS))
    return "".join(parts)


@settings(max_examples=600, deadline=None)
@given(plain_spellings(), st.sampled_from(["RU", "KZ"]))
@example("8 (912) 345-67-89", "RU")
@example("+7 912 345 67 89", "RU")
@example("9123456789", "KZ")
@example("8 (800) 555-35-35", "RU")
def test_property_fast_parse_agrees_with_phonenumbers_whenever_it_answers(text, region):
    fast = _fast_parse(text, region)
    if fast is None:
        return
    assert fast == phonenumbers.parse(text, region)


@given(st.text(max_size=30), st.sampled_from(["RU", "KZ", "DE"]))
def test_property_fast_parse_never_answers_what_phonenumbers_refuses(text, region):
    fast = _fast_parse(text, region)
    if fast is None:
        return
    assert fast == phonenumbers.parse(text, region)


def test_given_fast_path_shapes_when_parsed_then_the_fast_path_answers():
    """The property above is only worth something if the fast path really answers for these."""
    for text in ("8 (912) 345-67-89", "+7 912 345 67 89", "9123456789"):
        assert _fast_parse(text, "RU") is not None
    assert _fast_parse("030 901820", "DE") is None
