"""What a live reload changes: the running config against the file's new one (no I/O).

`plan(running, new)` returns a `ReloadPlan`: the config the service runs from now on, the
campaigns added, changed and removed, and the keys whose new value needs a restart.

Decisions (the issue is silent on them):
- Campaigns (every key, `service.callee_hours` through them), `dnc_lists`,
  `service.stop_deadline_s` and `service.stuck_after_s`, and a server's dial settings
  (`dial_template`, `agi_url`, `call_path`, contexts) and limits (`max_channels`, `max_cps`)
  apply from the next tick (a call in flight ends on the path it started on).
- `database`, `fastagi`, `http` (its port and the token the running server checks),
  `service.tick_ms`, `service.instance`, a server's `ami` connection, and servers added or
  removed need a restart: the running value is kept, the reload goes on,
  and each such key is named in the outcome (and logged as a WARNING by the service). Refusing
  the whole file would hold back the campaign changes the reload is for.
- A campaign on a server the running service has no AMI connection for (a server added by this
  file) cannot dial: the file is refused with a ConfigError naming the key, and the running
  config stays.
"""
import dataclasses

from agi_campaign.errors import ConfigError

RESTART_FIELDS = {"service": ("tick_ms", "instance")}
AMI_FIELDS = ("ami_host", "ami_port", "ami_username", "ami_secret", "ami_secret_env")


@dataclasses.dataclass(frozen=True)
class ReloadPlan:
    config: object                  # the Config to run from now on
    added: tuple = ()
    changed: tuple = ()
    removed: tuple = ()             # paused, their dial job removed
    kept: tuple = ()                # keys needing a restart: the running value stays

    def summary(self):
        """``campaigns added: b; changed: a; paused: c`` (``no campaign changed`` when none),
        then the keys kept until a restart."""
        parts = ["%s: %s" % (what, ", ".join(names)) for what, names in
                 (("added", self.added), ("changed", self.changed), ("paused", self.removed))
                 if names]
        text = "campaigns " + "; ".join(parts) if parts else "no campaign changed"
        if self.kept:
            text += "; kept until a restart (agi-campaign run): " + ", ".join(self.kept)
        return text


def plan(running, new):
    """The ReloadPlan taking `running` to `new` (module docstring), or ConfigError."""
    kept = []
    if new.database != running.database:
        kept.append("database")
    kept += ["fastagi." + f.name for f in dataclasses.fields(running.fastagi)
             if getattr(new.fastagi, f.name) != getattr(running.fastagi, f.name)]
    if new.http != running.http:
        kept.append("http")
    kept += ["service." + name for name in RESTART_FIELDS["service"]
             if getattr(new.service, name) != getattr(running.service, name)]
    servers = {}
    for name, old in running.servers.items():
        srv = new.servers.get(name)
        if srv is None:
            kept.append("servers.%s (removed)" % name)
            servers[name] = old
            continue
        if any(getattr(srv, f) != getattr(old, f) for f in AMI_FIELDS):
            kept.append("servers.%s.ami" % name)
        servers[name] = dataclasses.replace(srv, **{f: getattr(old, f) for f in AMI_FIELDS})
    kept += ["servers.%s (added)" % name for name in new.servers if name not in running.servers]
    unreachable = ["campaigns.%s.server: server %r is new in this file; a new server needs a "
                   "restart (agi-campaign run)" % (name, cfg.server)
                   for name, cfg in new.campaigns.items() if cfg.server not in servers]
    if unreachable:
        raise ConfigError("%s: %s; the running config stays" % (new.path, "; ".join(unreachable)))
    config = dataclasses.replace(
        new, database=running.database, fastagi=running.fastagi, http=running.http,
        servers=servers,
        service=dataclasses.replace(new.service, tick_ms=running.service.tick_ms,
                                    instance=running.service.instance))
    return ReloadPlan(
        config=config,
        added=tuple(n for n in new.campaigns if n not in running.campaigns),
        changed=tuple(n for n, cfg in new.campaigns.items()
                      if n in running.campaigns and running.campaigns[n] != cfg),
        removed=tuple(n for n in running.campaigns if n not in new.campaigns),
        kept=tuple(kept))
