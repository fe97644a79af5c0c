#!/usr/bin/env python3
"""Check the relative links of Markdown files, the way GitHub resolves them.

Usage: doc-links.py FILE.md...

For every inline link `[text](target)` and reference definition `[label]: target`
outside code blocks and code spans:

  * a target with a scheme (https:, mailto:) is external and not checked;
  * the path, relative to the file that links, must exist (a file or a directory);
  * a `#anchor` (alone: in the same file) must be produced by a heading of the
    target Markdown file, with GitHub's rules (see `anchor_of`), or by an HTML
    `id`/`name` attribute there; on any other file only GitHub's line anchors
    (`#L10`, `#L10-L20`) are accepted.

Each broken link is printed as `FILE:LINE: target: why`, then a summary line
`N links checked in M files, K broken`. Exit status: 0 when nothing is broken,
1 when a link is, 2 on a usage error or an unreadable file.

Only the Python standard library is used, so the check needs nothing installed.
"""

import os
import re
import sys
from urllib.parse import unquote

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# A code span may wrap lines but, like a paragraph, ends at a blank line.
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")
LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")


def blank_keeping_newlines(match):
    """Replace a match by spaces, keeping its newlines so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def mask_code_blocks(lines):
    """The lines with fenced code blocks emptied: nothing in them is a link or heading.

    Fences may be indented (a code block inside a list item); a block closes at a fence
    of the same character at least as long as the one that opened it.
    """
    masked = []
    opening = None
    for line in lines:
        fence = FENCE.match(line)
        if opening is None:
            if fence:
                opening = fence.group(1)
                masked.append("")
            else:
                masked.append(line)
        else:
            if fence and fence.group(1)[0] == opening[0] and len(fence.group(1)) >= len(opening) \
                    and line.strip() == fence.group(1):
                opening = None
            masked.append("")
    return masked


def heading_text(raw):
    """What GitHub renders of a heading's Markdown, as plain text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = text.replace("`", "")
    text = text.replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # _emphasis_, not snake_case
    return text


def anchor_of(raw):
    """GitHub's anchor for a heading: lowercase, punctuation but - and _ dropped, spaces -> -.

    Runs of spaces are not collapsed ("a — b" gives "a--b"), as on GitHub.
    """
    text = heading_text(raw).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(lines):
    """The raw text of every ATX and setext heading, in order."""
    found = []
    previous = ""
    for line in lines:
        atx = ATX_HEADING.match(line)
        if atx:
            found.append(atx.group(2) or "")
            previous = ""
            continue
        if SETEXT_UNDERLINE.match(line) and is_paragraph_line(previous):
            found.append(previous.strip())
            previous = ""
            continue
        previous = line
    return found


def is_paragraph_line(line):
    """Whether a line can be a setext heading's text (not blank, a list item or table row)."""
    stripped = line.strip()
    if not stripped or line.startswith("    "):
        return False
    return not re.match(r"^([-*+]\s|\d+[.)]\s|\||>)", stripped)


def anchors_in(text):
    """Every anchor a Markdown document offers: its headings' (duplicates get -1, -2, ...)
    and its HTML id/name attributes."""
    lines = mask_code_blocks(text.split("\n"))
    seen = {}
    anchors = set()
    for raw in headings(lines):
        base = anchor_of(raw)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    anchors.update(HTML_ANCHOR.findall(HTML_COMMENT.sub("", "\n".join(lines))))
    return anchors


def links_in(text):
    """(line number, target) of every link outside code, in order."""
    lines = mask_code_blocks(text.split("\n"))
    prose = "\n".join(lines)
    prose = HTML_COMMENT.sub(blank_keeping_newlines, prose)
    prose = CODE_SPAN.sub(blank_keeping_newlines, prose)
    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEF):
        for match in pattern.finditer(prose):
            target = match.group(1)
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            line = prose.count("\n", 0, match.start()) + 1
            found.append((line, target))
    found.sort()
    return found


class Checker:
    def __init__(self):
        self.anchor_cache = {}

    def anchors_of_file(self, path):
        key = os.path.realpath(path)
        if key not in self.anchor_cache:
            with open(path, encoding="utf-8") as f:
                self.anchor_cache[key] = anchors_in(f.read())
        return self.anchor_cache[key]

    def problem(self, source, target):
        """Why a link from `source` to `target` is broken, or None if it is not."""
        if SCHEME.match(target):
            return None
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part)
        fragment = unquote(fragment)
        if path_part.startswith("/"):
            return "absolute path: GitHub resolves it from the repository root; use a relative link"
        if path_part:
            resolved = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
            if not os.path.exists(resolved):
                return f"no such file: {resolved}"
        else:
            resolved = source
        if not fragment:
            return None
        if os.path.isfile(resolved) and resolved.endswith(".md"):
            if fragment not in self.anchors_of_file(resolved):
                return f"no heading in {resolved} has the anchor #{fragment}"
            return None
        if os.path.isfile(resolved) and LINE_ANCHOR.match(fragment):
            return None
        return f"#{fragment} points into {resolved}, which is not a Markdown file"

    def check(self, source):
        """Print each broken link of one file; return (links checked, broken)."""
        with open(source, encoding="utf-8") as f:
            text = f.read()
        links = links_in(text)
        broken = 0
        for line, target in links:
            why = self.problem(source, target)
            if why:
                broken += 1
                print(f"{source}:{line}: {target}: {why}")
        return len(links), broken


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    checker = Checker()
    total = broken = 0
    for source in argv[1:]:
        try:
            checked, bad = checker.check(source)
        except OSError as e:
            print(f"{source}: cannot read: {e.strerror}", file=sys.stderr)
            return 2
        total += checked
        broken += bad
    print(f"{total} links checked in {len(argv) - 1} files, {broken} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
