"""Dagster only: resources, assets, checks, schedules and the definitions that wire them."""
