"""The manual (README.md and docs/*.md) holds together: every link between its
files points to a file and a heading that exist, every page is reachable from
the README, every directive of the module has its entry in the directive
reference, and the README's install lines are the ones make test-system runs.
Reads files only: no server is started."""
import glob
import os
import re

import pytest

from conftest import TOP

README = "README.md"
PAGES = [README] + sorted(os.path.relpath(p, TOP)
                          for p in glob.glob(os.path.join(TOP, "docs", "*.md")))

# Pages that other branches write and that may be linked before they land: a
# link to one of them is checked once the file exists, and skipped until then.
PENDING = {"docs/mysql.md"}

FIELDS = ["Description", "Syntax", "Default", "Context", "Override", "Status",
          "Module", "Compatibility"]
COMPATIBILITY = re.compile(r"Available in mod_k2notify \d+\.\d+\.\d+ and later")


def read(page):
    with open(os.path.join(TOP, page)) as f:
        return f.read()


def prose(text):
    """The text a reader sees as Markdown, without fenced blocks, code spans
    and HTML comments (a commented-out link is not a link)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    lines, fence = [], None
    for line in text.split("\n"):
        m = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            lines.append("")
            continue
        if m:
            fence = m.group(1)
            lines.append("")
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"``.+?``", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def github_anchor(heading):
    """The id GitHub gives a heading: its text as rendered (code spans and
    links reduced to their text, emphasis markers gone), lower case, every
    character but letters, digits, '_', '-' and spaces dropped, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "")
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    """Every anchor of a page, with GitHub's -1, -2 ... for repeated headings."""
    seen, out = {}, set()
    text = re.sub(r"<!--.*?-->", "", read(page), flags=re.S)
    fence = None
    for line in text.split("\n"):
        m = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        h = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if h:
            a = github_anchor(h.group(1))
            n = seen.get(a, 0)
            seen[a] = n + 1
            out.add(a if n == 0 else f"{a}-{n}")
        out.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return out


def links(page):
    """(target, line number) of every inline and reference-style link."""
    text = prose(read(page))
    found = []
    for m in re.finditer(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text):
        found.append((m.group(1), text.count("\n", 0, m.start()) + 1))
    for m in re.finditer(r"^\s*\[[^\]]+\]:\s*(\S+)", text, re.M):
        found.append((m.group(1), text.count("\n", 0, m.start()) + 1))
    return found


def broken_links(page):
    problems = []
    for target, line in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue                    # https:, mailto: ...: not ours to check
        path, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        where = f"{page}:{line}: ({target})"
        if dest in PENDING and not os.path.exists(os.path.join(TOP, dest)):
            continue
        if not os.path.exists(os.path.join(TOP, dest)):
            problems.append(f"{where}: no file {dest}")
        elif anchor and not dest.endswith(".md"):
            problems.append(f"{where}: an anchor into {dest}, which is not Markdown")
        elif anchor and anchor not in anchors(dest):
            problems.append(f"{where}: {dest} has no heading #{anchor}")
    return problems


def section(page, title):
    m = re.search(r"^(#{2,}) " + re.escape(title) + r"\n(.*?)(?=^#{2,6} |\Z)",
                  read(page), re.M | re.S)
    assert m, f"{page} has no section '{title}'"
    return m.group(2)


# -- links ----------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_every_link_between_the_pages_points_to_a_file_and_a_heading(page):
    assert broken_links(page) == []


def test_a_link_to_a_missing_page_or_heading_is_found(tmp_path, monkeypatch):
    """The checker itself: a planted page with one good and three bad links."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(
        "# A\n\n## The ?auto format: `K2Notify[0]` and *more*\n\n"
        "[good](#the-auto-format-k2notify0-and-more) [also](b.md#b-1)\n"
        "[no file](c.md) [no heading](b.md#nowhere)\n[no anchor here](#the-auto)\n"
        "```\n[in a fence](d.md)\n```\n`[in code](e.md)` <!-- [commented](f.md) -->\n"
        "[pending](mysql.md)\n")
    (docs / "b.md").write_text("# B\n\n## B\n\n```sh\n# not a heading\n```\n")
    import test_docs
    monkeypatch.setattr(test_docs, "TOP", str(tmp_path))
    assert broken_links("docs/a.md") == [
        "docs/a.md:6: (c.md): no file docs/c.md",
        "docs/a.md:6: (b.md#nowhere): docs/b.md has no heading #nowhere",
        "docs/a.md:7: (#the-auto): docs/a.md has no heading #the-auto",
    ]
    assert "not-a-heading" not in anchors("docs/b.md")


def test_github_anchors_of_the_manual_s_own_headings():
    assert github_anchor("server-status: the K2 notifications section") == \
        "server-status-the-k2-notifications-section"
    assert github_anchor("Trying an endpoint: tools/k2send") == "trying-an-endpoint-toolsk2send"
    assert github_anchor("Without the package (any Linux with apxs)") == \
        "without-the-package-any-linux-with-apxs"
    assert github_anchor("FIELDs in a k2connect location") == "fields-in-a-k2connect-location"
    assert github_anchor("Mutex k2notify-db") == "mutex-k2notify-db"
    assert github_anchor("`01` means *recorded*") == "01-means-recorded"


def test_every_page_of_the_manual_is_reachable_from_the_readme():
    reached, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for target, _ in links(page):
            path = target.partition("#")[0]
            if not path or re.match(r"[a-z][a-z0-9+.-]*:", path, re.I):
                continue
            dest = os.path.normpath(os.path.join(os.path.dirname(page), path))
            if dest.endswith(".md") and dest not in reached and dest in PAGES:
                reached.add(dest)
                todo.append(dest)
    assert sorted(set(PAGES) - reached) == []


# -- the directive reference ----------------------------------------------------

def module_directives():
    """The directives the module defines: the entries of its command tables
    named by a K2N_DIR_* symbol (a name in quotes there, such as SetHandler or
    DBDriver, is another module's directive the module also reads), and the
    two core directives the reference covers for it."""
    names = {}
    for header in glob.glob(os.path.join(TOP, "mod_k2notify", "*.h")):
        with open(header) as f:
            names.update(re.findall(r"#define (K2N_DIR_\w+)\s+\"(\w+)\"", f.read()))
    found = set()
    for source in glob.glob(os.path.join(TOP, "mod_k2notify", "mod_k2notify*.c")):
        with open(source) as f:
            for arg in re.findall(r"AP_INIT_\w+\(\s*(K2N_DIR_\w+)", f.read()):
                found.add(names[arg])
    assert "K2NotifyAccountQuery" in found, found
    return sorted(found) + ["SetHandler k2notify", "Mutex k2notify-db"]


@pytest.mark.parametrize("directive", module_directives())
def test_every_directive_has_its_entry_in_httpd_s_fields(directive):
    text = section("docs/directives.md", directive)
    fields = re.findall(r"^- \*\*(\w+):\*\* (.+)$", text, re.M)
    assert [name for name, _ in fields] == FIELDS, fields
    value = dict(fields)
    assert COMPATIBILITY.match(value["Compatibility"]), value["Compatibility"]
    if directive.startswith("K2Notify"):
        assert value["Syntax"].startswith(f"`{directive}"), value["Syntax"]
        assert value["Module"] == "mod_k2notify"
    assert f"[{directive}](#{github_anchor(directive)})" in read("docs/directives.md"), \
        "the table at the top of docs/directives.md lacks it"


# -- the install lines -----------------------------------------------------------

def sh_blocks(text):
    return re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)


def test_readme_install_lines_are_the_manual_s_that_make_test_system_runs():
    readme = sh_blocks(section(README, "Install on Debian"))
    manual = sh_blocks(section("docs/install.md", "Install on a Debian server"))
    assert len(manual) == 2 and readme == manual


# -- the audit LogFormat -----------------------------------------------------------

@pytest.mark.parametrize("page,nickname", [("docs/operations.md", "k2notify"),
                                           ("docs/k2connect.md", "k2connect")])
def test_the_manual_s_audit_logformat_is_the_samples(page, nickname):
    """The LogFormat the manual tells users to copy is the one every sample
    uses (and fail2ban's filter and tools that read the log are written for)."""
    pattern = re.compile(r"^\s*(LogFormat .* " + nickname + r")$", re.M)
    samples = set()
    for conf in glob.glob(os.path.join(TOP, "conf-samples", "*.conf")):
        with open(conf) as f:
            samples.update(m.strip() for m in pattern.findall(f.read()))
    shown = {m.strip() for m in pattern.findall(read(page))}
    assert len(samples) == 1 and shown == samples, (shown, samples)
