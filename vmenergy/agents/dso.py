"""The DSO role as a SPADE agent (see :mod:`vmenergy.protocol.dso`)."""

from __future__ import annotations

from vmenergy.protocol.dso import DSO_ORDERS, DsoConfig, DsoEngine
from vmenergy.protocol.engine import OUTBOX, Engine, Ledger

from .base import VmeAgent

__all__ = ["DsoAgent"]


class DsoAgent(VmeAgent):
    """A distribution system operator: flex requests to the aggregators behind its congestion
    points, orders, verified settlement. Its peers are those aggregators."""

    role = "dso"

    def __init__(self, jid: str, password: str, *, config: DsoConfig, **kw) -> None:
        self.config = config
        super().__init__(jid, password, peers=tuple(config.aggregators), **kw)

    def make_engine(self, ledger: Ledger) -> Engine:
        return DsoEngine(str(self.jid), self.config, ledger=ledger)

    def progress(self) -> dict:
        # a run is not done while an order is not settled: money still owed, as a market's bills
        open_orders = sum(1 for r in self.engine.ledger[DSO_ORDERS].values()
                          if r.msg.status == "ordered" and r.settlement is None)
        return {"unanswered": len(self.engine.ledger[OUTBOX]), "bills_owed": open_orders}
