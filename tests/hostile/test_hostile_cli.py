"""Hostile command lines, run in-process through agi_campaign.cli.main.

Each exits non-zero with either argparse's usage (exit 2) or exactly one line
`agi-campaign: error: ...` naming the input; never a traceback; and the database (row counts
of every table) and the work folder are unchanged.
"""
import os
import sqlite3

import pytest

from agi_campaign import cli

from tests.hostile.support import files_in, write_config

pytestmark = pytest.mark.timeout(60)


def table_counts(db_path):
    if not os.path.exists(db_path):
        return None
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute('SELECT COUNT(*) FROM "%s"' % t).fetchone()[0] for t in tables}


@pytest.fixture
def setup(work, capsys):
    """A valid config with an initialised database (campaigns synced, one DNC entry)."""
    cfg = write_config(work)
    assert cli.main(["--config", cfg, "dnc", "add", "global", "2025550199"]) == 0
    (work / "good.csv").write_text("phone\n2025550101\n")
    (work / "latin1.csv").write_bytes("phone,name\n2025550101,Jos\xe9\n".encode("latin-1"))
    (work / "bad.yaml").write_text("servers: [\n")
    (work / "adir").mkdir()
    capsys.readouterr()
    return cfg


def run_cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


USAGE, ERROR = "usage", "error"
CASES = [
    # (id, argv after --config CFG (None: no --config), kind, expected text, exit code)
    ("no-command", [], USAGE, "the following arguments are required: COMMAND", 2),
    ("unknown-command", ["frobnicate"], USAGE, "invalid choice: 'frobnicate'", 2),
    ("unknown-option", ["--nope", "status"], USAGE, "unrecognized arguments: --nope", 2),
    ("numbers-no-action", ["numbers"], USAGE, "required: ACTION", 2),
    ("numbers-import-no-file", ["numbers", "import", "c1"], USAGE, "required: file", 2),
    ("dnc-add-no-number", ["dnc", "add", "global"], USAGE, "required: numbers", 2),
    ("campaign-bad-action", ["campaign", "explode", "c1"], USAGE, "invalid choice: 'explode'", 2),
    ("demo-negative", ["demo", "--numbers", "-5"], USAGE, "must be 1..10000, got -5", 2),
    ("demo-zero", ["demo", "--numbers", "0"], USAGE, "must be 1..10000, got 0", 2),
    ("demo-not-int", ["demo", "--numbers", "ten"], USAGE, "'ten' is not an integer", 2),
    ("run-bad-log-level", ["run", "--log-level", "TRACE"], USAGE, "invalid choice: 'TRACE'", 2),
    ("config-missing", ["--config", "{work}/nope.yaml", "check-config"], ERROR,
     "nope.yaml does not exist", 2),
    ("config-directory", ["--config", "{work}/adir", "check-config"], ERROR,
     "cannot read the configuration file", 2),
    ("config-invalid-yaml", ["--config", "{work}/bad.yaml", "status"], ERROR,
     "bad.yaml: line 2 column 1: invalid YAML", 2),
    ("unknown-campaign-start", ["campaign", "start", "nope"], ERROR,
     "campaign 'nope' is not in", 2),
    ("traversal-campaign-name", ["campaign", "pause", "../c1"], ERROR, "'../c1' is not in", 2),
    ("unknown-campaign-import", ["numbers", "import", "nope", "{work}/good.csv"], ERROR,
     "campaign 'nope' is not in", 2),
    ("unknown-campaign-status", ["status", "nope"], ERROR, "campaign 'nope' is not known", 2),
    ("unknown-campaign-history", ["campaign", "history", "nope"], ERROR,
     "campaign 'nope' is not known", 2),
    ("scheduled-start", ["campaign", "start", "sched"], ERROR, "campaign sched is scheduled", 2),
    ("reset-ready", ["campaign", "reset", "c1"], ERROR, "READY: 'reset' applies only when", 2),
    ("import-missing-file", ["numbers", "import", "c1", "{work}/none.csv"], ERROR,
     "none.csv: cannot read the file", 2),
    ("import-directory", ["numbers", "import", "c1", "{work}/adir"], ERROR,
     "adir: cannot read the file", 2),
    ("import-latin1", ["numbers", "import", "c1", "{work}/latin1.csv"], ERROR,
     "latin1.csv line 2 (byte offset 25): not UTF-8", 2),
    ("import-unknown-column", ["numbers", "import", "c1", "{work}/good.csv", "--phone-column",
                               "mobile"], ERROR, "no column named 'mobile'", 2),
    ("import-rejects-nowhere", ["numbers", "import", "c1", "{work}/good.csv", "--rejects",
                                "{work}/no/dir/r.csv"], ERROR, "cannot write the rejects file", 2),
    ("dnc-unknown-list", ["dnc", "add", "nolist", "2025550123"], ERROR,
     "Do-Not-Call list 'nolist' is not configured; configured lists: global", 2),
    ("dnc-import-unknown-list", ["dnc", "import", "nolist", "{work}/good.csv"], ERROR,
     "list 'nolist' is not configured", 2),
    ("dnc-add-invalid", ["dnc", "add", "global", "2025550123", "12ab"], ERROR,
     "dnc add global: not a valid phone number (region US): '12ab' (contains letters); "
     "nothing was added", 2),
    ("dnc-add-injection", ["dnc", "add", "global", "2025550123&SIP/evil"], ERROR,
     "contains '&'", 2),
    ("dnc-remove-invalid", ["dnc", "remove", "global", "2025550199", "+"], ERROR,
     "'+' is not a valid phone number", 2),
    ("dnc-check-invalid", ["dnc", "check", "\u0661\u0662\u0663"], ERROR,
     "is not a valid phone number (region US)", 2),
    ("dnc-import-missing", ["dnc", "import", "global", "{work}/none.csv"], ERROR,
     "none.csv: cannot read the file", 2),
]


@pytest.mark.parametrize("argv,kind,expected,code", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_cli_fails_cleanly(setup, work, capsys, argv, kind, expected, code):
    db_path = str(work / "acamp.db")
    before_db, before_files = table_counts(db_path), files_in(work)
    argv = [a.replace("{work}", str(work)) for a in argv]
    if "--config" not in argv:
        argv = ["--config", setup] + argv
    got, out, err = run_cli(argv, capsys)
    assert got == code, (out, err)
    assert "Traceback" not in out + err
    if kind == USAGE:
        assert err.startswith("usage: agi-campaign") and expected in err, err
    else:
        lines = err.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("agi-campaign: error: "), err
        assert expected in lines[0], err
    assert table_counts(db_path) == before_db
    assert files_in(work) == before_files


def test_hostile_cli_unwritable_database_folder_is_runtime_error(work, capsys):
    cfg = write_config(work)
    text = open(cfg).read().replace("sqlite:///acamp.db", "sqlite:///missing/dir/acamp.db")
    open(cfg, "w").write(text)
    code, out, err = run_cli(["--config", cfg, "status"], capsys)
    assert code == 1 and "Traceback" not in out + err
    assert err.startswith("agi-campaign: error: database sqlite:///") and err.count("\n") == 1
    assert "does not exist" in err
