"""Progress on disk: Leitner boxes, atomic writes, restarts, and corrupt files kept aside."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quizzes import engine, progress
from quizzes.progress import Progress, ProgressFileWarning

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_path_comes_from_the_environment_variable(progress_file):
    assert progress.progress_path() == progress_file
    assert Progress.load().path == progress_file


def test_default_path_is_in_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("QUIZ_PROGRESS_FILE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert progress.progress_path() == tmp_path / ".realtime-genai-labs" / "quiz-progress.json"


def test_explicit_path_wins_over_the_environment(tmp_path):
    assert progress.progress_path(tmp_path / "mine.json") == tmp_path / "mine.json"


def test_missing_file_starts_empty_without_writing(progress_file):
    record = Progress.load()
    assert record.due_questions(NOW) == []
    assert not progress_file.exists()


def test_a_hit_moves_a_question_up_one_box_and_a_miss_back_to_box_one():
    record = Progress.load()
    assert record.record_answer("q-1", True, NOW) == 2
    assert record.record_answer("q-1", True, NOW) == 3
    assert record.record_answer("q-1", False, NOW) == 1
    for _ in range(10):
        box = record.record_answer("q-1", True, NOW)
    assert box == 5, "box 5 is the top"
    entry = record.entry("q-1")
    assert (entry["seen"], entry["correct"], entry["last_correct"]) == (13, 12, True)


@pytest.mark.parametrize(("hits", "days"), [(0, 0), (1, 1), (2, 3), (3, 7), (4, 14), (9, 14)])
def test_box_n_is_due_after_its_interval(hits, days):
    record = Progress.load()
    record.record_answer("q-1", False, NOW)  # start in box 1
    for _ in range(hits):
        record.record_answer("q-1", True, NOW)
    due_at = NOW + timedelta(days=days)
    assert record.due_questions(due_at) == ["q-1"]
    if days:
        assert record.due_questions(due_at - timedelta(seconds=1)) == []


def test_missed_questions_come_before_other_due_ones():
    record = Progress.load()
    record.record_answer("right-long-ago", True, NOW - timedelta(days=30))
    record.record_answer("missed", False, NOW)
    record.record_answer("right-yesterday", True, NOW - timedelta(days=1))
    record.record_answer("not-due", True, NOW)
    assert record.due_questions(NOW) == ["missed", "right-long-ago", "right-yesterday"]


def test_due_questions_adds_unseen_bank_questions_after_due_ones_and_caps_at_n():
    record = Progress.load()
    record.record_answer("b", False, NOW)
    record.record_answer("c", True, NOW)  # box 2: not due today
    queue = record.due_questions(NOW, question_ids=["a", "b", "c", "d", "gone"], seed=1)
    assert queue[0] == "b"
    assert sorted(queue[1:]) == ["a", "d", "gone"]
    assert queue == record.due_questions(NOW, question_ids=["a", "b", "c", "d", "gone"], seed=1)
    assert record.due_questions(NOW, question_ids=["a", "b", "d"], n=2, seed=1)[0] == "b"
    assert len(record.due_questions(NOW, question_ids=["a", "b", "d"], n=2)) == 2


def test_progress_survives_a_restart_in_new_objects(progress_file):
    Progress.load().record_answer("q-1", True, NOW)
    Progress.load().record_answer("q-2", False, NOW)
    again = Progress.load()
    assert (again.box("q-1"), again.box("q-2"), again.box("q-3")) == (2, 1, None)


def test_progress_survives_a_restart_in_a_new_process(progress_file, repo_root):
    Progress.load().record_answer("q-1", True, NOW)
    code = "from quizzes.progress import Progress; print(Progress.load().box('q-1'))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={"QUIZ_PROGRESS_FILE": str(progress_file), "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "2"


def test_two_writers_do_not_overwrite_each_other(progress_file):
    notebook, terminal = Progress.load(), Progress.load()
    notebook.record_answer("q-1", True, NOW)
    terminal.record_answer("q-2", True, NOW)  # loaded before q-1 was written
    assert {"q-1", "q-2"} <= set(Progress.load().data["questions"])


def test_session_summaries_are_kept(fixture_bank):
    session = engine.practice_session(fixture_bank, n=2, seed=1)
    session.submit(session.current.correct)
    session.next()
    session.submit(session.current.correct)
    Progress.load().record_session(session.finish(), NOW)
    (summary,) = Progress.load().sessions
    assert summary["mode"] == "practice"
    assert (summary["correct"], summary["total"], summary["percent"]) == (2, 2, 100)
    assert sum(total for _, total in summary["by_rule"].values()) >= 2


def test_writes_leave_no_temporary_files(progress_file):
    Progress.load().record_answer("q-1", True, NOW)
    assert [p.name for p in progress_file.parent.iterdir()] == [progress_file.name]
    assert json.loads(progress_file.read_text())["questions"]["q-1"]["box"] == 2


def test_a_failed_write_keeps_the_previous_file_whole(progress_file, monkeypatch):
    Progress.load().record_answer("q-1", True, NOW)
    before = progress_file.read_text()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(progress.os, "replace", disk_full)
    with pytest.raises(OSError):
        Progress.load().record_answer("q-2", True, NOW)
    assert progress_file.read_text() == before
    assert [p.name for p in progress_file.parent.iterdir()] == [progress_file.name]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        '{"version": 99, "questions": {}, "sessions": []}',
        '{"version": 1, "questions": {"q": {"box": 9}}, "sessions": []}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_a_corrupt_file_is_kept_aside_with_a_warning_and_a_fresh_one_started(
    progress_file, content
):
    progress_file.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        progress_file.write_bytes(content)
    else:
        progress_file.write_text(content)
    original = progress_file.read_bytes()

    with pytest.warns(ProgressFileWarning, match="kept as .*quiz-progress.json.corrupt-"):
        record = Progress.load()
    (aside,) = progress_file.parent.glob("quiz-progress.json.corrupt-*")
    assert aside.read_bytes() == original, "the learner's old data is kept, byte for byte"
    assert not progress_file.exists()

    record.record_answer("q-1", True, NOW)
    assert Progress.load().box("q-1") == 2
    assert aside.read_bytes() == original


def test_a_second_corrupt_file_in_the_same_process_still_warns(progress_file):
    progress_file.parent.mkdir(parents=True)
    for _ in range(2):
        progress_file.write_text("{broken")
        with pytest.warns(ProgressFileWarning):
            Progress.load()
    assert len(list(Path(progress_file.parent).glob("*.corrupt-*"))) == 2
