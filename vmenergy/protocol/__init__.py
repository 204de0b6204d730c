"""The agent protocol as pure code: message values and the role engines (sans-IO).

Agents in :mod:`vmenergy.agents` only move these values between XMPP and the engines.
"""
