"""Sunrise and sunset at the site, for outdoor lights that follow the sun.

The NOAA solar calculator's method (after Meeus, *Astronomical Algorithms*): the sun's declination and the
equation of time from its mean longitude and anomaly, then the hour angle at which its upper limb touches
the horizon (90.833° from the zenith, refraction included). Each event is computed twice, the second time
for the sun's position at the first answer, which keeps it within a minute of published tables between
the polar circles. Above them a day can have no sunrise or no sunset: the answer is ``None``.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Literal

SunEvent = Literal["sunrise", "sunset"]

_ZENITH = 90.833
_J2000 = 2451545.0
_UNIX_EPOCH_JD = 2440587.5


def _julian_day(moment: datetime) -> float:
    return _UNIX_EPOCH_JD + moment.timestamp() / 86400


def _declination_and_equation_of_time(julian_day: float) -> tuple[float, float]:
    """The sun's declination (radians) and the equation of time (minutes) at ``julian_day``."""
    t = (julian_day - _J2000) / 36525
    mean_longitude = math.radians((280.46646 + t * (36000.76983 + t * 0.0003032)) % 360)
    mean_anomaly = math.radians(357.52911 + t * (35999.05029 - 0.0001537 * t))
    eccentricity = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    centre = (
        math.sin(mean_anomaly) * (1.914602 - t * (0.004817 + 0.000014 * t))
        + math.sin(2 * mean_anomaly) * (0.019993 - 0.000101 * t)
        + math.sin(3 * mean_anomaly) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * t)
    apparent_longitude = math.radians(math.degrees(mean_longitude) + centre - 0.00569 - 0.00478 * math.sin(omega))
    mean_obliquity = 23 + (26 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60) / 60
    obliquity = math.radians(mean_obliquity + 0.00256 * math.cos(omega))
    declination = math.asin(math.sin(obliquity) * math.sin(apparent_longitude))
    y = math.tan(obliquity / 2) ** 2
    equation = (
        y * math.sin(2 * mean_longitude)
        - 2 * eccentricity * math.sin(mean_anomaly)
        + 4 * eccentricity * y * math.sin(mean_anomaly) * math.cos(2 * mean_longitude)
        - 0.5 * y * y * math.sin(4 * mean_longitude)
        - 1.25 * eccentricity * eccentricity * math.sin(2 * mean_anomaly)
    )
    return declination, 4 * math.degrees(equation)


def _event_minutes(julian_day: float, latitude: float, longitude: float, event: SunEvent) -> float | None:
    """Minutes after 00:00 UTC of the event, with the sun's position taken at ``julian_day``."""
    declination, equation = _declination_and_equation_of_time(julian_day)
    lat = math.radians(latitude)
    cos_hour_angle = math.cos(math.radians(_ZENITH)) / (math.cos(lat) * math.cos(declination)) - math.tan(
        lat
    ) * math.tan(declination)
    if not -1.0 <= cos_hour_angle <= 1.0:
        return None  # the sun stays above (or below) the horizon all day
    hour_angle = math.degrees(math.acos(cos_hour_angle))
    noon = 720 - 4 * longitude - equation
    return noon - 4 * hour_angle if event == "sunrise" else noon + 4 * hour_angle


def sun_event(day: date, latitude: float, longitude: float, event: SunEvent) -> datetime | None:
    """The UTC instant of sunrise or sunset on the local ``day`` (longitude east positive), or None."""
    # The local day is centred on the longitude's solar noon, not on Greenwich's.
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(minutes=4 * longitude)
    guess = midnight + timedelta(hours=12)
    for _ in range(2):
        minutes = _event_minutes(_julian_day(guess), latitude, longitude, event)
        if minutes is None:
            return None
        guess = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minutes)
    # A far-east site's morning is the previous UTC day; keep the event inside the local day around noon.
    solar_noon = midnight + timedelta(hours=12)
    while guess - solar_noon > timedelta(hours=12):
        guess -= timedelta(days=1)
    while solar_noon - guess > timedelta(hours=12):
        guess += timedelta(days=1)
    return guess
