"""Every document the code, the README and the docs cite exists in the repository; the README is a
landing page that links every guide page, and every section of the old README lives on in the guide."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("dpap_neuro/**/*.py"), *ROOT.glob("hw_export/**/*.py"), *ROOT.glob("benchmarks/*.py"),
                  *ROOT.glob("tools/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("docs/*.md"),
                  *ROOT.glob("notebooks/*.ipynb"),
                  ROOT / "README.md", ROOT / "Makefile"])
SOURCES.remove(Path(__file__).resolve())  # its own patterns are examples, not citations
# A path to a repository file: docs/x.md, benchmarks/results/y.png, hw_export/z.py ...
CITED_PATH = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|notebooks|tools|hw_export|dpap_neuro|tests)/[\w./-]*\w)(?![\w<*{])")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)\)")
SECTION = re.compile(r"docs/DESIGN\.md, section (\d+)")

README = ROOT / "README.md"
README_MAX_LINES = 250
# Every `## ` section of the README before it became a landing page (issue 24), and the page it lives in now.
MOVED_SECTIONS = {
    "Quick start": "README.md",
    "What the demo does": "docs/demo.md",
    "Command line": "docs/cli.md",
    "Artifacts to take away": "docs/artifacts.md",
    "Built-in data": "docs/datasets.md",
    "Neuromorphic datasets through tonic": "docs/datasets.md",
    "Your own Norse model": "docs/own_model.md",
    "Model and training": "docs/pruning.md",
    "Pruning": "docs/pruning.md",
    "Training on GPUs, several processes, and resuming": "docs/scaling.md",
    "Lava simulation": "docs/lava.md",
    "Counting, energy and the report": "docs/energy.md",
    "report.json": "docs/report_json.md",
    "Layout": "README.md",
}
# Pages the README need not link: the developers' document, and the format specifications (from docs/artifacts.md).
NOT_FROM_README = {"DESIGN.md", "netx_hdf5.md", "sparsenet_hdf5.md"}
GUIDE = sorted(p for p in ROOT.glob("docs/*.md") if p.name != "DESIGN.md")


def cited(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = set(CITED_PATH.findall(text))
    if path.suffix == ".md":
        found |= {str((path.parent / link).resolve().relative_to(ROOT)) for link in MARKDOWN_LINK.findall(text)
                  if "://" not in link}
    return {f for f in found if "*" not in f and "<" not in f}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_files_exist(path):
    missing = sorted(f for f in cited(path) if not (ROOT / f).exists() and not (ROOT / f).with_suffix(".py").exists())
    assert not missing, f"{path.relative_to(ROOT)} cites files the repository lacks: {missing}"


def test_cited_design_sections_exist():
    headings = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "DESIGN.md").read_text(), flags=re.M))
    for path in SOURCES:
        for number in SECTION.findall(path.read_text(encoding="utf-8")):
            assert number in headings, f"{path.relative_to(ROOT)} cites docs/DESIGN.md section {number}"


def test_code_cites_the_design_document_by_its_path():
    for path in SOURCES:
        if path.suffix == ".py":
            bare = re.findall(r"(?<!docs/)DESIGN\.md", path.read_text(encoding="utf-8"))
            assert not bare, f"{path.relative_to(ROOT)} cites DESIGN.md without its folder (docs/DESIGN.md)"


def headings(path: Path) -> set[str]:
    """The text of every Markdown heading of ``path``, fenced code left out."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {heading.strip() for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def links(path: Path) -> set[Path]:
    """The repository files ``path`` links to (Markdown links, resolved from its folder)."""
    return {(path.parent / link).resolve() for link in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8"))
            if "://" not in link}


def test_the_readme_is_a_landing_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to a page under docs/"


@pytest.mark.parametrize("page", [p for p in GUIDE if p.name not in NOT_FROM_README], ids=lambda p: p.name)
def test_the_readme_links_every_guide_page(page):
    assert page.resolve() in links(README), f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", GUIDE, ids=lambda p: p.name)
def test_every_guide_page_links_back_to_the_readme(page):
    assert README.resolve() in links(page), f"docs/{page.name} does not link back to README.md"


@pytest.mark.parametrize("section", MOVED_SECTIONS, ids=str)
def test_no_section_of_the_old_readme_is_lost(section):
    page = MOVED_SECTIONS[section]
    assert section in headings(ROOT / page), f"the README's old section {section!r} is no heading of {page}"
