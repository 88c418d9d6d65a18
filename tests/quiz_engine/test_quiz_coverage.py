"""`python -m quizzes check`: coverage per skill statement, topic and rule, and a non-zero exit
naming every target missed (an exam set under 150 questions, a topic under 5 exam-set questions,
an exam question with no topic, a rule under its target). Checked on generated banks that meet
the targets exactly, then fall one short."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import yaml

from quizzes import cli, coverage, engine
from quizzes.schema import MIN_EXAM_QUESTIONS, MIN_EXAM_QUESTIONS_PER_TOPIC

TOPICS = list(engine.load_skills().topics)  # the course's skills.yaml: 14 topics


def _question(number: int, topic: str, question_set: str = "exam") -> dict:
    return {
        "id": f"gen-{number:03d}",
        "type": "single",
        "choose": 1,
        "set": question_set,
        "stem": f"Generated question {number} on {topic}: which option is right?",
        "options": [
            {"text": f"Right {number}", "correct": True, "feedback": "Right."},
            *({"text": f"Wrong {number}{c}", "correct": False, "feedback": "No."} for c in "xyz"),
        ],
        "explanation": "Generated for the coverage tests.",
        "rules": ["gen-rule"],
        "skills": ["2.4.2"],
        "topics": [topic] if topic else [],
    }


def write_bank(root, questions: list[dict]) -> None:
    """A bank directory with one rule and the given questions."""
    (root / "bank").mkdir(parents=True)
    rules = {
        "rules": [
            {
                "id": "gen-rule",
                "kind": "rule",
                "rule": "A generated rule.",
                "why": "For the coverage tests.",
                "skills": ["2.4.2"],
                "notebook": "03",
                "hook": "Generated.",
            }
        ],
        "decision_table": {"columns": ["Need", "SSE"], "rows": [["x", "y"]]},
    }
    (root / "rules.yaml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    document = yaml.safe_dump({"questions": questions}, sort_keys=False)
    (root / "bank" / "generated.yaml").write_text(document, encoding="utf-8")


def just_enough() -> list[dict]:
    """Exactly the targets: 150 exam questions, every topic at least 5, the first topic exactly
    5 (the others share the rest)."""
    questions = [_question(n, TOPICS[0]) for n in range(MIN_EXAM_QUESTIONS_PER_TOPIC)]
    others = TOPICS[1:]
    for n in range(len(questions), MIN_EXAM_QUESTIONS):
        questions.append(_question(n, others[n % len(others)]))
    return questions


def check(root) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(["check", "--bank", str(root)], out=out), out.getvalue()


def test_a_bank_at_the_targets_passes(tmp_path):
    write_bank(tmp_path, just_enough())
    code, text = check(tmp_path)
    assert code == 0, text
    assert "150 questions (150 exam set, 0 lab-check), 1 rules: valid." in text
    assert "Every coverage target is met." in text


def test_the_report_counts_per_skill_statement_and_topic(tmp_path):
    write_bank(tmp_path, just_enough())
    measured = coverage.measure(engine.load_bank(tmp_path))
    assert measured.per_topic[TOPICS[0]] == MIN_EXAM_QUESTIONS_PER_TOPIC
    assert sum(measured.per_topic.values()) == MIN_EXAM_QUESTIONS
    assert sum(measured.per_skill.values()) == MIN_EXAM_QUESTIONS, "one topic each, no double"
    _, text = check(tmp_path)
    skill_map = engine.load_skills()
    for skill in skill_map.skills.values():
        assert f"  {skill.id} {skill.statement}" in text
        for topic in skill.topics:
            assert f"      {topic} " in text


def test_one_exam_question_short_fails_naming_the_exam_set(tmp_path):
    write_bank(tmp_path, just_enough()[:-1])
    code, text = check(tmp_path)
    assert code == 1
    assert "exam set: 149 questions, needs at least 150" in text


def test_a_topic_one_short_fails_naming_the_topic_and_its_skill(tmp_path):
    questions = just_enough()
    questions[0]["topics"] = [TOPICS[1]]  # the first topic keeps 4
    write_bank(tmp_path, questions)
    code, text = check(tmp_path)
    assert code == 1
    assert f"topic {TOPICS[0]} (skill 2.4.2): 4 exam-set questions, needs at least 5" in text
    assert f"      {TOPICS[0]}" in text and "<- short" in text


def test_lab_check_questions_do_not_count_towards_the_exam_targets(tmp_path):
    questions = just_enough()
    questions[0]["set"] = "lab-check"
    write_bank(tmp_path, questions)
    code, text = check(tmp_path)
    assert code == 1
    assert "150 questions (149 exam set, 1 lab-check)" in text
    assert "exam set: 149 questions, needs at least 150" in text
    assert f"topic {TOPICS[0]} (skill 2.4.2): 4 exam-set questions" in text


def test_an_exam_question_without_a_topic_is_named(tmp_path):
    questions = just_enough() + [_question(999, None)]
    write_bank(tmp_path, questions)
    code, text = check(tmp_path)
    assert code == 1
    assert (
        "/bank/generated.yaml: question gen-999: an exam-set question needs at least one topic"
    ) in text


def test_a_rule_below_its_target_still_fails_the_check(tmp_path):
    questions = just_enough()
    write_bank(tmp_path, questions)
    rules = yaml.safe_load((tmp_path / "rules.yaml").read_text())
    rules["rules"].append({**rules["rules"][0], "id": "lonely-rule"})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    code, text = check(tmp_path)
    assert code == 1
    assert "rule lonely-rule (rule): 0 questions, needs at least 4" in text


@pytest.mark.parametrize(("questions", "code"), [(just_enough(), 0), (just_enough()[1:], 1)])
def test_the_command_line_exit_code_follows_the_targets(tmp_path, repo_root, questions, code):
    write_bank(tmp_path, questions)
    result = subprocess.run(
        [sys.executable, "-m", "quizzes", "check", "--bank", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env=dict(os.environ),
        timeout=50,
    )
    assert result.returncode == code, result.stdout + result.stderr


def test_the_skill_statements_and_topics_are_the_exams(tmp_path):
    skill_map = engine.load_skills()
    assert {skill.id: list(skill.topics) for skill in skill_map.skills.values()} == {
        "2.4.2": ["bedrock-streaming-apis", "sse-vs-websocket", "api-gateway-streaming"],
        "2.4.3": [
            "sdk-retries-backoff",
            "api-rate-limiting",
            "fallback-degradation",
            "xray-tracing",
        ],
        "2.5.1": [
            "stream-limits",
            "model-timeout-retries",
            "token-limit-management",
            "structured-errors",
        ],
        "2.5.2": ["openapi-first", "amplify-declarative-ui", "prompt-flows"],
    }
    assert skill_map.skills["2.4.3"].statement == "Create resilient FM systems"


def test_a_topic_named_twice_in_skills_yaml_is_an_error(tmp_path):
    write_bank(tmp_path, just_enough())
    document = yaml.safe_load((engine.PACKAGE_DIR / "skills.yaml").read_text())
    document["skills"][1]["topics"].append(document["skills"][0]["topics"][0])
    (tmp_path / "skills.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(engine.BankError, match="skills.yaml: topic bedrock-streaming-apis: topic"):
        engine.load_bank(tmp_path)
