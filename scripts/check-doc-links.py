#!/usr/bin/env python3
"""Checks relative links and #anchors in the repository's Markdown files (README.md, docs/, k8s/, bench/).

Usage: python3 scripts/check-doc-links.py [FILE.md ...]   (default: every tracked *.md outside vendored folders)
Exits 1 and prints FILE:LINE: link for each link whose file, or heading anchor (GitHub's slug rules), is missing.
External links (http:, https:, mailto:) are not checked.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = ("tests/deploy/crds/", "tests/compat/official/", "fuzz/corpus/")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    seen, result, fenced = {}, set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def links(path: Path):
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
        for m in LINK.finditer(line):
            yield number, m.group(1)


def main(argv):
    if argv:
        files = [Path(a).resolve() for a in argv]
    else:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        files = [ROOT / f for f in listed if not f.startswith(SKIP)]
    cache, bad = {}, 0
    for md in files:
        for number, target in links(md):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md
            problem = None
            if not dest.exists():
                problem = "no such file"
            elif anchor and dest.suffix == ".md":
                if dest not in cache:
                    cache[dest] = anchors(dest)
                if anchor not in cache[dest]:
                    problem = "no such anchor"
            if problem:
                bad += 1
                print(f"{md.relative_to(ROOT)}:{number}: {target} ({problem})")
    print(f"{len(files)} files checked, {bad} broken link(s)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
