"""Evaluation: metrics, complexity, runtime, tiling, the NTIRE protocol."""
