"""Rewrite the goldens of `lpgen sam`.

    python scripts/regen_sam_goldens.py [--check]

- ``fixtures/sam/<case>.review.json``: the static review of each public-style template
  (account 123456789012, us-east-1), one case per common mistake;
- ``tests/data/sam_policy_templates.json``: every SAM policy template aws-sam-translator
  bundles, expanded with example parameters (``example-<parameter>``), so a new translator
  version that changes a template shows up as a reviewed diff;
- ``fixtures/demo/template.review.json`` and ``fixtures/demo/template.patch``: the demo
  template reviewed against the demo trail (stack orders-service, --min-days 7).

Regenerate only for an intended change, and read the diff. ``--check`` exits 1 when stale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from lpgen.diff import DiffOptions
from lpgen.mine import mine
from lpgen.sam import expand_sam_template, sam_policy_templates
from lpgen.sam_report import render, render_patch
from lpgen.sam_review import ReviewOptions, review
from lpgen.sources.local import LocalSource
from lpgen.store import UsageStore
from lpgen.template import Pseudo, Resolver, load_template, parse_template

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "fixtures" / "sam"
DEMO = ROOT / "fixtures" / "demo"
TEMPLATES_GOLDEN = ROOT / "tests" / "data" / "sam_policy_templates.json"
CASE_PSEUDO = Pseudo(region="us-east-1", account="123456789012")
DEMO_OPTIONS = ReviewOptions(pseudo=Pseudo(stack="orders-service"), diff=DiffOptions(min_days=7))


def case_review(path: Path) -> str:
    return render(review(load_template(path.relative_to(ROOT)), ReviewOptions(pseudo=CASE_PSEUDO)), "json")


def policy_templates() -> str:
    resolver = Resolver(parse_template("Resources: {}\n"), pseudo=CASE_PSEUDO)
    out = {}
    for name, spec in sorted(sam_policy_templates().items()):
        params = {p: f"example-{p.lower()}" for p in sorted(spec.get("Parameters", {}))}
        out[name] = {"parameters": params, "document": expand_sam_template(name, params, resolver)}
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def demo() -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp, UsageStore(Path(tmp) / "usage.db") as store:
        mine([LocalSource(DEMO / "AWSLogs")], store)
        rows, coverage = list(store.usage(include_service=True)), store.coverage()
    result = review(load_template((DEMO / "template.yaml").relative_to(ROOT)), DEMO_OPTIONS, rows, coverage)
    return render(result, "json"), render_patch(result)


def goldens() -> dict[Path, str]:
    out = {path.with_suffix(".review.json"): case_review(path) for path in sorted(CASES.iterdir())
           if path.suffix in (".yaml", ".json") and not path.name.endswith(".review.json")}
    out[TEMPLATES_GOLDEN] = policy_templates()
    out[DEMO / "template.review.json"], out[DEMO / "template.patch"] = demo()
    return out


def main(argv: list[str]) -> int:
    import os

    os.chdir(ROOT)  # goldens name templates by their path from the repository root
    files = goldens()
    if "--check" in argv:
        stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
        print("stale: " + ", ".join(stale) + "; run python scripts/regen_sam_goldens.py" if stale else "up to date")
        return int(bool(stale))
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
