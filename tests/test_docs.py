"""Every Python example of the README, docs/*.md and the module docstrings runs as written.

A new user copies each block into a fresh interpreter, so each document's blocks run in
order in one fresh interpreter, in an empty directory. A block whose first line is a
comment naming a file (`# mypkg/scores.py`) is that file's content: it is written there
(and the directory is on the path), as the reader would save it. A block may be skipped
only when the line before it says why: `<!-- fragment: reason -->`.
"""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import scorerate

ROOT = Path(__file__).resolve().parents[1]
DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        if "```python" in p.read_text()]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_FILE = re.compile(r"^# ([\w/]+\.py)\s*$")
_FRAGMENT = re.compile(r"<!-- fragment: (.+?) -->")


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    """(code, reason it is a fragment or None) for each ```python block, in order."""
    out = []
    for m in _BLOCK.finditer(text):
        before = text[:m.start()].rstrip().splitlines()[-3:]
        frag = next((f.group(1) for line in before if (f := _FRAGMENT.search(line))), None)
        out.append((m.group(1), frag))
    return out


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    src = str(Path(scorerate.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src
    return env


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc: Path, tmp_path: Path) -> None:
    blocks = python_blocks(doc.read_text())
    script = []
    for code, frag in blocks:
        if frag is not None:
            assert frag.strip(), f"{doc.name}: a fragment must say why it is not run"
            continue
        first = code.splitlines()[0] if code.strip() else ""
        if m := _FILE.match(first):
            path = tmp_path / m.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
        else:
            script.append(code)
    assert script, f"{doc.name}: every Python block is a fragment or a file"
    env = _env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    res = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, f"{doc.name}: a Python block failed:\n{res.stderr[-3000:]}"


def test_fragment_marker_is_seen() -> None:
    text = "x\n<!-- fragment: needs a study -->\n\n```python\nimport nothing_here\n```\n"
    assert python_blocks(text) == [("import nothing_here\n", "needs a study")]


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(scorerate.__path__, "scorerate."):
        spec = info.module_finder.find_spec(info.name)
        if spec and spec.origin and spec.origin.endswith(".py"):
            if ">>>" in Path(spec.origin).read_text():
                names.append(info.name)
    if ">>>" in Path(scorerate.__file__).read_text():
        names.append("scorerate")
    return sorted(names)


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(module: str) -> None:
    code = (f"import doctest, importlib, sys\nm = importlib.import_module({module!r})\n"
            "r = doctest.testmod(m)\nsys.exit(1 if r.failed or not r.attempted else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
