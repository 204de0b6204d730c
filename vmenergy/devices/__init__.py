"""Devices: how a prosumer box turns a schedule into energy (models and hardware adapters)."""
