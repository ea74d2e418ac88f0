"""Sunlight on the panel: the sun's elevation (astral), a clear-sky irradiance, clouds, the panel.

Clear-sky global horizontal irradiance from the Haurwitz model,

    GHI = 1098 · cos z · exp(-0.059 / cos z)   W/m²,   z the apparent solar zenith angle,

(B. Haurwitz, "Insolation in Relation to Cloudiness and Cloud Density", Journal of Meteorology 2,
154-166, 1945; as implemented by pvlib's `clearsky.haurwitz`; Reno, Hansen & Stein, Sandia report
SAND2012-2389, found it the best of the zenith-only clear-sky models). The panel is taken as lying
flat: its output is `panel_peak_w · GHI / 1000 · derate · cloud`, before the station's solar
input limit (the station caps it; see `battery`).

The sun's elevation changes slowly: it is computed once a minute and interpolated between.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from typing import Final

from astral import Observer
from astral.sun import elevation

from aigloo_edge.twin.scenario import DAY_S, SolarParams

HAURWITZ_A: Final = 1098.0  # W/m²
HAURWITZ_B: Final = 0.059
STC_IRRADIANCE: Final = 1000.0  # W/m²: the irradiance a panel's rating refers to
SUN_GRID_S: Final = 60.0


def haurwitz_ghi(elevation_deg: float) -> float:
    """Clear-sky global horizontal irradiance (W/m²) at this apparent solar elevation."""
    if elevation_deg <= 0:
        return 0.0
    cos_zenith = math.sin(math.radians(elevation_deg))
    return HAURWITZ_A * cos_zenith * math.exp(-HAURWITZ_B / cos_zenith)


class Sun:
    """The sun's apparent elevation (with refraction) at a place, by Unix time."""

    def __init__(self, latitude: float, longitude: float) -> None:
        self.observer = Observer(latitude=latitude, longitude=longitude)
        self._grid: dict[int, float] = {}

    def exact(self, t: float) -> float:
        when = dt.datetime.fromtimestamp(t, dt.UTC)
        return float(elevation(self.observer, when, with_refraction=True))

    def elevation(self, t: float) -> float:
        """Degrees above the horizon, interpolated from a one-minute grid."""
        index = math.floor(t / SUN_GRID_S)
        before, after = self._at(index), self._at(index + 1)
        weight = t / SUN_GRID_S - index
        return before + (after - before) * weight

    def _at(self, index: int) -> float:
        value = self._grid.get(index)
        if value is None:
            if len(self._grid) > 4 * 1440:  # a live twin runs for days: keep a few
                self._grid.clear()
            value = self._grid[index] = self.exact(index * SUN_GRID_S)
        return value


class SolarArray:
    """The panel's output (W) before the station's input limit."""

    def __init__(self, params: SolarParams, utc_offset_s: float) -> None:
        self.params = params
        self.utc_offset_s = utc_offset_s
        self.sun = Sun(params.latitude, params.longitude)
        self._cloud_at = [step.at for step in params.cloud]
        self._cloud_factor = [step.factor for step in params.cloud]

    def cloud(self, t: float) -> float:
        """The fraction of clear-sky light getting through: the last step before this clock
        time (before the day's first step, the previous day's last)."""
        clock = (t + self.utc_offset_s) % DAY_S
        index = bisect.bisect_right(self._cloud_at, clock) - 1
        return self._cloud_factor[index]  # index -1: the previous day's last step

    def watts(self, t: float) -> float:
        ghi = haurwitz_ghi(self.sun.elevation(t))
        if ghi <= 0:
            return 0.0
        p = self.params
        return p.panel_peak_w * ghi / STC_IRRADIANCE * p.derate * self.cloud(t)
