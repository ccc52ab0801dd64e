"""Reading a campaign's contacts: bad rows are reported and kept, never fatal."""

from __future__ import annotations

import pytest

from gateway.campaign.contacts import ContactsError, read_contacts
from gateway.campaign.model import ContactState, Result

CSV = (
    "\ufeffPhone,name,timezone,appointment\n"
    "+1 212 555 0101,Ada,,Tuesday 10:00\n"
    "not a number,Bob,,\n"
    "+442071838750,Cy,Mars/Olympus,\n"
    "\n"
    "+12125550101,Ada again,,\n"
    "+61291234567,Di,Australia/Perth,Friday\n"
    "+18005550100,Ed,,\n"
    "+442071838751," + "x" * 501 + ",,\n"
)


def test_rows_become_contacts_with_their_parameters_and_zones() -> None:
    found = read_contacts(CSV.encode(), "cid")
    by_seq = {c.seq: c for c in found.contacts}
    assert sorted(by_seq) == [1, 2, 3, 5, 6, 7, 8]  # the blank line is no contact
    ada = by_seq[1]
    assert (ada.number, ada.zones, dict(ada.parameters)) == (
        "+12125550101", ("America/New_York",), {"name": "Ada", "appointment": "Tuesday 10:00"})
    assert by_seq[6].zones == ("Australia/Perth",)  # the column beats the number's country
    assert len(by_seq[7].zones) > 10  # toll-free: every zone of the plan
    assert by_seq[7].state is ContactState.PENDING
    assert [(b.seq, b.reason.split(":")[0]) for b in found.bad] == [
        (2, "number"), (3, "unknown time zone 'Mars/Olympus' (expected e.g. America/New_York)"),
        (8, "parameters.name")]
    for seq in (2, 3, 8):
        assert (by_seq[seq].state, by_seq[seq].result) == (ContactState.SKIPPED, Result.INVALID)
    dup = by_seq[5]
    assert (dup.state, dup.result, dup.error) == (ContactState.SKIPPED, Result.DUPLICATE,
                                                  "same number as row 1")
    assert found.digest == read_contacts(CSV.encode(), "other").digest


@pytest.mark.parametrize(("text", "problem"), [
    (b"", "empty"),
    (b"name,city\nAda,Paris\n", "no number column"),
    (b"number,first name\n+12125550101,Ada\n", "column parameters.first name"),
    (b"number\n\xff\xfe\n", "not UTF-8"),
])
def test_a_file_that_cannot_be_used_says_why(text: bytes, problem: str) -> None:
    with pytest.raises(ContactsError, match=problem):
        read_contacts(text, "cid")
