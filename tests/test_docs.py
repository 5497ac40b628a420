"""The README is the front door and `docs/` holds the rest: every relative link of README.md and
docs/*.md resolves (the file exists; a `#anchor` is the slug of a heading of the target page, by
GitHub's rules), the README stays short, and every page of `docs/` is reachable from it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans removed."""
    lines, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (letters, digits, `_`,
    `-` and spaces kept), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    in_code = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The targets of the page's links and images that are not URLs."""
    targets = [m.group(1) for line in _prose_lines(page.read_text()) for m in LINK.finditer(line)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_the_slug_rules_are_githubs():
    assert github_slug("SSEP + SED: separation, fine-tuning, ensemble") == "ssep--sed-separation-fine-tuning-ensemble"
    assert github_slug("The demo's table, beside the 2021 recipe") == "the-demos-table-beside-the-2021-recipe"
    assert github_slug("The configuration, key by key") == "the-configuration-key-by-key"
    assert github_slug("`net.type`: the registry") == "nettype-the-registry"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved}")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_readme_is_a_front_door():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail into docs/"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    orphans = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not orphans, f"link these pages from README.md: {orphans}"


def test_every_image_of_docs_is_shown_on_a_page():
    shown = {(page.parent / t.partition("#")[0]).resolve() for page in PAGES for t in relative_links(page)}
    unused = [p.name for p in DOCS.glob("*.png") if p.resolve() not in shown]
    assert not unused, unused


# ------------------------------------------------------------------ the commands of the pages
def _shell_commands(page: Path) -> list[str]:
    """Each command of the page's bash blocks, indented code lines and inline code spans that
    start with `python ` or `bash `, continuation lines joined and pipes and `&&` split:
    `ffmpeg ... | python -m ...` gives both commands."""
    text = page.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    blocks += re.findall(r"(?:^|\n\n)((?: {4}.*\n?)+)", "\n".join(_prose_lines(text)))
    prose = " ".join(re.sub(r"```.*?```", "", text, flags=re.S).split())  # a span may cross lines
    blocks += [span for span in re.findall(r"`([^`]+)`", prose) if re.match(r"(python3?|bash) ", span)]
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            commands += [part.strip() for part in re.split(r"\s(?:\||&&)\s", line) if part.strip()]
    return commands


def _sources_of(words: list[str]) -> tuple[Path, list[Path]] | None:
    """The entry point a `python ...` or `bash ...` command runs, and the files that define its
    options (the script and the package modules it imports); None for other programs."""
    if words[0] not in ("python", "python3", "bash") or len(words) < 2:
        return None
    if words[1] == "-m":
        if not words[2].startswith("desed_task.") or "*" in words[2]:
            return None  # pytest, venv; `python -m desed_task.*` names them all
        package = REPO.joinpath(*words[2].split("."))
        entry = package / "__main__.py" if package.is_dir() else package.with_suffix(".py")
        return entry, sorted(package.rglob("*.py")) if package.is_dir() else [entry]
    entry = REPO / words[1]
    if not entry.is_file():
        return entry, []
    files = [entry]
    for module in re.findall(r"^from (desed_task[\w.]*) import", entry.read_text(), re.M):
        path = REPO.joinpath(*module.split("."))
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return entry, files


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_names_an_entry_point_and_options_that_exist(page):
    """A command of the pages runs a script or module that is there, with options it defines
    (the commands that need data or a trained model are run by test_usability and
    test_own_recordings; this catches a renamed script, module or flag everywhere else)."""
    wrong = []
    for command in _shell_commands(page):
        words = shlex.split(command, comments=True)
        sources = _sources_of(words) if words else None
        if sources is None:
            continue
        entry, files = sources
        if not entry.is_file():
            wrong.append(f"{command}: no {entry.relative_to(REPO)}")
            continue
        defined = "".join(path.read_text() for path in files if path.is_file())
        start = 3 if words[1] == "-m" else 2
        for word in words[start:]:
            flag = word.strip("[]").split("=")[0]
            if flag.startswith("--") and flag != "--help" and f'"{flag}"' not in defined and f"'{flag}'" not in defined and f" {flag})" not in defined:
                wrong.append(f"{command}: {flag} is not an option of {entry.relative_to(REPO)}")
    assert not wrong, wrong
