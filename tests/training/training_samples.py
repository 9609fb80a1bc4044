"""Catalog schemas of the shipped tables, as a node's catalog would describe them."""

from __future__ import annotations

from connectors.datasets import Column, ColumnType, PSPPRole

_ELEMENT_TEXT = "al b c co cr cu fe hf la mg mn mo n nb ni p re ru si ta ti v w y th o zr"
_ELEMENTS = tuple(_ELEMENT_TEXT.split())


def ni_superalloy_columns() -> tuple[Column, ...]:
    """The catalog schema of ``ni_superalloys.csv`` (composition as structure, heat treatment as
    processing, test temperature as condition)."""
    f, s = ColumnType.FLOAT, ColumnType.STRING
    cols = [
        Column(name="record_id", type=s, pspp=PSPPRole.IDENTIFIER),
        Column(name="alloy", type=s, pspp=PSPPRole.IDENTIFIER),
        Column(name="doi", type=s, pspp=PSPPRole.IDENTIFIER),
    ]
    cols += [
        Column(name=f"{e}_wt_pct", type=f, unit="wt%", pspp=PSPPRole.STRUCTURE) for e in _ELEMENTS
    ]
    for step in range(1, 6):
        cols += [
            Column(name=f"ht{step}_temperature_c", type=f, unit="degC", pspp=PSPPRole.PROCESSING),
            Column(name=f"ht{step}_time_h", type=f, unit="h", pspp=PSPPRole.PROCESSING),
            Column(name=f"ht{step}_cooling", type=s, pspp=PSPPRole.PROCESSING),
        ]
    cols += [
        Column(name="pressure_treated", type=s, pspp=PSPPRole.PROCESSING),
        Column(name="pt_pressure_mpa", type=f, unit="MPa", pspp=PSPPRole.PROCESSING),
        Column(name="pt_temperature_c", type=f, unit="degC", pspp=PSPPRole.PROCESSING),
        Column(name="pt_time_h", type=f, unit="h", pspp=PSPPRole.PROCESSING),
        Column(name="max_ht_temperature_c", type=f, unit="degC", pspp=PSPPRole.PROCESSING),
        Column(name="total_ht_time_h", type=f, unit="h", pspp=PSPPRole.PROCESSING),
        Column(name="ht_area_c_h", type=f, unit="degC h", pspp=PSPPRole.PROCESSING),
        Column(name="powder_processed", type=s, pspp=PSPPRole.PROCESSING),
        Column(name="strengthening_precipitate_phase", type=s, pspp=PSPPRole.STRUCTURE),
        Column(name="test_temperature_c", type=f, unit="degC", pspp=PSPPRole.CONDITION),
        Column(name="yield_strength_mpa", type=f, unit="MPa", pspp=PSPPRole.PROPERTY),
        Column(name="ultimate_tensile_strength_mpa", type=f, unit="MPa", pspp=PSPPRole.PROPERTY),
        Column(name="elongation_pct", type=f, unit="%", pspp=PSPPRole.PROPERTY),
        Column(name="stress_rupture_stress_mpa", type=f, unit="MPa", pspp=PSPPRole.PERFORMANCE),
        Column(name="stress_rupture_time_h", type=f, unit="h", pspp=PSPPRole.PERFORMANCE),
    ]
    return tuple(cols)


def formula_columns(unit: str = "MPa") -> tuple[Column, ...]:
    """Schema of the Matbench-style ``formula,target`` tables."""
    return (
        Column(name="formula", type=ColumnType.STRING, pspp=PSPPRole.STRUCTURE),
        Column(name="target", type=ColumnType.FLOAT, unit=unit, pspp=PSPPRole.PROPERTY),
    )
