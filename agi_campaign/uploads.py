"""Numbers uploads of the HTTP API turned into the CSV file the importer reads.

A CSV body is written to the file as it arrives (``save_body``; its size is bounded by
agi_campaign.guard). A JSON upload (apimodels.NumbersUpload) is written as a CSV file
(``write_csv``): ``numbers`` under a ``phone`` header; ``rows`` with ``phone`` first, then the
other keys in the order first met (a row without one of them gets an empty cell). The importer
then applies the same rules and report as to any file.
"""
import csv

CSV_TYPES = ("text/csv", "application/csv", "text/plain")


async def save_body(request, path):
    """Write the request's body to the file ``path`` as it arrives; returns its size."""
    size = 0
    with open(path, "wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
            size += len(chunk)
    return size


def write_csv(upload, path):
    """Write a NumbersUpload as a CSV file at ``path`` (see the module docstring); returns the
    name of its phone column."""
    if upload.numbers is not None:
        columns, rows = ["phone"], ({"phone": n} for n in upload.numbers)
    else:
        keys = {"phone": None}
        for row in upload.rows:
            keys.update(dict.fromkeys(row))
        columns, rows = list(keys), upload.rows
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(row.get(c)) for c in columns])
    return "phone"


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
