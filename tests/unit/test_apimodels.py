"""The API's request models and its opaque cursor; uploads.write_csv (JSON upload -> CSV)."""
import csv

import pydantic
import pytest

from agi_campaign import apimodels, uploads
from agi_campaign.errors import UsageError


def test_apimodels_cursor_round_trip_and_garbage_refused():
    for key, kind in ((0, int), (123456789, int), ("+12025550100", str)):
        assert apimodels.decode_cursor(apimodels.encode_cursor(key), kind) == key
    for garbage in ("", "abc", "!!!", apimodels.encode_cursor("x"), apimodels.encode_cursor(True),
                    "eyJ4IjogMX0", apimodels.encode_cursor(10 ** 30),
                    apimodels.encode_cursor(-1)):
        with pytest.raises(UsageError, match="cursor: .* is not a cursor this API returned"):
            apimodels.decode_cursor(garbage, int)


def test_apimodels_upload_needs_exactly_one_of_numbers_or_rows():
    for body in ('{}', '{"numbers": ["1"], "rows": [{"phone": "1"}]}', '{"numbers": []}',
                 '{"numbers": ["1"], "extra": 1}', '{"rows": [{"phone": [1]}]}'):
        with pytest.raises(pydantic.ValidationError):
            apimodels.NumbersUpload.model_validate_json(body)


def test_uploads_write_csv_numbers_and_rows(tmp_path):
    path = tmp_path / "n.csv"
    upload = apimodels.NumbersUpload(numbers=["+12025550100", "(202) 555-0101"])
    assert uploads.write_csv(upload, path) == "phone"
    assert list(csv.reader(open(path, newline=""))) == [
        ["phone"], ["+12025550100"], ["(202) 555-0101"]]
    upload = apimodels.NumbersUpload(rows=[{"name": "Ann, Jr.", "phone": "2025550100"},
                                           {"phone": "2025550101", "vip": True, "n": 2},
                                           {"phone": None}])
    uploads.write_csv(upload, path)
    assert list(csv.reader(open(path, newline=""))) == [
        ["phone", "name", "vip", "n"], ["2025550100", "Ann, Jr.", "", ""],
        ["2025550101", "", "true", "2"], ["", "", "", ""]]
