#!/usr/bin/env python3
"""Checks that every relative link and anchor in Herald's Markdown docs resolves.

Checked files: README.md, docs/*.md and examples/**/README.md (or the files given as
arguments). For each link `[text](target)`, image `![alt](target)` and reference definition
`[label]: target` outside code:

- the target file (or directory) exists, relative to the linking file (or to the repository
  root for a target starting with `/`, as GitHub resolves it);
- a `#anchor` on a Markdown target (or a bare `#anchor`, meaning the same file) matches one of
  its headings, slugged the way GitHub does: the heading's text lower-cased, punctuation and
  symbols removed except `-` and `_`, each space turned into `-`, and the second, third, ...
  heading with the same slug getting `-1`, `-2`, ...; explicit `<a name="..">`/`id=".."`
  anchors count too.

External links (http:, https:, mailto:, any other scheme) are not fetched. Each broken link is
printed as `file:line: link: reason`; the exit status is 1 if there was any. Standard library
only, so it runs before anything is installed (scripts/test.sh calls it first).
"""

import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target): the target is <...> or has no spaces.
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def default_files():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "examples").glob("**/README.md"))
    return [f for f in files if f.is_file() and "node_modules" not in f.parts]


def prose_lines(text):
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield number, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)) :]:
            fence = None


def heading_text(raw):
    """The text GitHub renders for a heading's Markdown source."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), raw)
    text = INLINE_LINK.sub(lambda m: m.group(1), text)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers, not snake_case
    return text.strip()


def slug(text):
    """GitHub's anchor for a heading text (github-slugger's rule)."""
    out = []
    for ch in text.lower():
        category = unicodedata.category(ch)
        if ch in "-_" or ch == " " or category[0] in "LNM" or category == "Pc":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def anchors(path, cache={}):
    """Every anchor a Markdown file offers."""
    if path not in cache:
        found, seen = set(), {}
        lines = list(prose_lines(path.read_text(encoding="utf-8")))
        previous = None
        for number, line in lines:
            found.update(HTML_ANCHOR.findall(line))
            text = None
            m = ATX.match(line)
            if m:
                text = m.group(2) or ""
            elif SETEXT.match(line) and previous and previous[0] == number - 1 and previous[1].strip():
                text = previous[1].strip()
            if text is not None:
                base = slug(heading_text(text))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
            previous = (number, line)
        cache[path] = found
    return cache[path]


def links(path):
    """(line number, target) for every link of a Markdown file outside code."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        m = REF_DEF.match(line)
        if m:
            yield number, m.group(1).strip("<>")
            continue
        line = CODE_SPAN.sub("", line)
        for m in INLINE_LINK.finditer(line):
            yield number, m.group(2).strip("<>")


def check(path):
    """The broken links of one file, as `file:line: link: reason`."""
    problems = []
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for number, link in links(path):
        if not link or SCHEME.match(link):
            continue  # external (http:, https:, mailto:, ...): not fetched
        target, _, anchor = link.partition("#")
        target, anchor = unquote(target), unquote(anchor)
        if target:
            base = ROOT if target.startswith("/") else path.parent
            resolved = (base / target.lstrip("/")).resolve()
            if not resolved.exists():
                problems.append(f"{shown}:{number}: {link}: no such file {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
                continue
        else:
            resolved = path
        if anchor and resolved.is_file() and resolved.suffix.lower() == ".md" and anchor not in anchors(resolved):
            near = sorted(a for a in anchors(resolved) if a.split("-")[0] == anchor.split("-")[0])
            hint = f" (did you mean {', '.join('#' + a for a in near)}?)" if near else ""
            name = "this file" if resolved == path else resolved.name
            problems.append(f"{shown}:{number}: {link}: no heading with anchor #{anchor} in {name}{hint}")
    return problems


def main(argv):
    files = [Path(a).resolve() for a in argv] or default_files()
    problems = [p for f in files for p in check(f)]
    for p in problems:
        print(p)
    if problems:
        print(f"check-links: {len(problems)} broken link(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    print(f"check-links: every relative link and anchor in {len(files)} file(s) resolves", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
