"""What sqlfluff's jinja templater renders for the package's macros when it lints models."""


def atomic_relation(name: str, type: str = "table") -> str:
    return f"analytics.analytics_atomic.atomic_{name}"
