"""report.html as a person sees it: rendered by a real headless browser (Debian's chromium)."""

import copy
import shutil
import subprocess

import pytest

from dpap_neuro.reporting import write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def small_report(models=("dense", "dpap")):
    """A complete report (it passes hw_export.report.check) of two small models."""
    breakdown = {"loihi": {"synops": 1.5e-6, "dense_macs": 0.0, "neuron_updates": 0.5e-6, "spikes": 0.0}}
    per_sample = {"spikes": 10.0, "input_spikes": 30.0, "synops": 500.0, "neuron_updates": 80.0,
                  "energy_j": {"loihi": 2e-6}, "energy_breakdown_j": breakdown}
    neurobench = {"connection_sparsity": 0.0, "activation_sparsity": 0.875, "memory_footprint_bytes": 888,
                  "synaptic_operations": {"effective_acs": 500.0, "effective_macs": 0.0, "dense": 400.0},
                  "neuron_updates": 80.0}
    agreement = {"spikes": 1.0, "predictions": 1.0, "samples_identical": 1.0}
    model = {
        "pruner": "none", "accuracy": {"norse": 0.9, "lava": 0.9}, "agreement": agreement,
        "fixed": {"accuracy": 0.89, "agreement": {**agreement, "predictions": 0.99}, "per_sample": per_sample,
                  "neurobench": neurobench},
        "synapses": 100, "neurons": 20, "per_sample": per_sample, "neurobench": neurobench,
        "layers": [{"name": "fc1", "neurons": 10, "original_neurons": 10, "synapses": 80, "original_synapses": 80,
                    "spikes": 10.0, "synops": 400.0, "neuron_updates": 40.0},
                   {"name": "readout", "neurons": 10, "original_neurons": 10, "synapses": 20,
                    "original_synapses": 20, "spikes": 0.0, "synops": 100.0, "neuron_updates": 40.0}],
        "training": {"layer_sparsity": [[0.0], [0.5], [0.6]]},
    }
    return {"schema_version": 2, "dataset": {"name": "digits", "n_train": 10, "n_test": 5, "timesteps": 4},
            "models": {m: copy.deepcopy(model) for m in models}, "energy_profile": "loihi",
            "energy_profiles": {"loihi": {"source": "Davies et al. 2018"}},
            "comparison": {"baseline": models[0], "pruned": models[-1],
                           "ratios": {k: 1.0 for k in ("synapses", "neurons", "spikes", "synops", "energy")}}}


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
