"""Property tests: each UK identifier validator accepts generated valid values and rejects corruptions."""

from hypothesis import assume, given
from hypothesis import strategies as st

from engine import identifiers as ids


@st.composite
def nhs_numbers(draw, test_range=False):
    prefix = f"999{draw(st.integers(0, 999_999)):06d}" if test_range else f"{draw(st.integers(0, 10**9 - 1)):09d}"
    check = ids.nhs_check_digit(prefix)
    assume(check is not None)
    return prefix + str(check)


@given(nhs_numbers())
def test_nhs_valid_accepted_and_every_check_digit_corruption_rejected(n):
    assert ids.is_valid_nhs_number(n)
    assert ids.is_valid_nhs_number(f"{n[:3]} {n[3:6]} {n[6:]}")
    for d in "0123456789":
        if d != n[9]:
            assert not ids.is_valid_nhs_number(n[:9] + d)


@given(nhs_numbers(), st.integers(min_value=0, max_value=8), st.integers(min_value=1, max_value=9))
def test_nhs_any_single_digit_change_rejected(n, pos, delta):
    changed = n[:pos] + str((int(n[pos]) + delta) % 10) + n[pos + 1:]
    assert not ids.is_valid_nhs_number(changed)


@given(nhs_numbers(test_range=True))
def test_nhs_test_range(n):
    assert n.startswith("999") and ids.is_valid_nhs_number(n)


FIRST = "ABCEGHJKLMNOPRSTWXYZ"
SECOND = "ABCEGHJKLMNPRSTWXYZ"


@st.composite
def ni_numbers(draw):
    prefix = draw(st.sampled_from(FIRST)) + draw(st.sampled_from(SECOND))
    assume(prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
    digits = f"{draw(st.integers(0, 999_999)):06d}"
    return prefix + digits + draw(st.sampled_from("ABCD"))


@given(ni_numbers(), st.sampled_from("DFIQUV"), st.sampled_from("EFGXYZ"))
def test_ni_numbers(ni, bad_letter, bad_suffix):
    assert ids.is_valid_ni_number(ni)
    assert ids.normalise_ni_number(f"{ni[:2].lower()} {ni[2:4]} {ni[4:6]} {ni[6:8]} {ni[8]}") == ni
    assert not ids.is_valid_ni_number(bad_letter + ni[1:])
    assert not ids.is_valid_ni_number(ni[:8] + bad_suffix)
    assert not ids.is_valid_ni_number(ni[:2] + "1234567" + ni[8])


@st.composite
def postcodes(draw):
    area = draw(st.sampled_from(["SW", "M", "B", "EC", "LS", "G", "CF", "BT"]))
    district = str(draw(st.integers(min_value=1, max_value=99)))
    sector = str(draw(st.integers(min_value=0, max_value=9)))
    unit = draw(st.sampled_from("ABDEFGHJLNPQRSTUWXYZ")) + draw(st.sampled_from("ABDEFGHJLNPQRSTUWXYZ"))
    return f"{area}{district} {sector}{unit}"


@given(postcodes(), st.sampled_from("CIKMOV"))
def test_postcodes(pc, bad):
    assert ids.normalise_postcode(pc.replace(" ", "").lower()) == pc
    assert not ids.is_valid_postcode(pc[:-1] + bad)  # letters never used in the inward unit
    assert not ids.is_valid_postcode(pc.replace(" ", "")[:-3])


@given(st.text(alphabet="0123456789", min_size=6, max_size=6), st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_bank_details(sort, account):
    assert ids.normalise_sort_code(sort) == f"{sort[:2]}-{sort[2:4]}-{sort[4:]}"
    assert ids.is_valid_account_number(account)
    assert not ids.is_valid_sort_code(sort + "1")
    assert not ids.is_valid_account_number(account[:7])


@given(st.integers(min_value=10**5, max_value=10**16))
def test_snomed_verhoeff(n):
    body = str(n)
    code = body + str(ids.verhoeff_check_digit(body))
    assert ids.is_valid_snomed_code(code)
    for d in "0123456789":
        if d != code[-1]:
            assert not ids.is_valid_snomed_code(code[:-1] + d)


def test_known_snomed_codes():
    assert ids.is_valid_snomed_code("91936005")  # allergy to penicillin
    assert ids.is_valid_snomed_code("22298006")  # myocardial infarction


def test_phone():
    assert ids.normalise_phone("07911 123456") == "+447911123456"
    assert not ids.is_valid_phone("0791112345")
