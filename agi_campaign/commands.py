"""What each CLI command does (argument parsing lives in agi_campaign.cli).

Only `run` needs the AMI secrets; the other commands load the config without them. A dry-run
import on an SQLite database that does not exist yet reads an empty temporary database, so it
creates nothing.
"""
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time

from agi_campaign import campaigns, heartbeat
from agi_campaign.clock import SystemClock, show_time
from agi_campaign.config import load_config, to_display_dict
from agi_campaign.errors import ConfigError, ServiceError, UsageError
from agi_campaign.models import open_database


def _load(args, need_secrets=False):
    if not os.path.exists(args.config):
        raise UsageError("config file %s does not exist; pass --config PATH or set "
                         "AGI_CAMPAIGN_CONFIG" % args.config)
    return load_config(args.config, need_secrets=need_secrets)


def _open(args):
    config = _load(args)
    url = config.database.url
    if getattr(args, "dry_run", False) and url.startswith("sqlite:///") and not os.path.exists(
            url[len("sqlite:///"):]):
        scratch = tempfile.mkdtemp(prefix="agi-campaign-dry-run-")
        _cleanups.callback(_remove_tree, scratch)
        url = "sqlite:///" + os.path.join(scratch, "empty.db")
    open_database(url)
    clock = SystemClock()
    campaigns.sync_campaigns(config, clock.now())
    return config, clock


_cleanups = contextlib.ExitStack()


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)     # open files in it are unlinked as well


def _campaign_cfg(config, name):
    return campaigns.configured(config, name)


def cmd_check_config(args):
    from agi_campaign.config import missing_secrets

    config = _load(args)
    print(json.dumps(to_display_dict(config), indent=2, sort_keys=False))
    for variable in missing_secrets(config):
        print("note: environment variable %s is not set; `agi-campaign run` needs it"
              % variable, file=sys.stderr)


def cmd_run(args):
    from agi_campaign.service import Service

    service = Service(_load(args, need_secrets=True))
    service.install_signal_handlers()
    service.start()
    service.run_forever()
    return 0  # a second signal exits at once with status 1 (Service.install_signal_handlers)


def _progress_printer():
    """On a terminal: a bar, rows, rows/s and the time left, redrawn in place."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(rows, done, total):
        elapsed = max(time.monotonic() - started, 1e-3)
        share = done / total if total else 1.0
        left = elapsed * (1 - share) / share if share > 0 else 0
        sys.stderr.write("\r[%-25s] %5.1f%% %d rows, %d rows/s, %s left  " % (
            "#" * int(share * 25), 100 * share, rows, rows / elapsed,
            "%d:%02d" % divmod(int(left + 0.5), 60)))
        sys.stderr.flush()
    return show


def _finish_progress(progress):
    if progress:
        sys.stderr.write("\n")


def cmd_numbers(args):
    if args.action != "import":
        return _numbers_manage(args)
    from agi_campaign import importer

    config, clock = _open(args)
    cfg = _campaign_cfg(config, args.campaign)
    row = campaigns.get_campaign(args.campaign)
    progress = _progress_printer()
    try:
        report = importer.import_csv(
            row.id, args.file, cfg.region, cfg.dnc_lists, clock.now(), dry_run=args.dry_run,
            rejects_path=args.rejects, phone_column=args.phone_column, progress=progress,
            delimiter=args.delimiter, encoding=args.encoding, countries=cfg.countries)
    finally:
        _finish_progress(progress)
    if not args.dry_run:
        campaigns.reopen_after_import(row, report.imported, clock.now())
    print(report.summary())
    return report.exit_status()


def _numbers_manage(args):
    from agi_campaign import numbers

    config, clock = _open(args)
    cfg = _campaign_cfg(config, args.campaign)
    row = campaigns.get_campaign(args.campaign)
    if args.action == "list":
        numbers.write_list(numbers.list_numbers(row.id, args.status), sys.stdout,
                           as_csv=args.csv, zone=cfg.timezone)
        return 0
    if args.action == "export":
        write = numbers.export_attempts if args.attempts else numbers.export
        return _write_out(args.output, lambda out: write(row.id, out))
    result = numbers.remove(row.id, args.numbers, cfg.region, clock.now())
    print(result.summary(row.name))
    return result.exit_status()


def cmd_dnc(args):
    from agi_campaign import dnc

    config, clock = _open(args)
    known = list(config.dnc_lists)
    if args.action == "list":
        dnc.require_list(args.list, known)
        if args.csv:
            dnc.export([args.list], sys.stdout)
        else:
            for number, _, _ in dnc.entries(args.list):
                print(number)
        return 0
    if args.action == "export":
        for name in args.lists:
            dnc.require_list(name, known)
        return _write_out(args.output, lambda out: dnc.export(args.lists or known, out))
    raws = None if args.action == "import" else (
        [args.number] if args.action == "check" else args.numbers)
    region = dnc.region_for(config, args.region, raws, "--region")
    if args.action == "check":
        lists = dnc.check(args.number, region, known)
        print("%s: %s" % (args.number, ("on " + ", ".join(lists)) if lists else "not listed"))
        return 1 if lists else 0
    if args.action == "import":
        progress = _progress_printer()
        try:
            report = dnc.import_file(
                args.list, args.file, region, clock.now(), known_lists=known,
                dry_run=args.dry_run, rejects_path=args.rejects, phone_column=args.phone_column,
                delimiter=args.delimiter, encoding=args.encoding, progress=progress)
        finally:
            _finish_progress(progress)
        print(report.summary())
        return report.exit_status()
    if args.action == "add":
        dnc.refuse_invalid(args.numbers, region, "dnc add %s" % args.list)
        added, already, _ = dnc.add(args.list, args.numbers, region, clock.now(),
                                    source="cli", known_lists=known)
        print("added %d, already listed %d" % (added, already))
        return 0
    removed, not_listed = dnc.remove(args.list, args.numbers, region, known_lists=known)
    print("removed %d" % len(removed)
          + ("; not on list %s: %s" % (args.list, ", ".join(not_listed)) if not_listed else ""))
    return 0


def _write_out(output, write):
    """Run ``write(stream)`` on stdout (``output`` None or ``-``) or on a file written whole
    or not at all (a temporary file renamed into place)."""
    if output in (None, "-"):
        write(sys.stdout)
        return 0
    if os.path.isdir(output):
        raise UsageError("--output %s is a folder; name a file, e.g. %s"
                         % (output, os.path.join(output, "export.csv")))
    folder = os.path.dirname(os.path.abspath(output))
    try:
        fd, temp = tempfile.mkstemp(prefix=".export-", suffix=".tmp", dir=folder)
    except OSError as err:
        raise UsageError("--output %s: cannot write there: %s" % (output, err.strerror or err)) \
            from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            count = write(out)
        os.replace(temp, output)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise UsageError("--output %s: cannot write it: %s" % (output, err.strerror or err)) \
            from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    print("%s rows written to %s" % (count, output), file=sys.stderr)
    return 0


def cmd_campaign(args):
    config, clock = _open(args)
    if args.action == "history":
        row = campaigns.get_campaign(args.name)
        zone = config.campaigns[row.name].timezone if row.name in config.campaigns else "UTC"
        for ch in reversed(campaigns.history(row)):
            print("%s %s -> %s (%s)" % (show_time(ch.at, zone),
                                        ch.from_state.upper() or "-", ch.to_state.upper(),
                                        ch.cause))
        return 0
    _campaign_cfg(config, args.name)
    row = campaigns.apply_command(args.name, args.action, clock.now(),
                                  rearm_all=getattr(args, "all", False))
    print("campaign %s is now %s" % (row.name, row.state.upper()))
    return 0


def cmd_status(args):
    from agi_campaign import status

    config, clock = _open(args)
    if args.name is not None:
        campaigns.get_campaign(args.name)
    now = clock.now()
    service = heartbeat.read(now)
    rows = status.status(config, now, args.name, service=service)
    zone = status.display_zone(config)
    nodes = status.nodes(now)
    if args.json:
        print(json.dumps({"service": heartbeat.as_json(service, zone), "campaigns": rows,
                          "nodes": [heartbeat.as_json(info, zone) for info in nodes]},
                         indent=2))
    else:
        print(status.render(rows, status.service_lines(service, zone, nodes)))


RELOAD_WAIT_S = 10.0


def cmd_reload(args):
    """Validate the file as check-config does (exit 2), signal the service on this host
    (SIGHUP), and wait RELOAD_WAIT_S for its heartbeat's reload record: exit 0 applied, 2
    refused (the service's message), 1 not running, elsewhere or no answer."""
    config = _load(args)
    open_database(config.database.url)
    clock = SystemClock()
    info = heartbeat.read(clock.now())
    if info is None or not info["running"]:
        raise ServiceError("%s; nothing to reload" % heartbeat.line(info, "UTC"))
    where = "host %s pid %s" % (info["host"], info["pid"])
    if info["host"] != socket.gethostname():
        raise ServiceError("the service runs on %s, not on this host (%s): run `agi-campaign "
                           "reload` there" % (where, socket.gethostname()))
    before = info["reload"] and info["reload"]["at"]
    try:
        os.kill(info["pid"], signal.SIGHUP)
    except OSError as err:
        raise ServiceError("cannot signal the service (%s): %s" % (where, err.strerror or err)) \
            from None
    deadline = time.monotonic() + RELOAD_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
        reload = (heartbeat.read(clock.now()) or {}).get("reload")
        if reload and reload["at"] != before:
            if not reload["ok"]:
                raise ConfigError(reload["text"])
            print("reloaded by the service on %s: %s" % (where, reload["text"]))
            return 0
    raise ServiceError("the service on %s did not answer the reload within %.0f s; see its log"
                       % (where, RELOAD_WAIT_S))


def cmd_report(args):
    from agi_campaign import report

    config, _ = _open(args)
    row, cfg = campaigns.configured_row(config, args.name)
    since, until = report.time_range(args.since, args.until, cfg.timezone)
    figures = report.campaign_report(row.id, cfg.timezone, since, until)
    if args.json:
        print(json.dumps(figures, indent=2))
    elif args.csv:
        report.write_csv(figures, sys.stdout)
    else:
        print(report.render(row.name, figures))
    return 0


def cmd_demo(args):
    from agi_campaign.testing import demo

    return demo.run(numbers=args.numbers, workdir=args.workdir)


COMMANDS = {
    "check-config": cmd_check_config, "run": cmd_run, "numbers": cmd_numbers, "dnc": cmd_dnc,
    "campaign": cmd_campaign, "status": cmd_status, "report": cmd_report, "demo": cmd_demo,
    "reload": cmd_reload,
}


def dispatch(args):
    with _cleanups:
        return COMMANDS[args.command](args)
