"""README.md and docs/*.md say what the code does.

- The README stays short (at most 160 lines) and keeps its two set-up commands, word for word
  (CI runs them).
- Every ```python block in README.md or docs/*.md preceded by the comment
  ``<!-- runs on a CPU in the tests -->`` runs as written, in a temporary folder, on the CPU;
  the library example (docs/library.md) prints two union-average pw-JS values.
- Every repository file or folder the pages cite exists (``path`` or ``path:line``, the line
  within the file), every relative link leads to a file (and a heading, for ``#anchor``), and
  every dotted name of ours (``mile_cl.x.y``, ``protocols.x``, ``strategies.x``) imports.
"""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 160

SETUP_COMMANDS = (
    'pip install -e ".[test]" && '
    "python protocols/iirc_cifar.py --download --strategy er --mile both\n"
    "ruff check . && python -m pytest -q\n"
)
RUNNABLE = "<!-- runs on a CPU in the tests -->"
RUNNABLE_BLOCK = re.compile(re.escape(RUNNABLE) + r"[ \t]*\n```python\n(.*?)^```", re.S | re.M)
LIBRARY_EXAMPLE = 'union_avg["pw_jaccard"]'   # the block whose output is checked, below

# A path into the repository: it starts with one of its top-level folders (or is a top-level
# file), not preceded by a character that would make it part of a longer path or word.
REPO_TOPS = ("mile_cl", "protocols", "strategies", "bench", "tests", "docs", ".ci")
REPO_FILES = ("README.md", "pyproject.toml", "setup.cfg")
PATH_REF = re.compile(r"(?<![\w./<>-])((?:%s)/(?:[\w./-]*[\w/])?|%s)(?::(\d+))?"
                      % ("|".join(map(re.escape, REPO_TOPS)), "|".join(map(re.escape, REPO_FILES))))
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOTTED = re.compile(r"(?<![\w./-])((?:mile_cl|protocols|strategies)(?:\.[A-Za-z_]\w*)+)")


def _runnable_blocks():
    for page in PAGES:
        text = page.read_text()
        for match in RUNNABLE_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(1)) + 1
            name = f"{page.relative_to(ROOT)}:{line}"
            yield pytest.param(page, line, match.group(1), id=name)


BLOCKS = list(_runnable_blocks())


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/"


def test_readme_keeps_the_two_setup_commands():
    assert f"```bash\n{SETUP_COMMANDS}```" in README.read_text()


def test_there_are_runnable_blocks_and_the_library_example_is_one():
    pages = {page.name for page, _, _ in (b.values for b in BLOCKS)}
    assert "library.md" in pages
    assert sum(LIBRARY_EXAMPLE in code for _, _, code in (b.values for b in BLOCKS)) == 1


@pytest.mark.parametrize(("page", "line", "code"), BLOCKS)
def test_runnable_block(page, line, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    # blank lines before the code, so that a traceback names the page's own line numbers
    exec(compile("\n" * (line - 1) + code, str(page), "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    if LIBRARY_EXAMPLE in code:
        values = eval(out.strip().splitlines()[-1])
        assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values)


def _github_anchor(heading: str) -> str:
    """GitHub's id for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def _prose(text: str) -> str:
    """The page without its runnable blocks' code (they name files they create)."""
    return RUNNABLE_BLOCK.sub("", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_paths_exist(page):
    missing = []
    for match in PATH_REF.finditer(_prose(page.read_text())):
        path, line = match.group(1), match.group(2)
        target = ROOT / path
        if not target.exists():
            missing.append(path)
        elif line is not None:
            n_lines = len(target.read_text().splitlines())
            if not 1 <= int(line) <= n_lines:
                missing.append(f"{path}:{line} (the file has {n_lines} lines)")
    assert not missing, f"{page.name} cites what is not in the repository: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_somewhere(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue                          # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name} has broken links: {broken}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dotted_names_import(page):
    names = sorted(set(DOTTED.findall(page.read_text())))
    unknown = [name for name in names if not _resolves(name)]
    assert not unknown, f"{page.name} names what does not exist: {unknown}"


# "`path:line` (`name`)": the map's pointers name what they point at.
NAMED_LINE = re.compile(r"`([\w/.-]+\.py):(\d+)`\s*\(`([\w.]+)`")


def test_readme_map_lines_point_at_what_they_name():
    text = README.read_text()
    pointers = NAMED_LINE.findall(text)
    assert len(pointers) >= 8        # the MILe schedule, pseudo-labels, pw-JS, the run loop...
    wrong = []
    for path, line, name in pointers:
        lines = (ROOT / path).read_text().splitlines()
        near = lines[int(line) - 1]
        if name.split(".")[-1] not in near:
            wrong.append(f"{path}:{line} does not show {name}")
    assert wrong == []
