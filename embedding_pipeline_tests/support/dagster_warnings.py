"""Dagster's beta and preview warnings, ignored in the tiers that run Dagster (see pyproject.toml)."""


def ignore_dagster_previews(config) -> None:
    for warning in ("BetaWarning", "PreviewWarning"):
        config.addinivalue_line("filterwarnings", f"ignore::dagster.{warning}")
