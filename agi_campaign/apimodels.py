"""The HTTP API's request and response bodies (pydantic models) and its opaque cursor.

Request models forbid unknown fields, so a misspelt key is a 422 naming it rather than a
silently ignored option. Response models document the JSON in the published OpenAPI schema
(docs/openapi.json); campaign objects are those of ``agi-campaign status --json``.
"""
import base64
import binascii
import json
from typing import Annotated, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agi_campaign.errors import UsageError

MAX_LIMIT = 1000
PhoneText = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Cell = Union[str, int, float, bool, None]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandRequest(Strict):
    """start, pause and resume take no option: no body, or an empty object."""


class ResetRequest(Strict):
    all: bool = Field(False, description="re-arm done numbers too (`campaign reset --all`)")


class NumbersUpload(Strict):
    """A JSON upload: exactly one of ``numbers`` (phone numbers) or ``rows`` (objects with a
    ``phone`` key and any other columns, kept as the numbers' extra columns)."""
    numbers: Optional[list[PhoneText]] = Field(None, min_length=1)
    rows: Optional[list[dict[Annotated[str, StringConstraints(min_length=1, max_length=200)],
                             Cell]]] = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self):
        if (self.numbers is None) == (self.rows is None):
            raise ValueError("give exactly one of 'numbers' (a list of phone numbers) or "
                             "'rows' (a list of objects with a 'phone' key)")
        return self


class DncNumbers(Strict):
    numbers: list[PhoneText] = Field(min_length=1, max_length=10000)
    region: Optional[str] = Field(None, description="how numbers without +country code are "
                                                    "read (default: the campaigns' region)")


class ErrorBody(BaseModel):
    error: str


class Forecast(BaseModel):
    """When the campaign is expected to finish (agi_campaign.forecast; README "Completion
    forecast")."""
    finishes_at: Optional[str] = Field(None, description="ISO time in the campaign's zone; "
                                                         "None with a reason")
    remaining: Optional[int] = Field(None, description="numbers still to settle: pending and "
                                                       "in flight")
    reason: Optional[str] = Field(None, description="why there is no forecast, else None")
    cannot_finish_before_end: bool = Field(False, description="a scheduled campaign whose end "
                                                              "comes before its finish")
    left_at_end: Optional[int] = Field(None, description="numbers expected unsettled at that "
                                                         "end")
    attempts: Optional[int] = Field(None, description="attempts expected still to make")
    per_minute: Optional[float] = Field(None, description="attempts a minute while the window "
                                                          "is open")
    limited_by: Optional[str] = Field(None, description="max_channels or delay_ms")
    mean_attempt_s: Optional[float] = Field(None, description="mean duration of those attempts")
    observed: int = Field(0, description="recent ended attempts the outcome mix comes from")
    rough: bool = Field(False, description="fewer than 20 calls ended: a prior outcome mix and "
                                           "durations fill in")


class CampaignObject(BaseModel):
    """``status --json`` fields, the completion ``forecast`` included."""
    model_config = ConfigDict(extra="allow")
    name: str
    type: str
    server: str
    state: str
    since: str
    reason: str
    numbers: dict[str, int]
    attempts: int
    in_flight: int
    hours_open_next: Optional[str]
    forecast: Forecast


class CampaignList(BaseModel):
    campaigns: list[CampaignObject]


class ImportResult(BaseModel):
    """The CLI's import report as JSON: counts (``rows == imported + duplicates + invalid +
    dnc``), how the file was read, the first 50 rejected rows, and the exit status the CLI
    would return with its meaning."""
    rows: int
    imported: int
    duplicates: int
    invalid: int
    dnc: int
    blank: int
    lines: int
    read_as: str
    dry_run: bool
    batch_id: Optional[int]
    rejected: list[dict]
    exit_status: int
    meaning: str
    campaign_state: str


class AttemptObject(BaseModel):
    id: int
    phone: str
    seq: int
    server: Optional[str]
    status: str
    created_at: Optional[str]
    answered_at: Optional[str]
    ended_at: Optional[str]
    outcome: Optional[str]
    dial_status: Optional[str]
    hangup_cause: Optional[int]
    duration_s: Optional[float]
    billsec_s: Optional[float]
    dest_result: Optional[str]
    amd_status: Optional[str]
    amd_cause: Optional[str]
    digits: Optional[str]
    opted_out: Optional[bool]
    note: Optional[str]


class AttemptPage(BaseModel):
    attempts: list[AttemptObject]
    next_cursor: Optional[str] = Field(description="pass as `cursor` for the next page; null "
                                                   "on the last one")


class DncAdded(BaseModel):
    list: str
    added: int
    already: int


class DncRemoved(BaseModel):
    list: str
    removed: list[str]
    not_listed: list[str]


class DncCheck(BaseModel):
    number: str
    lists: list[str]


class DncListInfo(BaseModel):
    name: str
    description: Optional[str]
    entries: int


class DncEntries(BaseModel):
    list: str
    entries: list[dict]
    next_cursor: Optional[str]


def encode_cursor(key):
    """An opaque cursor for the keyset page after ``key`` (an id or a phone)."""
    return base64.urlsafe_b64encode(json.dumps({"after": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor, kind):
    """The key a cursor of ``encode_cursor`` holds (``kind``: int or str); UsageError naming
    ``cursor`` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["after"]
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        key = None
    if not isinstance(key, kind) or isinstance(key, bool) or (
            kind is int and not 0 <= key < 2 ** 63) or (kind is str and len(key) > 40):
        raise UsageError("cursor: %r is not a cursor this API returned; pass the next_cursor "
                         "of the previous page, or none for the first page" % cursor[:60])
    return key
