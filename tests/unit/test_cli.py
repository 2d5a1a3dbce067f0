"""Every command on the example config.yaml and the sample CSVs in tests/data/; the parser alone
(every subcommand, its options and dests, its help)."""
import argparse
import json
import logging
import pathlib
import shutil

import pytest

from agi_campaign import cli
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
    assert code == 3 and "dry run" in out.lower()      # 3: some rows invalid, others imported
    code, out, _ = run(capsys, "-c", cfg, "numbers", "import", "reminders",
                       str(tmp_path / "numbers.csv"))
    assert code == 3 and "15 imported" in out
    assert (tmp_path / "numbers.csv.rejects.csv").exists()
    code, out, _ = run(capsys, "-c", cfg, "status", "reminders", "--json")
    shown = json.loads(out)
    info = shown["campaigns"][0]
    assert info["state"] == "READY" and info["numbers"]["pending"] == 15
    assert "waiting for start" in info["reason"]
    assert info["since"].endswith(("-05:00", "-04:00")) and "." not in info["since"]
    assert shown["service"]["running"] is False
    assert shown["service"]["line"].startswith("service not running (never seen")
    assert run(capsys, "-c", cfg, "campaign", "start", "reminders")[0] == 0
    code, out, _ = run(capsys, "-c", cfg, "status")
    assert "reminders" in out and "STARTNOW" in out and "survey-week" in out
    assert out.startswith("service not running (never seen on this database)")
    assert "start requested; start the service: agi-campaign run" in out
    assert run(capsys, "-c", cfg, "campaign", "pause", "reminders")[0] == 0
    code, _, err = run(capsys, "-c", cfg, "campaign", "pause", "reminders")
    assert code == 2 and "is PAUSED: 'pause' applies only when it is" in err
    assert run(capsys, "-c", cfg, "campaign", "resume", "reminders")[1].strip() == \
        "campaign reminders is now STARTNOW"
    code, out, _ = run(capsys, "-c", cfg, "campaign", "history", "reminders")
    assert out.count("->") == 4 and "command pause" in out
    assert all(line[19:26] in (" -05:00", " -04:00") for line in out.splitlines())  # its zone
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
    assert json.loads(out)["campaigns"][0]["numbers"]["pending"] == 0


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


def test_cli_only_run_needs_the_ami_secret(cfg, capsys, monkeypatch):
    monkeypatch.delenv("AGI_CAMPAIGN_AMI_SECRET")
    code, out, err = run(capsys, "check-config", "--config", cfg)
    assert code == 0 and json.loads(out)["servers"]["main"]["ami"] == {
        "host": "127.0.0.1", "port": 5038, "username": "agi-campaign",
        "secret_env": "AGI_CAMPAIGN_AMI_SECRET"}
    assert "AGI_CAMPAIGN_AMI_SECRET is not set" in err and "run" in err
    assert run(capsys, "status", "-c", cfg)[0] == 0
    for name in ("logThreads", "logProcesses", "logMultiprocessing", "_srcfile"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored after the test
    assert logging._srcfile and logging.logProcesses  # other commands leave LogRecord whole
    code, out, err = run(capsys, "run", "-c", cfg)
    assert logging._srcfile is None and not logging.logProcesses  # run: no caller lookups
    assert code == 2 and out == ""
    assert "servers.main.ami.secret_env: environment variable AGI_CAMPAIGN_AMI_SECRET is not " \
        "set" in err


def test_cli_config_with_several_mistakes_lists_them_all(cfg, capsys):
    text = pathlib.Path(cfg).read_text()
    text = text.replace("max_channels: 10 ", "max_channels: 0 ").replace(
        "port: 5038 ", "port: 70000 ").replace("region: GB", "region: XX")
    pathlib.Path(cfg).write_text(text)
    code, out, err = run(capsys, "status", "-c", cfg)
    assert code == 2 and out == ""
    assert err.startswith("agi-campaign: error: %s: 3 problems:\n" % cfg)
    for path in ("servers.main.ami.port", "campaigns.reminders.max_channels",
                 "campaigns.survey-week.region"):
        assert "\n  %s must be" % path in err


def test_cli_bad_arguments_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["campaign", "launch", "x"])
    assert exc.value.code == 2
    assert "invalid choice: 'launch'" in capsys.readouterr().err


# --- the parser -------------------------------------------------------------------------------


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def parse_error(capsys, *argv):
    """argparse's exit status and message for argv."""
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    return exc.value.code, capsys.readouterr().err


def all_parsers(parser, prefix=()):
    """(command words, parser) for the top level and every subcommand, nested ones too."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from all_parsers(child, prefix + (name,))


def test_cli_config_and_debug_accepted_after_the_subcommand(monkeypatch):
    monkeypatch.delenv("AGI_CAMPAIGN_CONFIG", raising=False)
    assert parse("status", "--config", "x.yaml").config == "x.yaml"
    args = parse("numbers", "import", "C", "f.csv", "-c", "x.yaml", "--debug")
    assert (args.config, args.debug, args.campaign, args.file) == ("x.yaml", True, "C", "f.csv")
    assert parse("-c", "before.yaml", "dnc", "list", "global").config == "before.yaml"
    assert parse("-c", "before.yaml", "status", "-c", "after.yaml").config == "after.yaml"
    args = parse("status")
    assert (args.config, args.debug) == ("config.yaml", False)
    assert parse("--debug", "check-config").debug is True
    monkeypatch.setenv("AGI_CAMPAIGN_CONFIG", "/etc/acamp.yaml")
    assert parse("campaign", "start", "x").config == "/etc/acamp.yaml"


def test_cli_every_command_help_ends_with_an_example_and_positionals_have_help():
    seen = 0
    for words, parser in all_parsers(cli.build_parser()):
        for action in parser._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, (words, action.dest)
        if not words:
            continue
        seen += 1
        text = parser.format_help().rstrip("\n").splitlines()
        assert text[-2] == "example:", (words, text[-3:])
        assert text[-1].strip().startswith("agi-campaign " + " ".join(words)), (words, text[-1])
        assert any("--config" in line for line in text), words
    assert seen >= 20


def test_cli_top_level_help_lists_the_exit_statuses():
    text = cli.build_parser().format_help()
    assert "exit status: 0 ok" in text and "3 an import rejected" in text and "4 an import" in text
    for status in ("0 ", "1 ", "2 ", "3 ", "4 "):
        assert "\n  " + status in cli.__doc__ or "\n" + status in cli.__doc__


def test_cli_new_commands_and_their_dests():
    args = parse("numbers", "import", "c", "f.csv", "--dry-run", "--phone-column", "area+number",
                 "--delimiter", ";", "--encoding", "cp1252", "--rejects", "r.csv")
    assert (args.command, args.action, args.dry_run, args.phone_column, args.delimiter,
            args.encoding, args.rejects) == ("numbers", "import", True, "area+number", ";",
                                             "cp1252", "r.csv")
    args = parse("numbers", "import", "c", "f.csv")
    assert (args.dry_run, args.phone_column, args.delimiter, args.encoding, args.rejects) == \
        (False, None, None, None, None)
    args = parse("numbers", "list", "c", "--status", "in_flight", "--csv")
    assert (args.action, args.campaign, args.status, args.csv) == ("list", "c", "in_flight", True)
    assert parse("numbers", "list", "c").status is None
    assert parse_error_code("numbers", "list", "c", "--status", "busy") == 2
    args = parse("numbers", "remove", "c", "+12025550123", "2025550124")
    assert (args.campaign, args.numbers) == ("c", ["+12025550123", "2025550124"])
    assert parse("numbers", "export", "c").output is None
    assert parse("numbers", "export", "c", "--output", "o.csv").output == "o.csv"
    args = parse("dnc", "import", "global", "f.csv", "--region", "GB", "--dry-run",
                 "--phone-column", "2", "--delimiter", "tab", "--encoding", "latin-1",
                 "--rejects", "r.csv")
    assert (args.list, args.file, args.region, args.dry_run, args.phone_column, args.delimiter,
            args.encoding, args.rejects) == ("global", "f.csv", "GB", True, "2", "\t",
                                             "iso8859-1", "r.csv")
    for action in ("add", "remove"):
        args = parse("dnc", action, "global", "1", "2", "--region", "US")
        assert (args.action, args.list, args.numbers, args.region) == (action, "global",
                                                                      ["1", "2"], "US")
    args = parse("dnc", "check", "+12025550123")
    assert (args.number, args.region) == ("+12025550123", None)
    args = parse("dnc", "list", "global", "--csv")
    assert (args.action, args.list, args.csv) == ("list", "global", True)
    assert (parse("dnc", "export").lists, parse("dnc", "export").output) == ([], None)
    assert parse("dnc", "export", "a", "b", "--output", "x").lists == ["a", "b"]
    assert parse("campaign", "reset", "c", "--all").all is True
    args = parse("status", "c", "--json")
    assert (args.name, args.json) == ("c", True)
    assert parse("run").log_level == "INFO"
    args = parse("demo", "--numbers", "5", "--workdir", "w")
    assert (args.numbers, args.workdir) == (5, "w")


def parse_error_code(*argv):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    return exc.value.code


@pytest.mark.parametrize("given,char", [(",", ","), (";", ";"), ("|", "|"), ("tab", "\t"),
                                        ("TAB", "\t"), ("\\t", "\t"), ("\t", "\t"),
                                        ("comma", ","), ("semicolon", ";"), ("pipe", "|")])
def test_cli_delimiter_names_give_the_character(given, char):
    assert parse("numbers", "import", "c", "f", "--delimiter", given).delimiter == char
    assert parse("dnc", "import", "l", "f", "--delimiter", given).delimiter == char


@pytest.mark.parametrize("given", [":", "space", ",;", ""])
def test_cli_delimiter_unknown_lists_the_choices(capsys, given):
    code, err = parse_error(capsys, "numbers", "import", "c", "f", "--delimiter", given)
    assert code == 2
    assert "argument --delimiter: %r is not a delimiter; choose one of , ; | tab" % given in err


@pytest.mark.parametrize("given,name", [("cp1252", "cp1252"), ("latin-1", "iso8859-1"),
                                        ("UTF-8", "utf-8"), ("utf-8-sig", "utf-8-sig"),
                                        ("windows-1252", "cp1252"), ("utf16", "utf-16")])
def test_cli_encoding_gives_the_codec_name(given, name):
    assert parse("numbers", "import", "c", "f", "--encoding", given).encoding == name
    assert parse("dnc", "import", "l", "f", "--encoding", given).encoding == name


@pytest.mark.parametrize("given", ["klingon", "rot13", "base64", ""])
def test_cli_encoding_unknown_or_not_text_is_an_argument_error(capsys, given):
    code, err = parse_error(capsys, "dnc", "import", "l", "f", "--encoding", given)
    assert code == 2
    assert "argument --encoding: %r is not a text encoding known to Python" % given in err
    assert "cp1252" in err


@pytest.mark.parametrize("given,message", [("0", "must be 1..10000, got 0"),
                                           ("x", "'x' is not an integer")])
def test_cli_demo_numbers_checked_by_the_parser(capsys, given, message):
    code, err = parse_error(capsys, "demo", "--numbers", given)
    assert code == 2 and message in err


def test_cli_export_to_a_folder_or_a_missing_folder_is_a_clear_error(cfg, capsys, tmp_path):
    for argv in (("numbers", "export", "reminders"), ("dnc", "export")):
        code, _, err = run(capsys, "-c", cfg, *argv, "--output", str(tmp_path))
        assert code == 2 and "is a folder; name a file" in err and "Traceback" not in err
        code, _, err = run(capsys, "-c", cfg, *argv, "--output", str(tmp_path / "no" / "x.csv"))
        assert code == 2 and "cannot write there" in err
