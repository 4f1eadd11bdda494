"""Okabe–Ito colours (readable with the common colour-vision deficiencies), and the fixed
colour of each series so that a status or an outcome keeps its colour on every chart."""

from __future__ import annotations

ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILION, PURPLE, GREY = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")

STATUS = {"active": BLUE, "revoked": GREY}
#: Failures and refusals stand out (vermilion, orange); the rest recede.
OUTCOME = {"succeeded": BLUE, "requested": SKY, "reconciled": GREEN, "skipped": GREY,
           "failed": VERMILION, "denied": ORANGE}
BUCKET = BLUE
#: For series without a fixed meaning (people, kinds of change), in this order.
CATEGORIES = [BLUE, ORANGE, SKY, GREEN, VERMILION, PURPLE, YELLOW, GREY]
WARN = VERMILION


def scale(colours: dict[str, str]) -> dict[str, list[str]]:
    """A Vega-Lite colour scale giving each series its fixed colour."""
    return {"domain": list(colours), "range": list(colours.values())}
