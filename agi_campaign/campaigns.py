"""Campaign rows: syncing them from the YAML configuration and recording state changes.

Settings live in YAML; the database keeps each campaign's state and its history. Every change of
state is one conditional UPDATE (`WHERE state = <from>`) plus a StateChange row in the same
transaction, so the CLI and the service (separate processes) can never both apply a move; a
campaign whose webhook wants `state` events gets its outbox row in that transaction too
(agi_campaign.webhooks).
"""
import json
import logging

from agi_campaign import lifecycle, webhooks
from agi_campaign.clock import to_db
from agi_campaign.config import campaign_settings_json
from agi_campaign.db import database
from agi_campaign.errors import NotFoundError, StateError
from agi_campaign.lifecycle import CampaignState
from agi_campaign.models import Campaign, Number, NumberStatus, StateChange

log = logging.getLogger(__name__)


def sync_campaigns(config, now):
    """Create or update one Campaign row per configured campaign; return {name: Campaign}."""
    rows = {}
    with database.atomic():
        for name, cfg in config.campaigns.items():
            settings = campaign_settings_json(cfg)
            row = Campaign.get_or_none(Campaign.name == name)
            if row is None:
                row = Campaign.create(name=name, type=cfg.type, server=cfg.server,
                                      state=CampaignState.READY.value, settings=settings,
                                      state_changed_at=to_db(now), created_at=to_db(now))
                StateChange.create(campaign=row, at=to_db(now), from_state="",
                                   to_state=CampaignState.READY.value, cause="created from config")
            elif (row.type, row.server, row.settings) != (cfg.type, cfg.server, settings):
                before = json.loads(row.settings or "{}").get("max_attempts")
                row.type, row.server, row.settings = cfg.type, cfg.server, settings
                row.save()
                if before is not None and cfg.max_attempts < before:
                    _fail_exhausted(row, cfg.max_attempts, now)
            rows[name] = row
    return rows


def _fail_exhausted(row, max_attempts, now):
    """Pending numbers already at max_attempts (max_attempts was lowered) become failed.

    Only run when max_attempts went down: it reads every pending number of the campaign.
    """
    (Number.update(status=NumberStatus.FAILED.value, updated_at=to_db(now))
     .where((Number.campaign == row) & (Number.status == NumberStatus.PENDING.value)
            & (Number.attempts >= max_attempts))
     .execute())


def get_campaign(name):
    row = Campaign.get_or_none(Campaign.name == name)
    if row is None:
        known = ", ".join(c.name for c in Campaign.select(Campaign.name).order_by(Campaign.name))
        raise NotFoundError("campaign %r is not known (known: %s); define it under campaigns: in "
                            "the config file" % (name, known or "none"))
    return row


def configured(config, name):
    """The CampaignConfig of `name`, or NotFoundError naming the campaigns the config defines."""
    cfg = config.campaigns.get(name)
    if cfg is None:
        raise NotFoundError("campaign %r is not in %s (defined: %s)"
                            % (name, config.path, ", ".join(config.campaigns) or "none"))
    return cfg


def configured_row(config, name):
    """``(row, cfg)``: campaign ``name``'s Campaign row and its CampaignConfig (NotFoundError
    naming the defined or known campaigns when either is missing)."""
    cfg = configured(config, name)
    return get_campaign(name), cfg


def reopen_after_import(row, imported, now):
    """A COMPLETED campaign that got `imported` new numbers goes back to READY (its start
    command or its schedule runs it again); the CLI's and the API's imports both call this."""
    if imported and row.state == CampaignState.COMPLETED.value:
        move(row, CampaignState.READY, "new numbers imported", now)


def move(row, to_state, cause, now, expect=None):
    """Move `row` to `to_state` if it is still in `expect` (default: its current state).

    Returns True if this call made the move; False if another process changed it first.
    """
    from_state = expect or row.state
    to_value = CampaignState(to_state).value
    with database.atomic():
        changed = (Campaign.update(state=to_value, state_changed_at=to_db(now))
                   .where((Campaign.id == row.id) & (Campaign.state == from_state))
                   .execute())
        if changed:
            StateChange.create(campaign=row.id, at=to_db(now), from_state=from_state,
                               to_state=to_value, cause=cause[:200])
            webhooks.enqueue_state(row, from_state, to_value, cause[:200], now)
    if changed:
        row.state = to_value
        log.info("campaign=%s state %s -> %s (%s)", row.name, from_state, to_value, cause)
    return bool(changed)


def apply_command(name, command, now, cause=None, rearm_all=False):
    """Apply a user command (start, pause, resume, reset) to campaign `name`."""
    row = get_campaign(name)
    target = lifecycle.command_target(name, row.type, row.state, command)
    with database.atomic():
        if not move(row, target, cause or "command %s" % command, now):
            raise StateError("campaign %s changed state while '%s' was applied; run the command "
                             "again" % (name, command))
        if command == "reset":
            _rearm(row, now, rearm_all)
    return row


def _rearm(row, now, rearm_all):
    statuses = [NumberStatus.FAILED.value] + ([NumberStatus.DONE.value] if rearm_all else [])
    (Number.update(status=NumberStatus.PENDING.value, attempts=0, next_attempt_at=to_db(now),
                   updated_at=to_db(now))
     .where((Number.campaign == row) & (Number.status.in_(statuses)))
     .execute())


def history(row, limit=20):
    return list(StateChange.select().where(StateChange.campaign == row)
                .order_by(StateChange.id.desc()).limit(limit))
