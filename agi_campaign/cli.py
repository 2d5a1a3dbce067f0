"""The `agi-campaign` command line.

Errors of the project print as one line (`agi-campaign: error: ...`) with exit code 2 for bad
input or configuration and 1 for runtime failures; `--debug` shows the traceback too.
"""
import argparse
import logging
import os
import sys

from agi_campaign import __version__

log = logging.getLogger("agi_campaign.cli")

DEFAULT_CONFIG = "config.yaml"


def _positive_int(text):
    """argparse type for counts: an integer 1..10000 (checked before anything starts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if not 1 <= value <= 10000:
        raise argparse.ArgumentTypeError("must be 1..10000, got %d" % value)
    return value


def build_parser():
    p = argparse.ArgumentParser(prog="agi-campaign",
                                description="Call-campaign dialer for Asterisk.")
    p.add_argument("--config", "-c", default=os.environ.get("AGI_CAMPAIGN_CONFIG", DEFAULT_CONFIG),
                   help="configuration file (default: $AGI_CAMPAIGN_CONFIG or ./config.yaml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("--version", action="version", version="agi-campaign " + __version__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("check-config", help="validate the config and print it, secrets masked")
    run = sub.add_parser("run", help="run the FastAGI server and the scheduler")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])

    num = sub.add_parser("numbers", help="campaign numbers").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    imp = num.add_parser("import", help="import numbers from a CSV file")
    imp.add_argument("campaign")
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="count only; write nothing")
    imp.add_argument("--phone-column", help="header of the phone column (default: detected)")
    imp.add_argument("--rejects", help="where to write rejected rows (default FILE.rejects.csv)")

    dnc = sub.add_parser("dnc", help="Do-Not-Call lists").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    region_help = ("region (e.g. US, GB) of numbers written without a country code; default: "
                   "the campaigns' region, required when they differ")
    d = dnc.add_parser("import", help="import a file of numbers into a list")
    d.add_argument("list")
    d.add_argument("file")
    d.add_argument("--region", help=region_help)
    for name in ("add", "remove"):
        d = dnc.add_parser(name, help="%s numbers" % name)
        d.add_argument("list")
        d.add_argument("numbers", nargs="+")
        d.add_argument("--region", help=region_help)
    d = dnc.add_parser("check", help="which lists hold a number")
    d.add_argument("number")
    d.add_argument("--region", help=region_help)

    camp = sub.add_parser("campaign", help="campaign states").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for name, text in (("start", "start an on-demand campaign"), ("pause", "stop new calls"),
                       ("resume", "continue a paused campaign"),
                       ("reset", "re-arm failed numbers of a completed or paused campaign"),
                       ("history", "show the campaign's state changes")):
        c = camp.add_parser(name, help=text)
        c.add_argument("name")
        if name == "reset":
            c.add_argument("--all", action="store_true", help="re-arm done numbers too")

    st = sub.add_parser("status", help="campaign states, reasons and counts")
    st.add_argument("name", nargs="?")
    st.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="run a demo campaign on a sandbox Asterisk 22")
    demo.add_argument("--numbers", type=_positive_int, default=60,
                      help="how many callees (1..10000, default 60)")
    demo.add_argument("--workdir", default=None)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING
    if args.command == "run" and not args.debug:
        level = getattr(logging, args.log_level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
