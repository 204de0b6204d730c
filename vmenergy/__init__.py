"""VME, the Virtual Market of Energy: demand response and electricity-flexibility trading.

The core (``vmenergy.flexoffer``, ``vmenergy.wire`` and the algorithm packages) is pure: no I/O,
no clock, no XMPP. The shell (agents, devices, runtime, store) does the talking.
"""

__version__ = "0.1.0"
