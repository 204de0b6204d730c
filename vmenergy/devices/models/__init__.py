"""Device models: each one's physics, normal behaviour, offers and metering (docs/devices.md).

``KINDS`` maps the name a scenario or a box config uses (``ev``, ``heat_pump``...) to the model
class; each class's ``Params`` dataclass lists its parameters with units, bounds and sources.
"""

from .base import Context, Device, DeviceError, Horizon, OwnerSettings, Run, meter_noise, seeded
from .baseload import BaseLoad, BaseLoadParams
from .battery import BatteryParams, HomeBattery
from .ev import EV, EVParams
from .pv import PV, PVParams
from .thermal import BoilerParams, Freezer, FreezerParams, HeatPump, HeatPumpParams, WaterBoiler
from .wet import Dishwasher, DishwasherParams, Dryer, DryerParams, Washer, WasherParams

__all__ = [
    "KINDS", "Context", "Device", "DeviceError", "Horizon", "OwnerSettings", "Run", "meter_noise", "seeded",
    "EV", "EVParams", "HeatPump", "HeatPumpParams", "HomeBattery", "BatteryParams", "PV", "PVParams",
    "Washer", "WasherParams", "Dishwasher", "DishwasherParams", "Dryer", "DryerParams", "WaterBoiler",
    "BoilerParams", "Freezer", "FreezerParams", "BaseLoad", "BaseLoadParams",
]

#: Device kinds by the name configs use.
KINDS: dict[str, type[Device]] = {cls.kind: cls for cls in (
    EV, HeatPump, HomeBattery, PV, Washer, Dishwasher, Dryer, WaterBoiler, Freezer, BaseLoad)}
