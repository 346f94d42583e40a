#!/usr/bin/env python3
"""Rewrite the README's section on lpgen's own IAM policies from lpgen/data/own_policy.json.

Usage: python scripts/regen_own_policy_doc.py   (tests/test_own_policy.py checks README and file agree)
"""

from __future__ import annotations

from pathlib import Path

from lpgen.own_policy import BEGIN, END, render_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} section to rewrite")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    README.write_text(before + render_markdown() + after)
    print(f"rewrote the own-policy section of {README}")


if __name__ == "__main__":
    main()
