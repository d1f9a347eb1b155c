#!/usr/bin/env python3
"""Fails when README.md or a document in docs/ links to a file that is not in
the repository (a new user has only the clone). Web links are not checked."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
broken = []
for doc in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for target in link.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue
            path = (doc.parent / target).resolve()
            if not path.exists() or root not in path.parents and path != root:
                broken.append(f"{doc.relative_to(root)}:{number}: {target}")
if broken:
    print("links to files not in the repository:", *broken, sep="\n  ", file=sys.stderr)
    sys.exit(1)
