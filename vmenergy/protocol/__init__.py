"""The agent protocol as pure code: message values, the role engines (sans-IO) and the
strategies they run each step with.

Agents in :mod:`vmenergy.agents` only move these values between XMPP and the engines. See
docs/architecture.md ("The agent protocol in code") for a map of the modules.
"""
