"""SPADE agents for the three node roles; thin shells over :mod:`vmenergy.protocol` engines."""

from .base import ServerAddress, VmeAgent, VmeMessage
from .dso import DsoAgent
from .roles import AggregatorAgent, MarketAgent, ProsumerAgent

__all__ = ["ServerAddress", "VmeAgent", "VmeMessage", "ProsumerAgent", "AggregatorAgent", "MarketAgent", "DsoAgent"]
