"""The `agi-campaign` command line: the argument parser and `main`.

`--config/-c` and `--debug` are accepted before and after the subcommand. Errors of the project
print as one message (`agi-campaign: error: ...`, a configuration with several problems lists
them on the following lines); `--debug` shows the traceback too.

Exit statuses:
  0  ok
  1  runtime failure (Asterisk, database...); `dnc check` when the number is listed
  2  bad input or configuration: arguments, config file, a file refused as a whole
  3  `numbers import` / `dnc import` (also with --dry-run): some rows were rejected as invalid,
     the others imported
  4  `numbers import` / `dnc import`: nothing imported (no data rows, or every row invalid)
130 on Ctrl-C; 141 when the reader of the output went away (`| head`).
"""
import argparse
import codecs
import logging
import os
import sys

from agi_campaign import __version__

log = logging.getLogger("agi_campaign.cli")

DEFAULT_CONFIG = "config.yaml"
NUMBER_STATUSES = ("pending", "in_flight", "done", "failed", "dnc", "removed")
DELIMITERS = {",": ",", "comma": ",", ";": ";", "semicolon": ";", "|": "|", "pipe": "|",
              "tab": "\t", "\\t": "\t", "\t": "\t"}
EXIT_STATUSES = """\
exit status: 0 ok; 1 runtime failure (and `dnc check` when the number is listed); 2 bad input or
configuration; 3 an import rejected some rows and imported the others; 4 an import imported
nothing (no data rows, or every row invalid)."""


def _positive_int(text):
    """argparse type for counts: an integer 1..10000 (checked before anything starts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if not 1 <= value <= 10000:
        raise argparse.ArgumentTypeError("must be 1..10000, got %d" % value)
    return value


def _delimiter(text):
    """argparse type for --delimiter: the one separator character."""
    try:
        return DELIMITERS[text if text == "\t" else text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            "%r is not a delimiter; choose one of , ; | tab (also comma, semicolon, pipe, \\t)"
            % text) from None


def _encoding(text):
    """argparse type for --encoding: the canonical name of a Python text codec."""
    try:
        info = codecs.lookup(text)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise argparse.ArgumentTypeError(
            "%r is not a text encoding known to Python; use e.g. utf-8, cp1252 (Excel on "
            "Windows), latin-1 or utf-16" % text)
    return info.name


def _common():
    """--config and --debug, for every subcommand; SUPPRESS keeps the value given before the
    subcommand (or the default) when they are not repeated after it."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", default=argparse.SUPPRESS, metavar="PATH",
                        help="configuration file (default: $AGI_CAMPAIGN_CONFIG or "
                             "./config.yaml)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    return common


def _command(sub, name, text, example, common):
    """A subcommand whose --help ends with `example` (one command line, or several)."""
    return sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".",
                          epilog="example:\n  " + example.replace("\n", "\n  "),
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          parents=[common])


def _file_options(cmd):
    """The options shared by `numbers import` and `dnc import`."""
    cmd.add_argument("--dry-run", action="store_true",
                     help="read and check the whole file, print the counts and the rejected "
                          "rows; write nothing (no database is created)")
    cmd.add_argument("--phone-column", metavar="COL",
                     help="the phone column: a header name (case and accents ignored), a "
                          "1-based column number, or several joined by + whose cells are "
                          "concatenated (area_code+number, 1+2); default: detected")
    cmd.add_argument("--delimiter", type=_delimiter, metavar="D",
                     help="field separator: , ; | or tab (default: detected)")
    cmd.add_argument("--encoding", type=_encoding, metavar="E",
                     help="the file's encoding, e.g. cp1252 or latin-1 (default: UTF-8, with "
                          "or without BOM, or UTF-16 with BOM)")
    cmd.add_argument("--rejects", metavar="PATH",
                     help="where to write the rejected rows (default: FILE.rejects.csv)")


def build_parser():
    common = _common()
    p = argparse.ArgumentParser(prog="agi-campaign",
                                description="Call-campaign dialer for Asterisk.",
                                epilog=EXIT_STATUSES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=os.environ.get("AGI_CAMPAIGN_CONFIG", DEFAULT_CONFIG),
                   metavar="PATH",
                   help="configuration file (default: $AGI_CAMPAIGN_CONFIG or ./config.yaml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("--version", action="version", version="agi-campaign " + __version__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "check-config", "validate the config and print it, secrets masked",
             "agi-campaign check-config --config /etc/agi-campaign/config.yaml", common)
    run = _command(sub, "run", "run the FastAGI server and the scheduler",
                   "agi-campaign run --config /etc/agi-campaign/config.yaml --log-level DEBUG",
                   common)
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"],
                     help="log level (default INFO)")

    campaign_help = "campaign name (a key under campaigns: in the config)"
    num = _command(sub, "numbers", "the numbers a campaign calls",
                   "agi-campaign numbers import reminders contacts.csv", common)
    num = num.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = _command(num, "import", "import numbers from a CSV file",
                   "agi-campaign numbers import reminders contacts.csv --phone-column Mobile",
                   common)
    imp.add_argument("campaign", help=campaign_help)
    imp.add_argument("file", help="CSV file (comma, semicolon, tab or pipe separated), one "
                                  "number a row")
    _file_options(imp)
    lst = _command(num, "list", "list a campaign's numbers with status and attempts",
                   "agi-campaign numbers list reminders --status failed --csv > failed.csv",
                   common)
    lst.add_argument("campaign", help=campaign_help)
    lst.add_argument("--status", choices=NUMBER_STATUSES, help="only numbers in this status")
    lst.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    rem = _command(num, "remove", "take numbers out of a campaign (they are not called again)",
                   "agi-campaign numbers remove reminders +12025550123 2025550124", common)
    rem.add_argument("campaign", help=campaign_help)
    rem.add_argument("numbers", nargs="+",
                     help="phone number, with +country code or in the campaign's region")
    exp = _command(num, "export", "write a campaign's numbers with last outcome and attempts "
                                  "as CSV",
                   "agi-campaign numbers export reminders --output reminders.csv", common)
    exp.add_argument("campaign", help=campaign_help)
    exp.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")
    exp.add_argument("--attempts", action="store_true",
                     help="one row per attempt (the audit trail: times, outcome, Dial status and "
                          "cause, AMD result, keys pressed, opt-out) instead of one per number")

    list_help = "Do-Not-Call list name (a key under dnc_lists: in the config)"
    number_help = "phone number, with +country code or in the --region"
    region_help = ("region (e.g. US, GB) of numbers written without a country code; default: "
                   "the campaigns' region, required when they differ")
    dnc = _command(sub, "dnc", "Do-Not-Call lists",
                   "agi-campaign dnc import global optouts.csv --region US", common)
    dnc = dnc.add_subparsers(dest="action", required=True, metavar="ACTION")
    d = _command(dnc, "import", "import a file of numbers into a list",
                 "agi-campaign dnc import global registry.csv --region US "
                 "--phone-column area_code+number", common)
    d.add_argument("list", help=list_help)
    d.add_argument("file", help="CSV file (comma, semicolon, tab or pipe separated), one "
                                "number a row")
    d.add_argument("--region", help=region_help)
    _file_options(d)
    for name, text in (("add", "add numbers to a list"),
                       ("remove", "remove numbers from a list (says which were not listed)")):
        d = _command(dnc, name, text, "agi-campaign dnc %s global +447700900123 07700900124 "
                                      "--region GB" % name, common)
        d.add_argument("list", help=list_help)
        d.add_argument("numbers", nargs="+", help=number_help)
        d.add_argument("--region", help=region_help)
    d = _command(dnc, "check", "which lists hold a number (exit status 1 when listed)",
                 "agi-campaign dnc check +12025550123", common)
    d.add_argument("number", help=number_help)
    d.add_argument("--region", help=region_help)
    d = _command(dnc, "list", "print the numbers of a list",
                 "agi-campaign dnc list global --csv", common)
    d.add_argument("list", help=list_help)
    d.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    d = _command(dnc, "export", "write Do-Not-Call lists as CSV",
                 "agi-campaign dnc export global --output dnc.csv", common)
    d.add_argument("lists", nargs="*", metavar="LIST", help="lists to export (default: all)")
    d.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")

    camp = _command(sub, "campaign", "campaign states",
                    "agi-campaign campaign start reminders", common)
    camp = camp.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("start", "start an on-demand campaign"), ("pause", "stop new calls"),
                       ("resume", "continue a paused campaign"),
                       ("reset", "re-arm failed numbers of a completed or paused campaign"),
                       ("history", "show the campaign's state changes")):
        c = _command(camp, name, text, "agi-campaign campaign %s reminders%s"
                     % (name, " --all" if name == "reset" else ""), common)
        c.add_argument("name", help=campaign_help)
        if name == "reset":
            c.add_argument("--all", action="store_true", help="re-arm done numbers too")

    _command(sub, "reload", "make the running service re-read the config (SIGHUP); exit 0 "
                            "applied, 2 refused, 1 not running or no answer",
             "agi-campaign reload --config /etc/agi-campaign/config.yaml", common)
    st = _command(sub, "status", "whether the service runs; campaign states, reasons and counts",
                  "agi-campaign status reminders --json", common)
    st.add_argument("name", nargs="?", help="one campaign (default: all)")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")

    rp = _command(sub, "report", "what a campaign's calls came to: attempts by outcome, answer "
                  "rate, ring and talk time, calls per hour, attempts per number, opt-outs",
                  "agi-campaign report reminders --since 2026-12-01 --until 2026-12-02 --csv",
                  common)
    rp.add_argument("name", help="the campaign")
    rp.add_argument("--since", metavar="TIME",
                    help="calls placed at or after TIME (ISO 8601: 2026-12-01 or "
                         "2026-12-01T09:00; without an offset, in the campaign's timezone)")
    rp.add_argument("--until", metavar="TIME", help="calls placed before TIME (as --since)")
    shape = rp.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print JSON")
    shape.add_argument("--csv", action="store_true", help="print CSV: section,key,value")

    demo = _command(sub, "demo", "run a demo campaign on a sandbox Asterisk 22",
                    "agi-campaign demo --numbers 200", common)
    demo.add_argument("--numbers", type=_positive_int, default=60,
                      help="how many callees (1..10000, default 60)")
    demo.add_argument("--workdir", default=None, metavar="DIR",
                      help="where the sandbox files go (default: a temporary folder)")
    return p


def main(argv=None):
    """Run one command; return the exit status (see the module docstring: 0 ok, 1 runtime
    failure, 2 bad input or configuration, 3 an import rejected some rows, 4 an import imported
    nothing; 130 interrupted, 141 broken pipe). Argument errors exit 2 from argparse."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING
    if args.command == "run" and not args.debug:
        level = getattr(logging, args.log_level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        # That format uses no caller, thread or process: LogRecord need not look them up (the
        # logging HOWTO, "Optimization"); the service writes a line per call.
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        logging._srcfile = None
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    from agi_campaign.errors import AgiCampaignError
    from agi_campaign import commands

    try:
        return commands.dispatch(args) or 0
    except AgiCampaignError as err:
        if args.debug:
            log.exception("failed")
        print("agi-campaign: error: %s" % err, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("agi-campaign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser"]
