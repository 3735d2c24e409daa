"""The guides' templates: docs/templates/<guide>.md, filled by the stage that writes the guide (roi, report)."""

from __future__ import annotations

from string import Template

from fraudtune import paths
from fraudtune.errors import FraudtuneError

TEMPLATES_DIR = paths.REPO_ROOT / "docs" / "templates"


def fill_template(name: str, **values: str) -> str:
    """docs/templates/<name> with every `$placeholder` filled from `values` (`$$` is a literal dollar sign).

    Templates belong to the repository, not to the installed package: a guide is a document of this checkout.
    """
    path = TEMPLATES_DIR / name
    if not path.is_file():
        raise FraudtuneError(
            f"{path}: guide template not found; run from a fraudtune checkout (the guides' templates are in "
            "docs/templates/, not in the installed package)"
        )
    template = Template(path.read_text(encoding="utf-8"))
    if not template.is_valid():
        raise ValueError(f"{path}: a `$` that starts no placeholder; write `$$` for a dollar sign")
    wanted = set(template.get_identifiers())
    if wanted != set(values):  # the renderer and its template disagree: a bug, not a user's mistake
        raise ValueError(
            f"{path}: placeholders without a value {sorted(wanted - set(values))}, "
            f"values without a placeholder {sorted(set(values) - wanted)}"
        )
    return template.substitute(values)
