"""Every shell command the guide shows (README.md, docs/*.md) runs on a checkout, or says why it cannot.

Commands are the lines of ```bash, ```sh, ```shell and ```console blocks (in a
console block, and in any other block, the lines starting with ``$ ``; the
lines after such a line are its shown output, which must be what it prints).
An unlabelled block that holds commands is refused: label it ```bash (run
here) or ```text (a synopsis, not run). The block's commands run in order, in
one temporary checkout (the repository's files linked in, ``runs/`` and
``data/`` its own), with the running venv's ``bin`` first on PATH.

Right before every block with commands stands a marker, an HTML comment
(invisible on the rendered page), with one directive per command, in order::

    <!-- guide-test: run --epochs 1 --quiet -->          one command
    <!-- guide-test:
    run ARGS='--epochs 1'                               (make: variables; others: options), appended
    skip (needs your dataset)                           never run; the reason is required
    slow --epochs 1                                     run, in `pytest -m slow` only (the whole block)
    -->

So a command added to a page without a directive fails
``test_every_guide_command_has_a_directive``. Placeholders: ``DIR`` after
``--data-dir`` is a folder holding the tonic fixtures of every dataset
(``dpap_neuro/data/fixtures.py``); any other ``DIR`` is a fresh folder under
``runs/``. ``make`` runs with ``-o venv``: the running venv is the project's,
never reinstalled by a test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import needs_lava

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
MARKER_START = "<!-- guide-test:"
COMMAND_LIKE = re.compile(r"^\s*(dpap|make|python3?|torchrun|pip|\.venv/bin/\S+)\s")
DIRECTIVE = re.compile(r"^(?:(?P<kind>run|slow)(?:\s+(?P<args>.+))?|skip \((?P<reason>.+)\))$")


@dataclass
class Command:
    text: str
    output: list[str] | None = None  # the lines a ``$ `` command is shown printing
    kind: str = ""  # run, slow or skip
    args: str = ""  # appended when run
    reason: str = ""  # why it is skipped


@dataclass
class Block:
    where: str  # page:line of the opening fence
    commands: list[Command] = field(default_factory=list)

    @property
    def slow(self) -> bool:
        return any(c.kind == "slow" for c in self.commands)

    @property
    def runs(self) -> bool:
        return any(c.kind in ("run", "slow") for c in self.commands)


def block_commands(lang: str, lines: list[str]) -> list[Command]:
    """The commands of one fenced block (``$ `` lines with their shown output, or every line of a shell block)."""
    if any(line.startswith("$ ") for line in lines):
        commands: list[Command] = []
        for line in lines:
            if line.startswith("$ "):
                commands.append(Command(line[2:].strip(), output=[]))
            elif commands and line.strip():
                commands[-1].output.append(line.rstrip())
        return commands
    if lang not in SHELL:
        return []
    joined = "\n".join(lines).replace("\\\n", " ")
    return [Command(line.strip()) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def apply_marker(block: Block, marker: str | None, problems: list[str]) -> None:
    if marker is None:
        problems.append(f"{block.where}: commands without a `{MARKER_START} ... -->` marker right before the block")
        return
    directives = [line.strip() for line in marker.splitlines() if line.strip()]
    if len(directives) != len(block.commands):
        problems.append(f"{block.where}: {len(block.commands)} commands, {len(directives)} guide-test directives")
        return
    for command, directive in zip(block.commands, directives):
        match = DIRECTIVE.match(directive)
        if match is None:
            problems.append(f"{block.where}: {directive!r} is not `run [ARGS]`, `slow [ARGS]` or `skip (reason)`")
            continue
        command.kind = match["kind"] or "skip"
        command.args, command.reason = match["args"] or "", match["reason"] or ""


def parse_page(name: str, text: str) -> tuple[list[Block], list[str]]:
    """The blocks with commands of one page, each with its directives, and what is wrong (one line each)."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    marker, marker_line, i = None, 0, 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(MARKER_START):
            end = next(j for j in range(i, len(lines)) if "-->" in lines[j])
            body = "\n".join(lines[i:end + 1]).strip()
            marker, marker_line, i = body[len(MARKER_START):-len("-->")], i + 1, end + 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if line.strip() and marker is not None:
                problems.append(f"{name}:{marker_line}: a guide-test marker that no code block follows")
                marker = None
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
        body, block = lines[i + 1:end], Block(f"{name}:{i + 1}")
        block.commands = block_commands(fence[1], body)
        if block.commands:
            apply_marker(block, marker, problems)
            blocks.append(block)
        elif marker is not None:
            problems.append(f"{name}:{marker_line}: a guide-test marker before a block with no commands")
        elif fence[1] == "" and any(COMMAND_LIKE.match(b) for b in body):
            problems.append(f"{block.where}: an unlabelled block of commands: label it ```bash (run by "
                            "tests/test_guide_commands.py) or ```text (a synopsis)")
        marker, i = None, end + 1
    return blocks, problems


def guide() -> tuple[list[Block], list[str]]:
    blocks, problems = [], []
    for page in PAGES:
        found, wrong = parse_page(str(page.relative_to(ROOT)), page.read_text(encoding="utf-8"))
        blocks += found
        problems += wrong
    return blocks, problems


BLOCKS, PROBLEMS = guide()


def test_every_guide_command_has_a_directive():
    assert not PROBLEMS, "\n".join(PROBLEMS)
    commands = [c for b in BLOCKS for c in b.commands]
    assert len(commands) >= 10 and any(c.kind == "run" for c in commands)
    assert all(c.reason for c in commands if c.kind == "skip")


@pytest.mark.parametrize("page, expected", [
    ("```bash\ndpap run --out x\n```\n", "without a `<!-- guide-test: ... -->` marker"),
    ("<!-- guide-test: skip -->\n```bash\ndpap run --out x\n```\n", "is not `run [ARGS]`"),
    ("<!-- guide-test: run -->\n```bash\ndpap run --out x\nmake demo\n```\n", "2 commands, 1 guide-test directives"),
    ("```\ndpap run --out x\n```\n", "an unlabelled block of commands"),
    ("```\n$ dpap run --out x\ndpap: error: no\n```\n", "without a `<!-- guide-test: ... -->` marker"),
    ("<!-- guide-test: run -->\n\nSome prose.\n```python\nx = 1\n```\n", "a guide-test marker that no code block"),
], ids=["no marker", "skip without a reason", "too few directives", "unlabelled", "console without marker",
        "marker before prose"])
def test_a_command_without_a_proper_directive_is_found(page, expected):
    _, problems = parse_page("page.md", page)
    assert len(problems) == 1 and expected in problems[0], problems


def test_directives_and_shown_output_are_read():
    blocks, problems = parse_page("page.md", (
        "<!-- guide-test:\nrun --epochs 1\nskip (needs your files)\n-->\n\n"
        "```console\n$ dpap run --out x  # a comment\n  done\n$ dpap simulate a.h5\n```\n"))
    assert problems == [] and len(blocks) == 1 and blocks[0].where == "page.md:6"
    first, second = blocks[0].commands
    assert (first.text, first.output, first.kind, first.args) == ("dpap run --out x  # a comment", ["  done"], "run",
                                                                 "--epochs 1")
    assert (second.kind, second.reason, second.output) == ("skip", "needs your files", [])


def command_line(command: Command, index: int, data_dir: Path) -> str:
    """What is run for ``command``: its placeholders filled, ``make -o venv``, and its directive's arguments."""
    tokens = shlex.split(command.text, comments=True)
    tokens = [str(data_dir) if t == "DIR" and i and tokens[i - 1] == "--data-dir" else
              f"runs/guide-{index}" if t == "DIR" else t for i, t in enumerate(tokens)]
    if tokens[0] == "make":
        tokens.insert(1, "-o venv")
    return " ".join(shlex.quote(t) if t != "-o venv" else t for t in tokens) + " " + command.args


def checkout(tmp_path: Path) -> Path:
    """A checkout of the repository to run commands in: its files linked, its own runs/ and data/."""
    root = tmp_path / "checkout"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".venv", "runs", "data", ".pytest_cache"):
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.executable).parents[1])  # the venv running these tests
    return root


def tonic_fixtures(folder: Path) -> Path:
    from dpap_neuro.data.fixtures import write_dvs_gesture, write_nmnist, write_poker_dvs, write_shd

    for write in (write_nmnist, write_shd, write_dvs_gesture, write_poker_dvs):
        write(folder)
    return folder


def run_block(block: Block, tmp_path: Path) -> None:
    root, data = checkout(tmp_path), tmp_path / "tonic"
    if any(re.search(r"--data-dir DIR\b", c.text) for c in block.commands if c.kind != "skip"):
        tonic_fixtures(data)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DPAP_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    for index, command in enumerate(block.commands):
        if command.kind == "skip":
            continue
        line = command_line(command, index, data)
        done = subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, text=True, timeout=1800)
        said = (done.stdout + done.stderr).strip()
        if command.output:  # shown with its output: it prints exactly that, and fails only where that says so
            shown = [o.strip() for o in command.output]
            assert [s.strip() for s in said.splitlines()] == shown, f"{block.where}: `{line}` printed\n{said}"
            assert done.returncode == (2 if command.output[-1].startswith("dpap: error:") else 0), said
        else:
            assert done.returncode == 0, f"{block.where}: `{line}` ended with {done.returncode}:\n{said[-4000:]}"


@needs_lava
@pytest.mark.parametrize("block", [pytest.param(b, id=b.where, marks=[pytest.mark.slow] if b.slow else [])
                                   for b in BLOCKS if b.runs])
def test_guide_commands_run(block, tmp_path):
    if not (Path(sys.executable).parent / "dpap").is_file():
        pytest.skip(f"`dpap` is not installed beside {sys.executable}")
    run_block(block, tmp_path)
