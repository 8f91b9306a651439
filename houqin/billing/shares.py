"""A shared room's month split between its beds: roommates share one wallet and want to see each one's
part. The split is even (per bed, or per registered student when more are registered than beds), in
whole fen and 0.001 kWh, the remainders going one unit at a time to the first shares, so the shares add up
exactly to the room's total."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BedShare:
    bed: int  # 1-based
    student: str | None  # the registered student on this bed, in the order of their names; None: nobody
    kwh: float
    cost_fen: int


def even_shares(beds: int, kwh: float, cost_fen: int, students: list[str]) -> list[BedShare]:
    count = max(beds, len(students), 1)
    names: list[str | None] = [*sorted(students), *([None] * (count - len(students)))]
    fen, fen_left = divmod(cost_fen, count)
    milli, milli_left = divmod(round(kwh * 1000), count)
    return [
        BedShare(index + 1, names[index], (milli + (index < milli_left)) / 1000, fen + (index < fen_left))
        for index in range(count)
    ]
