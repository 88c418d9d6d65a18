"""Progress on disk: spaced review on FSRS, atomic writes, restarts, corrupt files kept aside, and
a file of the first format (Leitner boxes) converted with its history and a backup kept."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fsrs import State

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


def test_a_right_answer_puts_a_question_off_for_days_and_a_miss_makes_it_due_at_once():
    record = Progress.load()
    assert record.record_answer("q-1", True, NOW) > NOW + timedelta(days=1)
    assert record.record_answer("q-2", False, NOW) == NOW
    assert record.due_questions(NOW) == ["q-2"]
    entry = record.entry("q-1")
    assert (entry["seen"], entry["correct"], entry["last_correct"]) == (1, 1, True)
    assert record.card("q-1").state == State.Review


def test_each_right_answer_at_its_due_time_waits_longer_than_the_last():
    record = Progress.load()
    now, gaps = NOW, []
    for _ in range(5):
        due = record.record_answer("q-1", True, now)
        gaps.append(due - now)
        assert record.due_questions(due - timedelta(seconds=1)) == []
        assert record.due_questions(due) == ["q-1"]
        now = due
    assert gaps == sorted(gaps) and len(set(gaps)) == len(gaps), gaps


def test_a_miss_after_a_streak_is_due_at_once_and_then_comes_back_sooner():
    record = Progress.load()
    now = NOW
    for _ in range(4):
        now = record.record_answer("q-1", True, now)
    before_the_miss = record.record_answer("q-1", True, now) - now
    assert record.record_answer("q-1", False, now + before_the_miss) == now + before_the_miss
    now += before_the_miss
    after_the_miss = record.record_answer("q-1", True, now) - now
    assert after_the_miss < before_the_miss
    assert record.entry("q-1")["seen"] == 7


def test_missed_questions_come_before_other_due_ones():
    record = Progress.load()
    record.record_answer("right-long-ago", True, NOW - timedelta(days=30))
    record.record_answer("missed", False, NOW)
    record.record_answer("right-ten-days-ago", True, NOW - timedelta(days=10))
    record.record_answer("not-due", True, NOW)
    assert record.due_questions(NOW) == ["missed", "right-long-ago", "right-ten-days-ago"]


def test_a_short_quiz_rotates_through_the_questions():
    record = Progress.load()
    ids = [f"q-{n}" for n in range(12)]
    first = record.rotation(ids, 5, NOW, seed=1)
    for qid in first:
        record.record_answer(qid, True, NOW)
    second = record.rotation(ids, 5, NOW, seed=1)
    assert not set(first) & set(second), "answered questions wait; unseen ones come next"
    for qid in second:
        record.record_answer(qid, qid != second[0], NOW)
    third = record.rotation(ids, 5, NOW, seed=1)
    assert third[0] == second[0], "the one just missed comes first"
    assert set(third[1:3]) == set(ids) - set(first) - set(second), "then the two never asked"
    assert len(third) == 5, "then the ones due soonest fill the quiz"


def test_due_questions_adds_unseen_bank_questions_after_due_ones_and_caps_at_n():
    record = Progress.load()
    record.record_answer("b", False, NOW)
    record.record_answer("c", True, NOW)  # right: not due today
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
    assert (again.last_correct("q-1"), again.last_correct("q-2")) == (True, False)
    assert again.due("q-1") > NOW and again.due("q-2") == NOW and again.due("q-3") is None


def test_progress_survives_a_restart_in_a_new_process(progress_file, repo_root):
    Progress.load().record_answer("q-1", True, NOW)
    code = "from quizzes.progress import Progress; print(Progress.load().entry('q-1')['correct'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={"QUIZ_PROGRESS_FILE": str(progress_file), "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "1"


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
    assert json.loads(progress_file.read_text())["questions"]["q-1"]["card"]["state"] == 2


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
    assert Progress.load().last_correct("q-1") is True
    assert aside.read_bytes() == original


def test_a_second_corrupt_file_in_the_same_process_still_warns(progress_file):
    progress_file.parent.mkdir(parents=True)
    for _ in range(2):
        progress_file.write_text("{broken")
        with pytest.warns(ProgressFileWarning):
            Progress.load()
    assert len(list(Path(progress_file.parent).glob("*.corrupt-*"))) == 2


# A learner's file as the first version of the course wrote it: Leitner boxes 1 to 5.
LEITNER_FILE = {
    "version": 1,
    "questions": {
        "missed": {
            "box": 1,
            "seen": 3,
            "correct": 1,
            "last_correct": False,
            "last_seen": "2026-11-20T10:00:00+00:00",
            "due": "2026-11-20T10:00:00+00:00",
        },
        "known": {
            "box": 4,
            "seen": 4,
            "correct": 4,
            "last_correct": True,
            "last_seen": "2026-11-20T10:00:00+00:00",
            "due": "2026-11-27T10:00:00+00:00",
        },
        "due-now": {
            "box": 2,
            "seen": 2,
            "correct": 1,
            "last_correct": True,
            "last_seen": "2026-11-22T09:00:00+00:00",
            "due": "2026-11-23T09:00:00+00:00",
        },
    },
    "sessions": [
        {
            "mode": "exam",
            "finished_at": "2026-11-20T10:05:00+00:00",
            "correct": 14,
            "total": 20,
            "percent": 70,
            "by_rule": {},
            "by_skill": {},
        }
    ],
}


@pytest.fixture
def leitner_file(progress_file) -> bytes:
    progress_file.parent.mkdir(parents=True)
    progress_file.write_text(json.dumps(LEITNER_FILE))
    return progress_file.read_bytes()


def test_a_leitner_file_is_converted_with_its_history_kept(progress_file, leitner_file):
    record = Progress.load()
    for question_id, old in LEITNER_FILE["questions"].items():
        entry = record.entry(question_id)
        assert (entry["seen"], entry["correct"], entry["last_correct"], entry["last_seen"]) == (
            old["seen"],
            old["correct"],
            old["last_correct"],
            old["last_seen"],
        )
        assert record.due(question_id) == datetime.fromisoformat(old["due"]), "due as before"
    assert record.sessions == LEITNER_FILE["sessions"]
    assert record.card("known").state == State.Review and record.card("known").stability == 7.0
    assert record.card("missed").state == State.Learning
    on_disk = json.loads(progress_file.read_text())
    assert on_disk["version"] == 2 and on_disk == Progress.load().data


def test_the_old_file_is_backed_up_byte_for_byte_once(progress_file, leitner_file):
    Progress.load()
    (backup,) = progress_file.parent.glob("quiz-progress.json.v1-backup-*")
    assert backup.read_bytes() == leitner_file
    assert json.loads(progress_file.read_text())["converted_from"] == {
        "version": 1,
        "backup": backup.name,
    }
    Progress.load().record_answer("known", True, NOW)
    assert len(list(progress_file.parent.glob("*.v1-backup-*"))) == 1, "converted only once"


def test_converted_questions_are_reviewed_in_the_old_order_and_carry_on(leitner_file):
    record = Progress.load()
    assert record.due_questions(NOW) == ["missed", "due-now"]
    # "known" sat in box 4 (7 days): a right answer now puts it off for longer than that
    due = record.record_answer("known", True, datetime(2026, 11, 27, 10, tzinfo=UTC))
    assert due - datetime(2026, 11, 27, 10, tzinfo=UTC) > timedelta(days=7)
    assert record.entry("known")["seen"] == 5
    assert record.record_answer("missed", True, NOW) > NOW + timedelta(days=1)
