"""Peewee models. Times are naive UTC (see agi_campaign.clock); statuses are str Enums.

Indexes: `number(campaign, status, next_attempt_at, id)` serves "the next N due numbers" with an
index range scan whose cost does not grow with the campaign's size; `attempt(status)` serves
"what is in flight".

An attempt's ids as Asterisk echoes them back are derived, not stored: its channel is
`acamp-<instance>-<attempt id>-<token>` (agi_campaign.originate.channel_id), its second half
that plus `-2`, and the FastAGI scripts receive the id and token as arguments. `Setting`
holds this deployment's facts (its instance name, which service runs on it: see
agi_campaign.deployment).
"""
import enum

import peewee

from agi_campaign.dburl import hide_password, mask_url
from agi_campaign.db import database, is_postgres, make_database
from agi_campaign.errors import StartupError
from agi_campaign.lifecycle import CampaignState


class NumberStatus(str, enum.Enum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    DNC = "dnc"
    REMOVED = "removed"  # `numbers remove`: never claimed nor re-armed; row and attempts kept


class AttemptStatus(str, enum.Enum):
    DIALING = "dialing"
    ANSWERED = "answered"
    ENDED = "ended"


class Outcome(str, enum.Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    NOANSWER = "noanswer"
    CONGESTION = "congestion"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"
    FAILED = "failed"
    LOST = "lost"
    MACHINE = "machine"  # an answering machine (AMD), hung up on: retryable
    REFUSED = "refused"  # Asterisk refused the Originate: no call placed, does not count


MACHINE_HANGUP = "machine_hangup"
"""Attempt.dest_result of a call the `connect` script hung up on because AMD() found an
answering machine (campaign ``amd: {action: hangup}``): written before the hang-up, it makes
the result's DIALSTATUS=ANSWER the outcome `machine` (agi_campaign.results.outcome_for)."""


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Campaign(BaseModel):
    name = peewee.CharField(max_length=64, unique=True)
    type = peewee.CharField(max_length=16)
    server = peewee.CharField(max_length=32)
    state = peewee.CharField(max_length=16, default=CampaignState.READY.value)
    state_changed_at = peewee.DateTimeField()
    settings = peewee.TextField(default="{}")
    created_at = peewee.DateTimeField()


class StateChange(BaseModel):
    campaign = peewee.ForeignKeyField(Campaign, backref="state_changes", on_delete="CASCADE")
    at = peewee.DateTimeField()
    from_state = peewee.CharField(max_length=16)
    to_state = peewee.CharField(max_length=16)
    cause = peewee.CharField(max_length=200)


class ImportBatch(BaseModel):
    campaign = peewee.ForeignKeyField(Campaign, backref="batches", on_delete="CASCADE")
    filename = peewee.CharField(max_length=1000)
    started_at = peewee.DateTimeField()
    finished_at = peewee.DateTimeField(null=True)
    rows = peewee.IntegerField(default=0)
    imported = peewee.IntegerField(default=0)
    duplicates = peewee.IntegerField(default=0)
    invalid = peewee.IntegerField(default=0)
    dnc = peewee.IntegerField(default=0)
    rejects_path = peewee.CharField(max_length=1000, null=True)
    dry_run = peewee.BooleanField(default=False)


class Number(BaseModel):
    campaign = peewee.ForeignKeyField(Campaign, backref="numbers", on_delete="CASCADE")
    phone = peewee.CharField(max_length=20)
    raw = peewee.CharField(max_length=100)
    status = peewee.CharField(max_length=16, default=NumberStatus.PENDING.value)
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField()
    last_outcome = peewee.CharField(max_length=16, null=True)
    extra = peewee.TextField(default="{}")
    batch = peewee.ForeignKeyField(ImportBatch, null=True, on_delete="SET NULL")
    updated_at = peewee.DateTimeField()

    class Meta:
        indexes = (
            (("campaign", "phone"), True),
            (("campaign", "status", "next_attempt_at", "id"), False),
        )


class Attempt(BaseModel):
    number = peewee.ForeignKeyField(Number, backref="attempt_rows", on_delete="CASCADE")
    campaign = peewee.ForeignKeyField(Campaign, backref="attempts", on_delete="CASCADE")
    seq = peewee.IntegerField()
    token = peewee.CharField(max_length=32)
    server = peewee.CharField(max_length=32)
    status = peewee.CharField(max_length=16, default=AttemptStatus.DIALING.value, index=True)
    outcome = peewee.CharField(max_length=16, null=True)
    dial_status = peewee.CharField(max_length=32, null=True)
    hangup_cause = peewee.IntegerField(null=True)
    dest_result = peewee.CharField(max_length=100, null=True)
    created_at = peewee.DateTimeField()
    answered_at = peewee.DateTimeField(null=True)
    ended_at = peewee.DateTimeField(null=True)
    duration_s = peewee.FloatField(null=True)
    billsec_s = peewee.FloatField(null=True)
    note = peewee.CharField(max_length=200, null=True)
    # Added after the first release (create_tables adds them to older databases):
    amd_status = peewee.CharField(max_length=16, null=True)   # AMD(): MACHINE, HUMAN, NOTSURE...
    amd_cause = peewee.CharField(max_length=64, null=True)    # e.g. LONGGREETING-1500-1500
    digits = peewee.CharField(max_length=32, null=True)       # keys the callee pressed (collect)
    opted_out = peewee.BooleanField(null=True)                # True: the opt-out key was pressed
    node = peewee.IntegerField(null=True)     # the claiming node's service_heartbeat id (engine)

    class Meta:
        # (campaign, created_at): the dashboard's calls per minute, the report's and the API's
        # ranged reads; create_tables builds it on an older database at its first start
        indexes = ((("campaign", "status"), False), (("campaign", "created_at"), False))


def attempts_in_id_order(alias="a"):
    """FROM text for ``attempt`` read in id order within one campaign (keyset pages, the
    latest attempts). On SQLite it names the index attempt(campaign_id), whose entries are in
    rowid order: given attempt(campaign_id, created_at) the planner would otherwise take that
    one for ``campaign_id = ?`` (or a ``created_at >=`` filter) and sort every matching row
    before the LIMIT (1M rows for the dashboard's 20 latest attempts). PostgreSQL's planner
    walks the primary key itself."""
    if is_postgres():
        return "attempt %s" % alias
    return "attempt %s INDEXED BY attempt_campaign_id" % alias


class DncEntry(BaseModel):
    list_name = peewee.CharField(max_length=64)
    phone = peewee.CharField(max_length=20, index=True)
    added_at = peewee.DateTimeField()
    source = peewee.CharField(max_length=200, null=True)

    class Meta:
        indexes = ((("list_name", "phone"), True),)


class WebhookStatus(str, enum.Enum):
    PENDING = "pending"      # to deliver (again): next_try_at says when
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"        # given up after the campaign's webhook.give_up_after_h


class WebhookEvent(BaseModel):
    """The webhook outbox (agi_campaign.webhooks): one row per event to POST, written in the
    transaction of the change it reports. ``id`` is the per-deployment sequence (delivery
    order within a campaign), ``key`` the webhook-id (idempotency key), ``body`` the exact JSON
    sent on every try."""
    campaign = peewee.ForeignKeyField(Campaign, backref="webhook_events", on_delete="CASCADE")
    key = peewee.CharField(max_length=40)
    type = peewee.CharField(max_length=32)
    body = peewee.TextField()
    status = peewee.CharField(max_length=16, default=WebhookStatus.PENDING.value)
    tries = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField()
    next_try_at = peewee.DateTimeField()
    delivered_at = peewee.DateTimeField(null=True)
    last_error = peewee.CharField(max_length=200, null=True)

    class Meta:
        indexes = ((("campaign", "status", "id"), False),)


class Setting(BaseModel):
    key = peewee.CharField(max_length=64, primary_key=True)
    value = peewee.TextField()


class ServiceHeartbeat(BaseModel):
    """One row per `agi-campaign run` process, keyed by (host, pid): agi_campaign.heartbeat."""
    host = peewee.CharField(max_length=255)
    pid = peewee.IntegerField()
    instance = peewee.CharField(max_length=80)
    version = peewee.CharField(max_length=32)
    tick_ms = peewee.IntegerField()
    started_at = peewee.DateTimeField()
    beat_at = peewee.DateTimeField()                  # the heartbeat job's last write
    last_tick = peewee.DateTimeField(null=True)       # the states tick's last completion
    stopped_at = peewee.DateTimeField(null=True)      # set by a graceful stop
    reload_at = peewee.DateTimeField(null=True)       # the last reload's outcome
    reload_ok = peewee.BooleanField(null=True)
    reload_text = peewee.TextField(null=True)

    class Meta:
        table_name = "service_heartbeat"
        indexes = ((("host", "pid"), True),)


class DialGate(BaseModel):
    """The claim gate's rows (agi_campaign.gate): one per campaign (`c:<id>`) and one per
    server with limits (`s:<name>`), locked by each claim on PostgreSQL."""
    key = peewee.CharField(max_length=64, primary_key=True)
    next_at = peewee.DateTimeField(null=True)         # no call starts before (delay_ms, max_cps)
    last_campaign = peewee.IntegerField(null=True)    # server rows: who started the last call
    blocked = peewee.CharField(max_length=200, null=True)   # campaign rows: the server's limit
    blocked_at = peewee.DateTimeField(null=True)            # that stops it, since when

    class Meta:
        table_name = "dial_gate"


class Lease(BaseModel):
    """A named lease (agi_campaign.lease): which node (`holder`, its service_heartbeat id)
    may do a job alone until `expires_at` (naive UTC, on the database's clock); `epoch` grows
    by one each time the holder changes."""
    name = peewee.CharField(max_length=100, primary_key=True)
    holder = peewee.IntegerField()
    epoch = peewee.IntegerField()
    expires_at = peewee.DateTimeField()


ALL_MODELS = [Campaign, StateChange, ImportBatch, Number, Attempt, DncEntry, Setting,
              WebhookEvent, ServiceHeartbeat, DialGate, Lease]

IN_FLIGHT_STATUSES = (AttemptStatus.DIALING.value, AttemptStatus.ANSWERED.value)


def open_database(url, base_dir=None, create=True):
    """Bind the models to the database at `url` (agi_campaign.db.make_database) and create
    missing tables; returns the database.

    Raises StartupError with the reason when the database cannot be opened or written.
    """
    db = make_database(url, base_dir)
    database.initialize(db)
    if create:
        try:
            create_tables()
        except peewee.DatabaseError as err:
            # from None: the driver's own exception (unscrubbed text) stays out of tracebacks
            raise StartupError("database %s cannot be opened for writing: %s; check the path "
                               "and its permissions, or database.url"
                               % (mask_url(url), hide_password(str(err), url))) from None
    return db


def create_tables():
    """Create missing tables, and add the columns a newer version declares to the tables of
    an older database (nullable columns only: ALTER TABLE ADD COLUMN, no data rewritten)."""
    with database.connection_context():
        database.create_tables(ALL_MODELS, safe=True)
        _add_missing_columns()


def _add_missing_columns():
    from playhouse.migrate import SchemaMigrator, migrate

    for model in ALL_MODELS:
        table = model._meta.table_name
        have = {column.name for column in database.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name in have:
                continue
            if not field.null:
                raise StartupError("database table %s lacks column %s, which this version "
                                   "cannot add by itself; upgrade the database by hand"
                                   % (table, field.column_name))
            try:
                migrate(SchemaMigrator.from_database(database.obj).add_column(
                    table, field.column_name, field))
            except peewee.DatabaseError:    # another process added it first
                if field.column_name not in {c.name for c in database.get_columns(table)}:
                    raise
