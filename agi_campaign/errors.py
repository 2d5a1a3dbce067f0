"""The project's exceptions: one base class, typed subclasses.

Every message names the input, the place and what to do about it; the CLI prints it on one line.
"""


class AgiCampaignError(Exception):
    """Base class of every error this project raises on purpose."""

    exit_code = 1


class ConfigError(AgiCampaignError):
    """The YAML configuration is invalid."""

    exit_code = 2


class CsvImportError(AgiCampaignError):
    """A CSV file cannot be imported at all (not a per-row rejection)."""

    exit_code = 2


class PhoneError(AgiCampaignError):
    """A phone number is not valid; str(err) is the reason."""

    exit_code = 2


class WeekTimeError(AgiCampaignError):
    """A week-time condition does not parse."""

    exit_code = 2


class StateError(AgiCampaignError):
    """A campaign state transition is not allowed."""

    exit_code = 2


class NotFoundError(AgiCampaignError):
    """A campaign, list, number or attempt does not exist."""

    exit_code = 2


class UsageError(AgiCampaignError):
    """A command-line argument is invalid."""

    exit_code = 2


class StartupError(AgiCampaignError):
    """The service cannot start (port taken, AMI refused, database unwritable...)."""


class ServiceError(AgiCampaignError):
    """The running service could not be reached or did not answer (`agi-campaign reload`)."""


class AmiError(AgiCampaignError):
    """An AMI action failed or the AMI peer misbehaved."""


class AmiTimeout(AmiError):
    """No AMI reply within the timeout."""


class AmiNotConnected(AmiError):
    """The AMI connection is down."""


class AmiNotSent(AmiNotConnected):
    """The action was never written to Asterisk (no connection, or it closed first): its
    fate is known, nothing happened."""


class AmiAuthError(AmiError):
    """The AMI login was refused."""


class AgiError(AgiCampaignError):
    """A FastAGI exchange failed."""


class AgiHangup(AgiError):
    """The channel hung up (HANGUP, EOF or 511)."""


class AgiProtocolError(AgiError):
    """Asterisk (or a peer pretending to be it) sent something we cannot parse."""
