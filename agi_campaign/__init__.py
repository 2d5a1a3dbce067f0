"""agi-campaign: a call-campaign dialer for Asterisk (FastAGI server plus scheduler)."""

__version__ = "0.1.0"
