"""Every document the code, the README and the docs cite exists in the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("dpap_neuro/**/*.py"), *ROOT.glob("hw_export/**/*.py"), *ROOT.glob("benchmarks/*.py"),
                  *ROOT.glob("tests/**/*.py"), *ROOT.glob("docs/*.md"), *ROOT.glob("notebooks/*.ipynb"),
                  ROOT / "README.md", ROOT / "Makefile"])
SOURCES.remove(Path(__file__).resolve())  # its own patterns are examples, not citations
# A path to a repository file: docs/x.md, benchmarks/results/y.png, hw_export/z.py ...
CITED_PATH = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|notebooks|tools|hw_export|dpap_neuro|tests)/[\w./-]*\w)(?![\w<*{])")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)\)")
SECTION = re.compile(r"docs/DESIGN\.md, section (\d+)")


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
