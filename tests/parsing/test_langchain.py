"""LangChain prompt files (load_prompt's `_type` configs and dumpd's serialized form)
and LangChain message lists → segments. Files are produced by langchain_core itself."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from promptguard.parsing import ParseError
from promptguard.parsing.files import parse_file
from promptguard.parsing.langchain import langchain_messages_to_openai, parse_langchain_messages

lc_prompts = pytest.importorskip("langchain_core.prompts")


def kinds(segs):
    return [(s.kind.value, s.index) for s in segs]


def _few_shot():
    example = lc_prompts.PromptTemplate.from_template("Question: {question}\n{answer}")
    return lc_prompts.FewShotPromptTemplate(
        examples=[
            {"question": "A pen costs $2. What do 3 pens cost?", "answer": "3 * 2 = 6.\nThe answer is 6."},
            {"question": "What is the capital of Italy?", "answer": "The answer is Rome."},
        ],
        example_prompt=example,
        prefix="Answer like the examples.",
        suffix="Question: {input}\n",
        input_variables=["input"],
    )


def test_few_shot_file_saved_by_langchain(tmp_path):
    fs = _few_shot()
    path = tmp_path / "few_shot.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # save/load_prompt are deprecated, still what files use
        fs.save(str(path))
        loaded = lc_prompts.load_prompt(str(path))  # LangChain reads the same file
    rendered = loaded.format(input="{input}")
    pf = parse_file(path)
    assert pf.error is None
    segs = pf.segments
    assert kinds(segs) == [("instruction", 0), ("demonstration", 0), ("example", 0), ("query", 0)]
    # offsets are into the prompt as LangChain renders it
    for s in segs:
        a = s.anchors[0]
        assert rendered[a.source_start : a.source_start + a.length] == s.text
    demo = segs[1]
    assert demo.question == "A pen costs $2. What do 3 pens cost?"
    assert demo.steps == ["3 * 2 = 6."] and demo.answer == "The answer is 6."
    assert segs[3].text == "Question: {input}"
    # lines point into the JSON file
    assert pf.line_of(segs[0]) == next(i for i, l in enumerate(pf.text.splitlines(), 1) if "Answer like the examples" in l)


def test_few_shot_without_question_markers_splits_at_the_output_variable(tmp_path):
    obj = {"_type": "few_shot", "input_variables": ["word"],
           "examples": [{"word": "up", "antonym": "down"},
                        {"word": "hot", "antonym": "It is about temperature.\nThe opposite of hot is cold.\nThe answer is cold."}],
           "example_prompt": {"_type": "prompt", "input_variables": ["word", "antonym"], "template": "Word: {word}\nAntonym: {antonym}"},
           "prefix": "", "suffix": "Word: {word}\nAntonym:"}
    path = tmp_path / "antonyms.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    segs = parse_file(path).segments
    assert kinds(segs) == [("example", 0), ("demonstration", 0), ("query", 0)]
    assert segs[0].answer == "down" and segs[0].question == "Word: up\nAntonym:"
    assert segs[1].steps == ["It is about temperature.", "The opposite of hot is cold."]
    # LangChain's own rendering agrees with the offsets (no prefix: nothing before the first example)
    loaded = lc_prompts.FewShotPromptTemplate(
        examples=obj["examples"], example_prompt=lc_prompts.PromptTemplate.from_template(obj["example_prompt"]["template"]),
        prefix="", suffix=obj["suffix"], input_variables=["word"])
    rendered = loaded.format(word="{word}")
    for s in segs:
        a = s.anchors[0]
        assert rendered[a.source_start : a.source_start + a.length] == s.text


def test_prompt_template_yaml_and_referenced_files(tmp_path):
    (tmp_path / "template.txt").write_text("You are a tutor.\n\nQ: 1+1?\nA: 2\n\nQ: {q}\nA:", encoding="utf-8")
    (tmp_path / "examples.yaml").write_text("- {question: 'x?', answer: 'y'}\n", encoding="utf-8")
    (tmp_path / "tutor.yaml").write_text("_type: prompt\ninput_variables: [q]\ntemplate_path: template.txt\n", encoding="utf-8")
    (tmp_path / "fs.yaml").write_text(
        "_type: few_shot\ninput_variables: [input]\nexamples: examples.yaml\n"
        "example_prompt: {_type: prompt, input_variables: [question, answer], template: \"Q: {question}\\nA: {answer}\"}\n"
        "suffix: \"Q: {input}\\nA:\"\n", encoding="utf-8")
    assert kinds(parse_file(tmp_path / "tutor.yaml").segments) == [("instruction", 0), ("example", 0), ("query", 0)]
    assert kinds(parse_file(tmp_path / "fs.yaml").segments) == [("example", 0), ("query", 0)]
    (tmp_path / "evil.yaml").write_text("_type: prompt\ntemplate_path: ../../etc/passwd.txt\n", encoding="utf-8")
    assert "not followed" in parse_file(tmp_path / "evil.yaml").error


def test_chat_prompt_serialized_with_dumpd(tmp_path):
    from langchain_core.load import dumpd

    chat = lc_prompts.ChatPromptTemplate.from_messages([
        ("system", "You are {name}, a support bot."),
        ("human", "Where is my order?"),
        ("ai", "Let me check the tracking number."),
        lc_prompts.MessagesPlaceholder("history", optional=True),
        ("human", "{question}"),
    ])
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(dumpd(chat)), encoding="utf-8")
    segs = parse_file(path).segments
    assert kinds(segs) == [("instruction", 0), ("example", 0), ("query", 0)]
    assert segs[0].text == "You are {name}, a support bot."
    assert segs[2].text == "{question}"


def test_load_prompt_chat_shape_and_role_pairs(tmp_path):
    (tmp_path / "c1.json").write_text(json.dumps(
        {"_type": "chat", "input_variables": [], "messages": [{"prompt": {"template": "Tell me a joke about {topic}"}}]}))
    (tmp_path / "c2.yaml").write_text("_type: chat\nmessages:\n  - [system, Be terse.]\n  - [human, '{q}']\n")
    assert kinds(parse_file(tmp_path / "c1.json").segments) == [("query", 0)]
    assert kinds(parse_file(tmp_path / "c2.yaml").segments) == [("instruction", 0), ("query", 0)]


@pytest.mark.parametrize("obj, why", [
    ({"_type": "agent"}, "unsupported LangChain prompt _type"),
    ({"_type": "prompt", "template": "x", "template_format": "jinja2"}, "jinja2"),
    ({"_type": "few_shot", "examples": 3, "example_prompt": "{a}"}, "examples"),
    ({"_type": "chat", "messages": [{"nope": 1}]}, "messages\\[0\\]"),
    ({"lc": 1, "type": "not_implemented", "id": ["langchain_core", "FewShotPromptTemplate"]}, "could not serialize"),
])
def test_bad_langchain_files_give_per_file_errors(tmp_path, obj, why):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    pf = parse_file(path)
    assert pf.error is not None and re.search(why, pf.error), pf.error


def test_langchain_message_objects_and_dict_forms():
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, messages_to_dict

    msgs = [SystemMessage("Be helpful."), HumanMessage("2+2?"), AIMessage("4"),
            HumanMessage("Check the weather."), ToolMessage("Sunny, 21C.", tool_call_id="t1", name="weather")]
    segs = parse_langchain_messages(msgs).segments
    assert kinds(segs) == [("instruction", 0), ("example", 0), ("query", 0), ("context", 0)]
    assert segs[3].source == "tool:weather"
    as_dicts = langchain_messages_to_openai(messages_to_dict(msgs))
    assert [m["role"] for m in as_dicts] == ["system", "user", "assistant", "user", "tool"]
    with pytest.raises(ParseError, match="unknown LangChain message type"):
        langchain_messages_to_openai([{"type": "alien", "content": "x"}])


def test_messages_to_dict_file(tmp_path):
    from langchain_core.messages import AIMessage, HumanMessage, messages_to_dict

    path = tmp_path / "history.json"
    path.write_text(json.dumps(messages_to_dict([HumanMessage("Hi"), AIMessage("Hello!"), HumanMessage("Bye")])))
    assert kinds(parse_file(path).segments) == [("example", 0), ("query", 0)]
