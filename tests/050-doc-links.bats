#!/usr/bin/env bats
# -*- bats -*-
#
# The documentation's links. No root, no namespaces, no plugin run:
#
#   * every relative link in README.md, docs/*.md and the READMEs of examples/ and
#     tests/ names a file that exists, and every #anchor a heading there
#     (tests/doc-links.py, GitHub's anchor rules);
#   * README.md, the entry, links every document in docs/, and each reference
#     document links back to it;
#   * the checker itself fails on a broken link or anchor, and reads Markdown as
#     GitHub does (anchors of code, punctuation and duplicate headings; nothing in
#     code is a link or a heading), so a pass above means something.

load helpers

CHECKER=$REPO/tests/doc-links.py

# Nothing heavy: no namespaces, no root. (Replaces helpers' basic_setup.)
setup() {
    TMP=${BATS_TEST_TMPDIR:-$(mktemp -d)}
    PY=$(command -v python3 || true)
    [[ -n $PY ]] || skip "needs python3"
}

teardown() {
    :
}

# The Markdown files whose links are checked.
doc_files() {
    local f
    for f in "$REPO"/README.md "$REPO"/docs/*.md "$REPO"/examples/README.md \
        "$REPO"/examples/deploy/README.md "$REPO"/tests/README.md; do
        [[ -f $f ]] && echo "$f"
    done
}

# check_links <file>...: run the checker, output and status in $output and $status.
check_links() {
    run "$PY" "$CHECKER" "$@"
}

# write_doc <name> <<'EOF' ... EOF: a Markdown file in the test's temporary directory.
write_doc() {
    cat >"$TMP/$1"
}

@test "every relative link and anchor in the documentation resolves" {
    local -a files
    mapfile -t files < <(doc_files)
    [[ ${#files[@]} -ge 5 ]] || die "expected README.md, docs/*.md and the READMEs; found: ${files[*]}"
    check_links "${files[@]}"
    [[ $status -eq 0 ]] || die "broken links (status $status):"$'\n'"$output"
    # A pass that read no links would prove nothing: README alone has dozens.
    local checked
    checked=$(sed -n 's/^\([0-9]*\) links checked in .*/\1/p' <<<"$output")
    [[ -n $checked && $checked -ge 50 ]] || die "the checker found too few links to be reading them: $output"
}

@test "README.md links every document in docs/, and each reference document links back" {
    local doc name
    for doc in "$REPO"/docs/*.md; do
        name=${doc##*/}
        grep -qE "\]\(docs/$name(#[^)]*)?\)" "$REPO/README.md" ||
            die "README.md has no link to docs/$name"
    done
    for name in configuration node-policy operations runtimes ipoib; do
        doc=$REPO/docs/$name.md
        [[ -f $doc ]] || die "docs/$name.md is missing"
        # The first paragraph after the title says what the document covers and
        # links back to the README.
        awk 'NR > 1 && NF { print; exit }' "$doc" | grep -qF '](../README.md)' ||
            die "docs/$name.md does not open with a link back to ../README.md"
    done
}

@test "the checker fails on a link to a file that does not exist" {
    mkdir -p "$TMP/sub"
    : >"$TMP/sub/there.md"
    write_doc broken.md <<'EOF'
# A document

A good link to [there](sub/there.md), then a bad one:
see [the guide](sub/missing.md) for more.
EOF
    check_links "$TMP/broken.md"
    [[ $status -eq 1 ]] || die "expected status 1 for a missing file, got $status: $output"
    grep -qF "$TMP/broken.md:4: sub/missing.md: no such file" <<<"$output" ||
        die "the broken link is not reported with its file and line: $output"
    ! grep -qF "sub/there.md:" <<<"$output" || die "the good link was reported too: $output"
    grep -qF "2 links checked in 1 files, 1 broken" <<<"$output" || die "wrong summary: $output"
}

@test "the checker fails on an anchor that no heading of the target produces" {
    write_doc target.md <<'EOF'
# Target

## Some heading
EOF
    write_doc good.md <<'EOF'
[in it](target.md#some-heading), [its title](target.md#target)
EOF
    write_doc bad.md <<'EOF'
[not in it](target.md#no-such-heading)
EOF
    check_links "$TMP/good.md"
    [[ $status -eq 0 ]] || die "anchors of existing headings were refused: $output"
    check_links "$TMP/bad.md"
    [[ $status -eq 1 ]] || die "expected status 1 for a bad anchor, got $status: $output"
    grep -qF "bad.md:1: target.md#no-such-heading: no heading in $TMP/target.md has the anchor #no-such-heading" <<<"$output" ||
        die "the bad anchor is not reported: $output"
}

@test "anchors follow GitHub's rules: code and punctuation in headings, duplicates, same-file links" {
    write_doc rules.md <<'EOF'
# amd-host-device — architecture

## What `host-device` gets

## IPoIB on Azure (Hyper-V KVP)

## Why not plain `host-device`, or the vendor plugin?

## Status / roadmap

## Notes

## Notes

Setext heading
--------------

[a](#amd-host-device--architecture) [b](#what-host-device-gets)
[c](#ipoib-on-azure-hyper-v-kvp) [d](#why-not-plain-host-device-or-the-vendor-plugin)
[e](#status--roadmap) [f](#notes) [g](#notes-1) [h](#setext-heading)
EOF
    check_links "$TMP/rules.md"
    [[ $status -eq 0 ]] || die "GitHub-style anchors were refused: $output"
    grep -qF "8 links checked in 1 files, 0 broken" <<<"$output" || die "not every link was read: $output"

    # A third "Notes" was never written, and GitHub keeps case out of anchors.
    write_doc rules-bad.md <<'EOF'
## Notes

## Notes

[x](#notes-2) [y](#Notes)
EOF
    check_links "$TMP/rules-bad.md"
    [[ $status -eq 1 ]] || die "expected status 1, got $status: $output"
    grep -qF "#notes-2: no heading" <<<"$output" || die "#notes-2 not reported: $output"
    grep -qF "#Notes: no heading" <<<"$output" || die "#Notes not reported: $output"
}

@test "nothing in code is a link or a heading; external links are not followed" {
    write_doc code.md <<'EOF'
# Code

```sh
# not-a-heading
echo "[x](missing-in-fence.md)"
```

  ```json
  {"a": "[y](missing-in-indented-fence.md)"}
  ```

Inline `[z](missing-in-span.md)` and a span that wraps `[w](missing-in-
wrapped-span.md)` lines.

[web](https://example.com/nowhere.md) [mail](mailto:nobody@example.com)
EOF
    check_links "$TMP/code.md"
    [[ $status -eq 0 ]] || die "links in code, or external links, were checked: $output"
    grep -qF "2 links checked in 1 files, 0 broken" <<<"$output" || die "expected only the two external links: $output"

    # ... but a comment line in a code block is no heading to link to.
    write_doc code-anchor.md <<'EOF'
```sh
# not-a-heading
```

[to it](#not-a-heading)
EOF
    check_links "$TMP/code-anchor.md"
    [[ $status -eq 1 ]] || die "a '#' line in a code block counted as a heading: $output"
}
