"""Issue 10 acceptance, end to end on the real Asterisk 22: a Do-Not-Call file written the way
ordinary tools write it (an Excel export in French, a 20-column CRM export, a `name,phone` file)
is imported completely by `agi-campaign dnc import` AFTER the campaign's numbers, and the
service then never dials one of them. Calls are counted from Asterisk's own events
(harness.ChannelMonitor), not from our database; everything else goes through the real CLI."""
import json
import re

import pytest

from agi_campaign.testing import harness
from agi_campaign.testing.process import ServiceProcess
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import campaign, cli, wait_for

pytestmark = pytest.mark.asterisk

NAME = "dncfiles"
COUNT, EXTRA = 40, 3  # campaign numbers; DNC rows for numbers the campaign does not have


def _national(e164, style):
    area, exchange, line = e164[2:5], e164[5:8], e164[8:]
    return ("%s %s %s" if style == "spaces" else "(%s) %s-%s") % (area, exchange, line)


def excel_fr_semicolon_cp1252(path, phones):
    """Excel (French locale) "CSV": ';'-separated, Windows-1252, CRLF, phone in column 2 in
    national format with spaces, a remark quoted because it holds the delimiter."""
    rows = ["Nom;Téléphone;Remarque"]
    for i, p in enumerate(phones):
        remark = '"rappel; jamais – client n°%d"' % i if i % 4 == 0 else "ne pas appeler"
        rows.append("Hélène Dupré %d;%s;%s" % (i, _national(p, "spaces"), remark))
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    return ["--encoding", "cp1252"]


CRM_HEADER = ["Record ID", "First Name", "Last Name", "Company", "Title", "Email",
              "Mobile Phone", "Street", "City", "State", "Zip", "Country", "Lead Source",
              "Owner", "Created", "Modified", "Status", "Tags", "Notes", "Opt Out"]


def crm_tab_20_columns(path, phones):
    """A CRM export: UTF-8 with BOM, tab-separated, 20 columns, the phone in column 7."""
    rows = ["\t".join(CRM_HEADER)]
    for i, p in enumerate(phones):
        rows.append("\t".join([
            str(100400 + i), "Ana", "Núñez %d" % i, "Acme Corp", "Buyer", "ana%d@example.com" % i,
            _national(p, "parens"), "%d Main St" % (10 + i), "Denver", "CO", "80202", "USA",
            "Web", "j.smith", "2024-03-12 10:15", "2024-06-01 08:00", "Do not contact", "",
            "asked not to be called", "Yes"]))
    path.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    return []


def name_phone_comma(path, phones):
    """The file of issue 10's headline: `name,phone`, the phone in column 2."""
    rows = ["name,phone"] + ["Person %d,%s" % (i, p) for i, p in enumerate(phones)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return []


def ok(result):
    assert result.returncode == 0, (result.args[5:], result.returncode, result.stdout,
                                    result.stderr)
    return result.stdout


def status(config):
    (row,) = json.loads(ok(cli(config, "status", NAME, "--json")))["campaigns"]
    return row


@pytest.mark.parametrize("layout, first", [(excel_fr_semicolon_cp1252, 45000),
                                           (crm_tab_20_columns, 45100),
                                           (name_phone_comma, 45200)],
                         ids=["excel-fr-semicolon-cp1252", "crm-tab-20-columns",
                              "name-phone-comma"])
def test_dnc_file_of_any_layout_is_imported_completely_and_never_dialed(asterisk, tmp_path,
                                                                        layout, first):
    phones = [harness.callee_number(first + i, "answer", hold_s=1) for i in range(COUNT)]
    blocked = phones[::3] + [harness.callee_number(first + COUNT + i, "answer")
                             for i in range(EXTRA)]
    port = free_port()
    config = harness.write_config(tmp_path / "config.yaml", {"main": asterisk}, port, {
        NAME: campaign(max_channels=25, delay_ms=0, max_attempts=1)})
    numbers_csv = harness.write_csv(tmp_path / "numbers.csv", phones)
    first_line = ok(cli(config, "numbers", "import", NAME, numbers_csv)).splitlines()[0]
    assert re.search(r": %d rows: %d imported, 0 duplicates, 0 invalid, 0 on" % (COUNT, COUNT),
                     first_line), first_line

    dnc_file = tmp_path / "dnc-export.csv"
    options = layout(dnc_file, blocked)
    summary = ok(cli(config, "dnc", "import", "blocked", dnc_file, *options))
    counts = re.search(r": (\d+) rows: (\d+) added, (\d+) already listed, (\d+) invalid",
                       summary)
    assert counts and [int(c) for c in counts.groups()] == [len(blocked), len(blocked), 0, 0], \
        summary
    blocked_here = [p for p in blocked if p in phones]
    before = status(config)["numbers"]
    assert before["total"] == COUNT and before["blocked"] == len(blocked_here), before

    service = ServiceProcess(config, tmp_path / "service.log", port)
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            ok(cli(config, "campaign", "start", NAME))
            service.start()
            wait_for(lambda: status(config)["state"] == "COMPLETED", 45, step=1)
            wait_for(lambda: not mon.live, 10)
        finally:
            service.stop(graceful=True)
            print(service.log_tail())
            if mon.live:
                asterisk.cli("channel request hangup all")

    dialed = {"+" + number: n for number, n in mon.dialed.items()}
    assert [p for p in blocked if p in dialed] == []  # no DNC number got a callee leg
    assert {p: dialed.get(p, 0) for p in phones if p not in blocked} == \
        {p: 1 for p in phones if p not in blocked}  # every other number exactly one
    assert set(dialed) <= set(phones) and mon.started == COUNT - len(blocked_here)
    after = status(config)["numbers"]
    assert (after["dnc"], after["blocked"], after["done"], after["pending"]) == \
        (len(blocked_here), 0, COUNT - len(blocked_here), 0), after
