"""What a session costs under a site's tariff: pure, exact (Decimal), no I/O.

Energy is priced by the time of day it was delivered: between two energy register readings it
is taken as delivered evenly, and energy no reading places is spread evenly over the session
(pro rata by time). Time is priced by the hour, each part at its band's price; the session fee
is added once, and only the total is rounded, to the currency's minor unit (half up).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision

from csms.config import TariffBand, TariffSpec, minute_of_day

ZERO = Decimal(0)
MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)
# (timestamp, energy register in Wh): what a charger's meter said when.
Reading = tuple[datetime, float]


@dataclass(frozen=True, slots=True)
class Cost:
    """A session's cost: `total` rounded to the currency's minor unit, and its unrounded
    parts (`total` is the rounded sum of the three)."""

    total: Decimal
    currency: str
    energy: Decimal
    time: Decimal
    fee: Decimal


@cache
def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency` (0.01 EUR, 1 JPY, 0.001 KWD), from CLDR."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def _hours(a: datetime, b: datetime) -> Decimal:
    return Decimal((b - a) // timedelta(microseconds=1)) / MICROSECONDS_PER_HOUR


def _covers(band: TariffBand, minute: int) -> bool:
    """Whether `band` holds `minute` of the day (one past midnight when it ends before it
    starts)."""
    start, end = minute_of_day(band.start), minute_of_day(band.end)
    return start <= minute < end if start < end else (minute >= start or minute < end)


def _band_at(tariff: TariffSpec, zone: ZoneInfo, instant: datetime) -> TariffBand | None:
    """The band whose time of day (local to the site) holds `instant`, if any."""
    local = instant.astimezone(zone)
    minute = local.hour * 60 + local.minute
    for band in tariff.bands:
        if _covers(band, minute):
            return band
    return None


def _prices(tariff: TariffSpec, band: TariffBand | None) -> tuple[Decimal, Decimal]:
    """(per kWh, per hour) in `band`, or the tariff's own outside any band."""
    energy, hourly = tariff.energy_price_per_kwh, tariff.time_price_per_hour
    if band is not None:
        if band.energy_price_per_kwh is not None:
            energy = band.energy_price_per_kwh
        if band.time_price_per_hour is not None:
            hourly = band.time_price_per_hour
    return energy, hourly


def _boundaries(tariff: TariffSpec, zone: ZoneInfo, start: datetime,
                end: datetime) -> list[datetime]:
    """`start`, every band edge strictly between `start` and `end`, and `end`, in order:
    each piece between two of them lies wholly in one band (or none)."""
    edges = {start, end}
    if tariff.bands:
        first: date = start.astimezone(zone).date() - timedelta(days=1)
        last: date = end.astimezone(zone).date() + timedelta(days=1)
        day = first
        while day <= last:
            for band in tariff.bands:
                for hhmm in (band.start, band.end):
                    minute = minute_of_day(hhmm)
                    edge = datetime.combine(day, time(minute // 60, minute % 60), zone)
                    if start < edge < end:
                        edges.add(edge.astimezone(UTC))
            day += timedelta(days=1)
    return sorted(edges)


def _energy_pieces(start: datetime, end: datetime, energy_kwh: Decimal,
                   readings: Iterable[Reading]) -> list[tuple[datetime, datetime, Decimal]]:
    """`energy_kwh` as (from, to, kWh) pieces: what the readings in [start, end] place between
    them, scaled down to `energy_kwh` if they add up to more, and the rest over the session."""
    points = sorted((t, Decimal(str(wh))) for t, wh in readings if start <= t <= end)
    pieces = [(a, b, max(ZERO, wb - wa) / 1000)
              for (a, wa), (b, wb) in zip(points, points[1:], strict=False) if b > a]
    placed = sum((kwh for _, _, kwh in pieces), ZERO)
    if placed > energy_kwh:
        # The register says more than the session's energy (a reading after the stop meter):
        # keep the shape, not the amount.
        return [(a, b, kwh * energy_kwh / placed) for a, b, kwh in pieces]
    rest = energy_kwh - placed
    return [*pieces, (start, end, rest)] if rest > 0 else pieces


def session_cost(tariff: TariffSpec, timezone: str, start: datetime, end: datetime,
                 energy_kwh: float | Decimal, readings: Sequence[Reading] = ()) -> Cost:
    """The cost of a session from `start` to `end` that delivered `energy_kwh`, on a site in
    `timezone`; `readings` (energy register, Wh) say when the energy came, where known."""
    zone = ZoneInfo(timezone)
    end = max(start, end)
    energy = max(ZERO, Decimal(str(energy_kwh)))
    # The session cut where prices change, once: each slot between two edges has one price.
    edges = _boundaries(tariff, zone, start, end)
    slots = [_prices(tariff, _band_at(tariff, zone, x + (y - x) / 2))
             for x, y in zip(edges, edges[1:], strict=False)]
    energy_cost = ZERO
    for a, b, kwh in _energy_pieces(start, end, energy, readings):
        if b == a:  # all at one instant (a session of no duration)
            energy_cost += kwh * _prices(tariff, _band_at(tariff, zone, a))[0]
            continue
        whole = _hours(a, b)
        first = bisect_right(edges, a) - 1
        cuts = [a, *edges[first + 1:bisect_left(edges, b)], b]
        for k, (x, y) in enumerate(zip(cuts, cuts[1:], strict=False)):
            energy_cost += kwh * _hours(x, y) / whole * slots[first + k][0]
    time_cost = sum((_hours(x, y) * price[1]
                     for (x, y), price in zip(zip(edges, edges[1:], strict=False), slots,
                                              strict=True)), ZERO)
    fee = tariff.session_fee
    total = (energy_cost + time_cost + fee).quantize(minor_unit(tariff.currency),
                                                     rounding=ROUND_HALF_UP)
    return Cost(total, tariff.currency, energy_cost, time_cost, fee)
