"""Every command on the example config.yaml and the sample CSVs in tests/data/."""
import json
import pathlib
import shutil

import pytest

from agi_campaign.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_AMI_SECRET", "s3cret-value-xyz")
    path = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.yaml", path)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_check_config_masks_the_secret(cfg, capsys):
    code, out, _ = run(capsys, "--config", cfg, "check-config")
    assert code == 0
    shown = json.loads(out)
    assert shown["campaigns"]["reminders"]["max_channels"] == 10
    assert "s3cret-value-xyz" not in out and "***" in out


def test_cli_full_flow_on_the_example_config(cfg, capsys, tmp_path):
    shutil.copy(DATA / "numbers.csv", tmp_path / "numbers.csv")
    code, _, err = run(capsys, "-c", cfg, "dnc", "import", "global", str(DATA / "dnc.csv"))
    assert code == 2 and "the campaigns use regions GB, US; give --region" in err
    code, out, _ = run(capsys, "-c", cfg, "dnc", "import", "global", str(DATA / "dnc.csv"),
                       "--region", "US")
    assert code == 0 and "dnc.csv -> Do-Not-Call list global: 3 rows: 3 added, 0 already listed, " \
        "0 invalid" in out
    code, out, _ = run(capsys, "-c", cfg, "numbers", "import", "reminders",
                       str(tmp_path / "numbers.csv"), "--dry-run")
    assert code == 0 and "dry run" in out.lower()
    code, out, _ = run(capsys, "-c", cfg, "numbers", "import", "reminders",
                       str(tmp_path / "numbers.csv"))
    assert code == 0 and "15 imported" in out
    assert (tmp_path / "numbers.csv.rejects.csv").exists()
    code, out, _ = run(capsys, "-c", cfg, "status", "reminders", "--json")
    info = json.loads(out)[0]
    assert info["state"] == "READY" and info["numbers"]["pending"] == 15
    assert "waiting for start" in info["reason"]
    assert run(capsys, "-c", cfg, "campaign", "start", "reminders")[0] == 0
    code, out, _ = run(capsys, "-c", cfg, "status")
    assert "reminders" in out and "STARTNOW" in out and "survey-week" in out
    assert run(capsys, "-c", cfg, "campaign", "pause", "reminders")[0] == 0
    code, _, err = run(capsys, "-c", cfg, "campaign", "pause", "reminders")
    assert code == 2 and "is PAUSED: 'pause' applies only when it is" in err
    assert run(capsys, "-c", cfg, "campaign", "resume", "reminders")[1].strip() == \
        "campaign reminders is now STARTNOW"
    code, out, _ = run(capsys, "-c", cfg, "campaign", "history", "reminders")
    assert out.count("->") == 4 and "command pause" in out
    code, out, _ = run(capsys, "-c", cfg, "dnc", "add", "global", "(202) 555-0177",
                       "--region", "us")
    assert code == 0 and "added 1" in out
    code, out, _ = run(capsys, "-c", cfg, "dnc", "check", "+12025550177")
    assert code == 1 and "global" in out
    code, out, _ = run(capsys, "-c", cfg, "dnc", "remove", "global", "+12025550177")
    assert code == 0 and "removed 1" in out
    code, out, _ = run(capsys, "-c", cfg, "dnc", "check", "+12025550177")
    assert code == 0 and "not listed" in out


def test_cli_stray_quote_is_a_one_line_error_and_imports_nothing(cfg, capsys, tmp_path):
    path = tmp_path / "n.csv"
    path.write_text('phone\n"2025550101\n2025550102\n')
    for argv in (("numbers", "import", "reminders", str(path)),
                 ("dnc", "import", "global", str(path), "--region", "US")):
        code, out, err = run(capsys, "-c", cfg, *argv)
        assert code == 2 and out == ""
        assert err.startswith("agi-campaign: error: n.csv line 2: a quoted field opens here")
        assert err.count("\n") == 1
    code, out, _ = run(capsys, "-c", cfg, "status", "reminders", "--json")
    assert json.loads(out)[0]["numbers"]["pending"] == 0


def test_cli_scheduled_start_is_a_clear_error(cfg, capsys):
    code, _, err = run(capsys, "-c", cfg, "campaign", "start", "survey-week")
    assert code == 2
    assert err.strip() == ("agi-campaign: error: campaign survey-week is scheduled: it starts "
                           "by its start/end and week_time; use 'pause' and 'resume' to hold it")


def test_cli_unknown_campaign_names_the_known_ones(cfg, capsys):
    code, _, err = run(capsys, "-c", cfg, "status", "nope")
    assert code == 2 and "campaign 'nope' is not known" in err and "reminders" in err


def test_cli_missing_config_file(tmp_path, capsys):
    code, _, err = run(capsys, "-c", str(tmp_path / "none.yaml"), "status")
    assert code == 2 and "does not exist" in err and "--config" in err


def test_cli_bad_arguments_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["campaign", "launch", "x"])
    assert exc.value.code == 2
    assert "invalid choice: 'launch'" in capsys.readouterr().err
