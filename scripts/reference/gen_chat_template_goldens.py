#!/usr/bin/env python3
"""Goldens for lmforge's C++ chat-template renderer (tests/tokenizers/test_chat_template.cpp).

Renders the real model templates in tests/fixtures/chat_templates/templates.json (each records
where its exact string came from; "group": "other" marks extra real templates taken from a
public Jinja test suite) over a set of conversations (tool-capable templates also with `tools`), exactly as transformers'
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does
(transformers' own `render_jinja_template` and message normalisation when transformers is
importable; otherwise jinja2 configured as transformers' `_compile_jinja_template`:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), loopcontrols, its `tojson`,
`raise_exception`, `strftime_now`), plus feature templates rendered directly with a context.
Raised errors are recorded (type and message) instead of an output.

Regenerate (deterministic; needs jinja2 >= 3.1, optionally transformers):
    python3 scripts/reference/gen_chat_template_goldens.py
which writes tests/fixtures/chat_templates/goldens.json.
"""
import json
import os
import sys
from datetime import datetime

import jinja2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "chat_templates")

try:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import transformers
    from transformers.utils.chat_template_utils import (
        _compile_jinja_template,
        _normalize_chat_messages,
        render_jinja_template,
    )

    RENDERER = f"transformers {transformers.__version__} render_jinja_template, jinja2 {jinja2.__version__}"
except Exception:  # pragma: no cover - fallback when transformers is absent
    transformers = None
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def _compile_jinja_template(source):
        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                              sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
        return env.from_string(source)

    RENDERER = f"jinja2 {jinja2.__version__} configured as transformers' _compile_jinja_template"


def apply_chat_template(source, messages, add_generation_prompt, extra):
    """transformers' apply_chat_template(tokenize=False) for one conversation."""
    if len(messages) == 0:
        raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    documents = kwargs.pop("documents", None)
    if transformers is not None:
        conv = _normalize_chat_messages(messages)
        out, _ = render_jinja_template(conversations=[conv], tools=tools, documents=documents,
                                       chat_template=source, add_generation_prompt=add_generation_prompt,
                                       **kwargs)
        return out[0]
    conv = [{k: v for k, v in m.items() if v is not None} for m in messages]
    return _compile_jinja_template(source).render(messages=conv, tools=tools, documents=documents,
                                                  add_generation_prompt=add_generation_prompt, **kwargs)


def outcome(fn):
    try:
        return {"output": fn()}
    except (jinja2.exceptions.TemplateSyntaxError, jinja2.exceptions.TemplateAssertionError, SyntaxError) as e:
        return {"error": {"kind": "syntax", "type": type(e).__name__, "message": str(e)}}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception() raises the base TemplateError; everything else is a subclass.
        kind = "raise" if type(e) is jinja2.exceptions.TemplateError else "render"
        return {"error": {"kind": kind, "type": type(e).__name__, "message": str(e)}}
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError, IndexError) as e:
        return {"error": {"kind": "render", "type": type(e).__name__, "message": str(e)}}


SYS = {"role": "system", "content": "You are a concise assistant."}
U1 = {"role": "user", "content": "Hello, how are you?"}
A1 = {"role": "assistant", "content": "I'm fine, thanks. How can I help?"}
U2 = {"role": "user", "content": "Tell me a joke about \"quotes\" and 'apostrophes'."}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TOOL_CALL_MSG = {"role": "assistant", "content": "",
                 "tool_calls": [{"id": "call12345", "type": "function",
                                 "function": {"name": "get_weather",
                                              "arguments": {"city": "Zürich", "unit": "celsius"}}}]}
TOOL_RESULT = {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}",
               "tool_call_id": "call12345", "name": "get_weather"}

CONVERSATIONS = {
    "system_user": [SYS, U1],
    "user_only": [U1],
    "multi_turn": [SYS, U1, A1, U2],
    "multi_turn_no_system": [U1, A1, U2],
    "ends_with_assistant": [U1, A1],
    "unicode": [{"role": "user", "content": "Grüße aus Zürich! 日本語 😀 \\ back\\slash\ttab"},
                {"role": "assistant", "content": "Ça va ✓ — ¿qué tal?"},
                {"role": "user", "content": "Ελληνικά\nnew line"}],
    "empty_content": [{"role": "system", "content": ""}, {"role": "user", "content": ""}],
    "padded_content": [{"role": "system", "content": "  spaced system \n"},
                       {"role": "user", "content": "\n  padded user  \n\n"}],
    "null_key_dropped": [{"role": "user", "content": "Hi", "tool_calls": None, "name": None}],
    "two_users_in_a_row": [U1, U2],
    "system_only": [SYS],
    "assistant_first": [A1, U1],
    "empty_conversation": [],
}
TOOLS = [WEATHER_TOOL]
TOOL_CONVERSATIONS = {  # rendered with extra["tools"] = TOOLS
    "tools_user": [U1],
    "tools_system_user": [SYS, U1],
    "tools_call_and_result": [U1, TOOL_CALL_MSG, TOOL_RESULT],
}
TOOL_TEMPLATES = {"qwen25_0_5b_instruct", "llama31_8b_instruct", "mistral_nemo_instruct_2407"}


def model_cases(templates):
    cases = []
    for tname, t in templates.items():
        special = t.get("special_tokens", {})
        runs = [(c, False) for c in CONVERSATIONS]
        if tname in TOOL_TEMPLATES:
            runs += [(c, True) for c in TOOL_CONVERSATIONS]
        for cname, with_tools in runs:
            msgs = (TOOL_CONVERSATIONS if with_tools else CONVERSATIONS)[cname]
            extra = {**special, "tools": TOOLS} if with_tools else special
            for agp in (False, True):
                cases.append({"template": tname, "conversation": cname, "with_tools": with_tools,
                              "add_generation_prompt": agp,
                              **outcome(lambda: apply_chat_template(t["template"], msgs, agp, extra))})
    return cases


# Feature templates: (name, template, context). Rendered directly with the context.
D = {"a": 1, "b": [1, 2, {"c": "x"}], "s": "Hello World", "n": None, "t": True, "f": 2.5,
     "u": "Zürich 😀", "items": [{"role": "user", "x": 3}, {"role": "tool", "x": 1},
                                 {"role": "user", "x": 2}, {"role": "assistant"}]}
FEATURES = [
    # whitespace control
    ("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter\n", {}),
    ("ws_lstrip_blocks", "  {% if true %}\n    x\n  {% endif %}\n  {# c #}\n  y {% if true %}z{% endif %}\n", {}),
    ("ws_minus", "a  {{- ' b ' -}}  c\n  {%- if true -%}  d  {%- endif -%}\n e", {}),
    ("ws_plus", "  {%+ if true %}x{% endif +%}\ny", {}),
    ("ws_comment_minus", "a {#- comment -#} b\n{# keep #}\nc", {}),
    ("ws_var_no_trim", "{{ 'v' }}\nline\n    {{ 'w' }}\n", {}),
    ("ws_trailing_newline_kept_once", "x\n\n", {}),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("ws_raw", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}\n{{ 1 }}", {}),
    ("ws_nested_indent", "{%- for m in items %}\n    {%- if m.role == 'user' %}\n        {{- m.x }}\n    {%- endif %}\n{%- endfor %}", D),
    # literals and printing
    ("lit_values", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }} {{ 2.0 }} {{ true }} {{ False }} {{ none }} {{ None }} {{ 'a' \"b\" }}", {}),
    ("lit_containers", "{{ [1, 'a', none, true, 1.0] }} {{ (1,) }} {{ (1, 'b') }} {{ {'k': 'v', 'n': [1]} }} {{ [] }} {{ {} }}", {}),
    ("lit_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\nx', 'tab\\t', 'bs\\\\'] }}", {}),
    ("lit_escapes", "{{ 'a\\tb\\\\c\\'d\\x41\\u00e9\\U0001F600\\q' }}", {}),
    ("lit_floats", "{{ 0.1 + 0.2 }} {{ 1/3 }} {{ 1e16 }} {{ 1e-5 }} {{ 123456.0 }} {{ 1e22 }} {{ 0.0001 }} {{ -0.0 }} {{ 10/2 }}", {}),
    ("lit_context_values", "{{ a }} {{ b }} {{ n }} {{ t }} {{ f }} {{ u }} {{ b[2] }}", D),
    # operators
    ("op_arith", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("op_concat", "{{ 'a' ~ 1 ~ none ~ true ~ [1] }} {{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }} {{ [0] * 3 }}", {}),
    ("op_compare", "{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2 }} {{ 1 != 2 }} {{ none == none }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", {}),
    ("op_logic", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ not none }} {{ not 1 }} {{ none or [] }}", {}),
    ("op_in", "{{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'a' in {'a': 1} }} {{ 'z' not in {'a': 1} }} {{ 3 not in [1] }} {{ 'x' in undefined_thing }}", {}),
    ("op_cond_expr", "{{ 'yes' if a else 'no' }} {{ 'yes' if n else 'no' }} [{{ 'only' if n }}] {{ 1 if false else 2 if false else 3 }}", D),
    ("op_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }} {{ 'a' ~ (1 + 2) }} {{ -s|length }} {{ 1 + 2 ~ 'a' }}", D),
    ("op_concat_binds_tighter_than_plus_error", "{{ 'a' ~ 1 + 2 }}", {}),
    ("op_str_plus_int_error", "{{ 'a' + 1 }}", {}),
    ("op_div_zero_error", "{{ 1 / 0 }}", {}),
    # attribute, subscript, slicing
    ("access_basic", "{{ b[0] }} {{ b[-1].c }} {{ b[2]['c'] }} {{ b.2.c }} {{ s[0] }} {{ s[-1] }} {{ u[7] }} [{{ b[10] }}] [{{ b[0].missing }}] [{{ n.x }}]", D),
    ("access_slices", "{{ s[1:4] }} {{ s[::-1] }} {{ s[:-3] }} {{ s[-5:] }} {{ b[1:] }} {{ b[::2] }} {{ b[::-1] }} {{ u[::-1] }} {{ s[10:2:-3] }} {{ b[5:] }}", D),
    ("access_missing_is_falsy", "{% if items[0].missing %}x{% else %}falsy{% endif %}{{ items[0].missing is defined }}{{ items[0].missing }}", D),
    ("access_undefined_attr_error", "{{ nothing.attr }}", {}),
    ("access_undefined_chain_error", "{{ b[0].missing.deeper }}", D),
    ("access_dict_method_vs_key", "{{ d.items() | list }} {{ d['items'] }} {{ d.get('items') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}", {"d": {"items": "key!", "a": 1}}),
    # filters
    ("filter_strings", "{{ '  x y  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello wORLD-foo (bar'|title }}|{{ 'hELLO world'|capitalize }}|{{ u|upper }}", D),
    ("filter_length", "{{ s|length }} {{ u|length }} {{ b|length }} {{ D|length }} {{ b|count }} {{ undefined_x|length }}", {**D, "D": D}),
    ("filter_tojson", "{{ b|tojson }} {{ u|tojson }} {{ D|tojson }} {{ 'q\"\\\\ \\n\\t\\x01\\x7f'|tojson }} {{ 1.0|tojson }} {{ none|tojson }} {{ (1, 2)|tojson }}", {**D, "D": {"z": 1, "a": [True, None, 1.5e-7]}}),
    ("filter_tojson_options", "{{ D|tojson(indent=2) }}\n{{ D|tojson(indent='\\t', sort_keys=true) }}\n{{ D|tojson(separators=(',', ':')) }}\n{{ u|tojson(ensure_ascii=true) }}\n{{ []|tojson(indent=2) }}{{ {}|tojson(indent=4) }}\n{{ D|tojson(indent=0) }}", {**D, "D": {"z": [1, {"y": []}], "a": "é", "e": {}}}),
    ("filter_tojson_undefined_error", "{{ nothing|tojson }}", {}),
    ("filter_string_int_float", "{{ 3|string + 'a' }} {{ '42'|int + 1 }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 4|float }} {{ 'y'|float }} {{ true|int }}", {}),
    ("filter_join", "{{ [1, 2, 3]|join }} {{ ['a', 'b']|join(', ') }} {{ items|join('/', attribute='role') }} {{ 'abc'|join('-') }}", D),
    ("filter_default", "{{ missing|default('dflt') }} {{ missing|d('d2') }} {{ n|default('x') }} {{ ''|default('e', true) }} {{ 0|d('z', boolean=true) }} {{ a|default(5) }} [{{ missing|default }}]", D),
    ("filter_first_last", "{{ b|first }} {{ b|last }} {{ s|first }} {{ s|last }} [{{ []|first }}] {{ {'k': 1, 'j': 2}|first }}", D),
    ("filter_list_items_reverse", "{{ s|list }} {{ {'x': 1, 'y': 2}|items|list }} {{ b|reverse|list }} {{ s|reverse }} {{ {'x': 1}|list }} {{ undefined_y|items|list }}", D),
    ("filter_replace", "{{ s|replace('o', '0') }} {{ s|replace('l', 'L', 2) }} {{ 'ab'|replace('', '-') }}", D),
    ("filter_select_reject", "{{ items|selectattr('role', 'equalto', 'user')|map(attribute='x')|list }} {{ items|rejectattr('role', 'eq', 'user')|map(attribute='role')|list }} {{ items|selectattr('x')|list|length }} {{ items|selectattr('x', 'defined')|list|length }} {{ items|rejectattr('x', 'undefined')|list|length }} {{ [1, 2, 3, 4]|select('even')|list }} {{ [1, 2, 3]|reject('odd')|list }} {{ [0, 1, '', 'a']|select|list }} {{ items|selectattr('role', 'in', ['tool', 'assistant'])|list|length }}", D),
    ("filter_map", "{{ items|map(attribute='role')|join(',') }} {{ [1, 2]|map('string')|list }} {{ ['a', 'B']|map('upper')|list }} {{ items|map(attribute='x', default=0)|list }} {{ [' a ', 'b ']|map('trim')|join }}", D),
    ("filter_unique_sort_minmax", "{{ [3, 1, 3, 2]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ ['a', 'A']|unique(case_sensitive=true)|list }} {{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ items|sort(attribute='role')|map(attribute='role')|list }} {{ [3, 1]|min }} {{ [3, 1]|max }} {{ [1, 2.5]|sum }} {{ {'b': 1, 'a': 2}|dictsort }}", D),
    ("filter_indent", "[{{ 'a\\nb\\n\\nc'|indent }}] [{{ 'a\\nb'|indent(2, true) }}] [{{ 'a\\n\\nb'|indent(2, blank=true) }}] [{{ 'x\\n'|indent('> ') }}]", {}),
    ("filter_abs_round_safe", "{{ -3|abs }} {{ -2.5|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 7|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 'x'|safe }}", {}),
    ("filter_unknown_error", "{{ 1|no_such_filter }}", {}),
    # tests
    ("tests_types", "{{ a is defined }} {{ zz is defined }} {{ zz is undefined }} {{ n is none }} {{ a is none }} {{ s is string }} {{ a is number }} {{ f is number }} {{ t is number }} {{ a is integer }} {{ f is integer }} {{ t is integer }} {{ f is float }} {{ D is mapping }} {{ b is mapping }} {{ b is iterable }} {{ s is iterable }} {{ a is iterable }} {{ b is sequence }} {{ s is sequence }} {{ D is sequence }} {{ t is boolean }} {{ t is true }} {{ t is false }} {{ n is boolean }}", {**D, "D": D}),
    ("tests_values", "{{ 3 is odd }} {{ 3 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 'a' is eq 'a' }} {{ 1 is equalto 2 }} {{ 2 is in [1, 2] }} {{ 'x' is in 'xyz' }} {{ 3 is gt 2 }} {{ 3 is lt 2 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 2 is ne 1 }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ a is not none }} {{ not a is none }} {{ n is sameas none }}", D),
    ("tests_unknown_error", "{{ 1 is no_such_test }}", {}),
    # loops
    ("loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}] {% endfor %}", {}),
    ("loop_else_and_filter", "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in b if x is number %}{{ x }}{{ loop.length }}{% endfor %} {% for m in items if m.role == 'user' %}{{ loop.index }}:{{ m.x }}{% if not loop.last %},{% endif %}{% endfor %}", D),
    ("loop_unpack", "{% for k, v in {'x': 1, 'y': [2]}.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in {'a': 'b'}|items %}{{ k }}{{ v }}{% endfor %} {% for (p, q) in [[1, 2], [3, 4]] %}{{ p + q }}{% endfor %}", {}),
    ("loop_dict_and_string", "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %} {% for c in 'héllo' %}{{ c }}.{% endfor %} {% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(1, 10, 3) %}{{ i }}{% endfor %} {% for i in range(5, 0, -2) %}{{ i }}{% endfor %}", {}),
    ("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_nested", "{% for i in [1, 2] %}{% for j in 'ab' %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("loop_scoping", "{% set x = 'outer' %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }} {% endfor %}{{ x }}", {}),
    ("loop_over_none_error", "{% for x in n %}{{ x }}{% endfor %}", D),
    ("loop_else_quirks", "{% for x in [1, 2] %}{% continue %}{% else %}E1{% endfor %}|{% for x in [1, 2] %}{% break %}{% else %}E2{% endfor %}|{% for x in [1, 2] %}{{ x }}{% if x == 2 %}{% break %}{% endif %}{% else %}E3{% endfor %}|{% for x in [1, 2] %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% else %}E4{% endfor %}", {}),
    ("generator_semantics", "{{ 'T' if items|selectattr('role', 'eq', 'nobody') else 'F' }} {{ 'T' if []|select else 'F' }} {{ 'T' if []|map('string') else 'F' }} {{ (items|selectattr('role', 'eq', 'user'))[0] is defined }} {{ items|selectattr('x') is sequence }} {{ items|selectattr('x') is iterable }} {{ items|selectattr('x')|first }} {{ items|selectattr('x')|list|length }} {{ 'T' if undefined_z|items else 'F' }} {{ [1, 2]|reverse is sequence }}", D),
    ("generator_items_of_non_mapping", "{{ 'T' if 3|items else 'F' }} {{ not 'ab'|items }}", {}),
    ("generator_items_of_non_mapping_error", "{{ 3|items|list }}", {}),
    ("generator_over_non_iterable", "{{ 'T' if 3|select else 'F' }} {{ 'T' if none|map('string') else 'F' }} {{ 'T' if 2.5|unique else 'F' }} {{ 4.0 is divisibleby 2 }} {{ 4.5 is divisibleby 2 }}", {}),
    ("generator_over_non_iterable_error", "{{ 3|select|list }}", {}),
    ("generator_length_error", "{{ items|selectattr('x')|length }}", D),
    ("generator_last_error", "{{ items|selectattr('x')|last }}", D),
    ("printf_format", "{{ '%s-%d' % ('a', 3) }} {{ '%5.2f|%-4s|%03d' % (3.14159, 'ab', 7) }} {{ '%s' % 'solo' }} {{ '100%%' % () }} {{ '%(k)s=%(n)d' % {'k': 'x', 'n': 2} }} {{ '%r' % 'q' }} {{ '%x' % 255 }} {{ '%.2s' % 'abcdef' }}", {}),
    ("printf_too_few_error", "{{ '%s %s' % ('a',) }}", {}),
    ("indent_non_string_error", "{{ [1]|indent }}", {}),
    ("wordcount", "{{ 'Hello, world! 2.5 x_y'|wordcount }} {{ ''|wordcount }}", {}),
    ("syntax_chained_tests", "{{ 1 is number is true }}", {}),
    ("tests_chained_after_args", "{{ 4 is divisibleby(2) is true }} {{ 2.5 is even }} {{ 3.0 is odd }} {{ -3 is odd }}", {}),
    # set / namespace / macros
    ("set_basic", "{% set x = 1 %}{% set y, z = 'ab' %}{% set t = 1, 2 %}{{ x }}{{ y }}{{ z }}{{ t }}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", {}),
    ("set_block", "{% set blk %}inner {{ 1 + 1 }}\n{% endset %}[{{ blk }}]{{ blk|length }}", {}),
    ("set_namespace", "{% set ns = namespace(found=false, count=0, items=[]) %}{% for m in items %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.count = ns.count + 1 %}{% set ns.items = ns.items + [m.x] %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.count }} {{ ns.items }} {{ ns.missing is defined }}", D),
    ("set_attr_on_dict_error", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(punct='.', name='Cy') }}", {}),
    ("macro_sees_globals", "{% macro show() %}{{ a }}-{{ later }}{% endmacro %}{% set later = 'L' %}{{ show() }}", D),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1)|int) }}{% endif %}{% endmacro %}{{ fact(5) }}", {}),
    # string / dict / list methods
    ("methods_str", "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ s.startswith('Hell') }}|{{ s.endswith(('x', 'ld')) }}|{{ s.upper() }}|{{ s.lower() }}|{{ 'hello wOrld'.title() }}|{{ 'hELLO'.capitalize() }}|{{ s.replace('l', '_') }}|{{ s.find('o') }}|{{ s.count('l') }}|{{ '-'.join(['a', 'b']) }}|{{ '12'.isdigit() }}|{{ 'a\\nb'.splitlines() }}", D),
    ("methods_format", "{{ '{} and {}'.format(1, 'two') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=5) }} {{ '{{literal}}'.format() }}", {}),
    ("methods_dict_list", "{{ D.keys()|list }} {{ D.values()|list }} {{ D.items()|list }} {{ D.get('a') }} {{ D.get('q', 9) }} {{ [1, 2, 1].count(1) }} {{ ['a', 'b'].index('b') }}", {"D": {"a": 1, "b": "x"}}),
    ("methods_list_append_error", "{% set l = [] %}{{ l.append(1) }}", {}),
    # globals
    ("globals", "{{ range(3)|list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }} {{ strftime_now('%Y')|length }}", {}),
    ("globals_raise", "{% if true %}{{ raise_exception('Custom failure: ' ~ 42) }}{% endif %}", {}),
    ("globals_raise_left_to_right", "{{ raise_exception('left') + raise_exception('right') }}", {}),
    ("globals_raise_left_to_right_concat", "{{ raise_exception('first') ~ raise_exception('second') }}", {}),
    ("globals_range_limit_error", "{{ range(200000)|length }}", {}),
    # syntax errors
    ("syntax_unclosed_if", "{% if true %}x", {}),
    ("syntax_unknown_tag", "{% frobnicate %}", {}),
    ("syntax_bad_expr", "{{ 1 + }}", {}),
    ("syntax_unclosed_var", "{{ x ", {}),
    ("syntax_unclosed_comment", "{# never closed", {}),
    ("syntax_break_outside_loop", "{% break %}", {}),
    ("syntax_unclosed_string", "{{ 'abc }}", {}),
]


def feature_cases():
    cases = []
    for name, template, ctx in FEATURES:
        def run():
            return _compile_jinja_template(template).render(**ctx)
        cases.append({"name": name, "template": template, "context": ctx, **outcome(run)})
    return cases


def main():
    with open(os.path.join(FIX, "templates.json"), encoding="utf-8") as f:
        templates = json.load(f)
    out = {
        "generated_by": "scripts/reference/gen_chat_template_goldens.py",
        "renderer": RENDERER,
        "templates": templates,
        "conversations": {**CONVERSATIONS, **TOOL_CONVERSATIONS},
        "tools": TOOLS,
        "model_cases": model_cases(templates),
        "feature_cases": feature_cases(),
    }
    path = os.path.join(FIX, "goldens.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    n_err = sum("error" in c for c in out["model_cases"] + out["feature_cases"])
    print(f"wrote {path}: {len(out['model_cases'])} model cases, {len(out['feature_cases'])} feature "
          f"cases ({n_err} errors), {RENDERER}", file=sys.stderr)


if __name__ == "__main__":
    main()
