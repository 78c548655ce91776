"""report.html as a person sees it: rendered by a real headless browser (Debian's chromium)."""

import shutil
import subprocess

import pytest

from conftest import small_report
from dpap_neuro.reporting import write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_test_report_is_a_complete_one():
    from hw_export.report import RunReport, check

    check(small_report(), RunReport)


def test_report_files_and_figures_are_written(tmp_path):
    write_reports(small_report(), tmp_path)
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {
        "layers.png", "energy.png", "sparsity.png", "accuracy_energy.png"}
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4, "the page must carry its figures itself"
    assert "figures/layers.png" in (tmp_path / "report.md").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (CI installs Debian's chromium)")
def test_report_renders_in_a_real_browser_with_every_figure_loaded(tmp_path):
    write_reports(small_report(), tmp_path)
    profile = tmp_path / "chrome-profile"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
         (tmp_path / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "<table>" in dom and "dpap-neuro run report" in dom
    assert '<span id="figures-loaded">4/4</span>' in dom, "the browser did not decode every figure"


def test_markdown_and_html_carry_the_same_tables(tmp_path):
    import html
    import re

    report = small_report(("dense", "gmp"))
    report["models"]["gmp"] = {**report["models"]["gmp"], "synapses": 37, "pruner": "gmp | 0.9"}
    write_reports(report, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    md_rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    html_rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert len(md_rows) == len(html_rows) > 0
    first_md = [cell.strip() for cell in md_rows[0].strip("| ").split(" | ")]
    first_html = [html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", html_rows[0])]
    assert first_md == first_html
    # A cell holding "|" or "<" reaches the page as text, not as markup or a broken table.
    assert "gmp | 0.9" in html.unescape(page) and "<td>gmp | 0.9</td>" in page
    gmp_row = next(r for r in html_rows if "37" in r)
    assert re.findall(r"<td>(.*?)</td>", gmp_row)[8] == "37"
    gmp_md = next(line for line in markdown.splitlines() if "| 37 |" in line)
    assert "gmp \\| 0.9" in gmp_md and len(re.split(r"(?<!\\)\|", gmp_md)) == len(re.split(r"(?<!\\)\|", md_rows[0]))


def test_a_report_of_models_measured_without_labels_is_checked_and_rendered(tmp_path):
    from hw_export.report import RunReport, check

    report = small_report()
    for model in report["models"].values():
        del model["accuracy"]
        model["fixed"]["accuracy"] = None
    check(report, RunReport)
    write_reports(report, tmp_path)
    assert "accuracy_energy.png" not in {p.name for p in (tmp_path / "figures").iterdir()}
    assert "| dense | none | – | – |" in (tmp_path / "report.md").read_text()
