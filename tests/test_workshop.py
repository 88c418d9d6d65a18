"""The workshop kit: the facilitator guide covers the course, and the dev container runs it.

Docker cannot run in the test environment, so the dev container is checked as a document: valid
JSON, a Python 3.11 image, `make lab` on the port it forwards.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "workshop.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))  # 06_..., 06b_...

pytestmark = pytest.mark.timeout(30)


def test_the_guide_has_a_section_per_notebook_with_message_talk_track_and_sticking_points():
    guide = GUIDE.read_text(encoding="utf-8")
    sections = re.split(r"^### ", guide, flags=re.M)[1:]
    numbers = [section.split(" ")[0] for section in sections]
    assert numbers == [path.name.split("_")[0] for path in NOTEBOOKS], (
        "one section per notebook, in order"
    )
    for section in sections:
        assert "**Key message:**" in section and "**Talk track:**" in section, section[:40]
        assert "**Stuck" in section, section[:40]
    for lab, where in (
        ("01", "the data line"),
        ("04", "the ASGI receive wrapper"),
        ("07", "the cancel"),
    ):
        section = next(s for s in sections if s.startswith(lab))
        assert f"**Stuck: {where}.**" in section


def test_the_guide_has_an_agenda_with_breaks_a_cut_list_seats_and_the_catch_up():
    guide = GUIDE.read_text(encoding="utf-8")
    for heading in (
        "## One-day agenda",
        "## Half-day version",
        "## Setting up 20 seats",
        "## Catch-up",
    ):
        assert heading in guide
    assert guide.count("**Break**") >= 2 and "**Lunch**" in guide
    for seat in ("Linux", "macOS", "WSL2", "Dev container"):
        assert seat in guide
    assert "make catch-up UPTO=04" in guide and "make handout" in guide
    for path in re.findall(
        r"`((?:notebooks|docs|quizzes|course|tools|\.devcontainer)/[^`*]+)`", guide
    ):
        assert (ROOT / path).exists(), f"the guide names {path}, which does not exist"


def test_the_dev_container_is_python_3_11_and_runs_make_lab_on_the_port_it_forwards():
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert re.search(r"python:\S*3\.11", config["image"])
    command = shlex.split(config["postAttachCommand"])
    assert command[:2] == ["make", "lab"]
    port = int(re.search(r"--port=(\d+)", config["postAttachCommand"])[1])
    assert port in config["forwardPorts"]
    assert "--no-browser" in config["postAttachCommand"], "a container has no browser to open"
    assert re.search(r"^lab: setup$", (ROOT / "Makefile").read_text(), re.M)
