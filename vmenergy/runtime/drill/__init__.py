"""Fault drills (issue 16): a scenario day disturbed on purpose, on the project's own machinery.

``vmenergy drill SCENARIO`` (and ``make drills``) runs each kind of :data:`KINDS` once: kill -9
of a prosumer process, the aggregator's, the market's and the XMPP server; a network that
delays, drops and cuts (:mod:`.proxy`); a full disk under the stores (:mod:`.disk`). Each drill
prints items offered / assigned / measured / billed, items lost, exceptions (those raised
outside VME apart) and time to recover (:mod:`.figures`); :func:`.run.run_drill` runs one.
"""

__all__ = ["KINDS"]

#: The drills, in the order ``vmenergy drill`` runs them (kept here, away from the modules that
#: start processes, so that the command line can list them without importing those).
KINDS = ("prosumer", "aggregator", "market", "server", "network", "disk")
