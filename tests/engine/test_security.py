"""Hostile templates and expressions are refused, or stopped within the limits; nothing hangs."""

import time

import pytest

from engine.mapping import MappingError, StepError, compile_design
from engine.mapping.sandbox import MAX_RENDER_SECONDS, CompiledExpression, CompiledTemplate

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ value.__class__.__init__.__globals__ }}",
    "{{ record|attr('__class__') }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ ''.format.__globals__ }}",
    "{{ '{0.__class__}'.format(value) }}",
    "{{ '%s'|format(value.__class__) }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config.items() }}",
    "{{ request.application }}",
    "{{ record.update({'a': 1}) }}",
    "{% set x = 1 %}{{ x }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% include '/etc/passwd' %}",
    "{% for x in range(10**9) %}{% endfor %}",
    "{{ 'x' * 1000000000 }}",
    "{{ [1] * 1000000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ '%999999999d' % 1 }}",
    "{{ value.ljust(1000000000) }}",
    "{{ value.center(1000000000) }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_and_bombs_are_refused(source):
    started = time.perf_counter()
    with pytest.raises((MappingError, StepError)):
        CompiledTemplate(source).render({"value": "abc", "record": {"a": "b"}})
    assert time.perf_counter() - started < MAX_RENDER_SECONDS + 1.5


def test_cpu_bomb_from_nested_loops_is_stopped_by_the_time_limit():
    t = CompiledTemplate("{% for a in record.s %}{% for b in record.s %}{{ '' }}{% endfor %}{% endfor %}")
    started = time.perf_counter()
    with pytest.raises(StepError, match="longer than"):
        t.render({"value": None, "record": {"s": "x" * 20000}})
    assert time.perf_counter() - started < MAX_RENDER_SECONDS + 1.5


def test_output_size_limit():
    t = CompiledTemplate("{% for a in record.s %}{{ record.s }}{% endfor %}")
    with pytest.raises(StepError, match="larger than"):
        t.render({"value": None, "record": {"s": "y" * 5000}})


def test_oversized_template_refused():
    with pytest.raises(MappingError, match="limit"):
        CompiledTemplate("{{ value }}" * 1000)


def test_ordinary_templates_still_work():
    t = CompiledTemplate("{{ value|upper }} {{ record.n * 3 }} {{ record.things|join(', ') }} {{ record.x if record.x else 'none' }}")
    assert t.render({"value": "ab", "record": {"n": 2, "things": ["a", "b"], "x": None}}) == "AB 6 a, b none"


@pytest.mark.parametrize("expr", [
    "a" + ".a" * 1000,  # too long
    "[" * 40 + "@" + "]" * 40,  # too deep
    "[[[[@,@,@,@],[@,@,@,@]],[[@,@,@,@],[@,@,@,@]]],[[[@,@,@,@],[@,@,@,@]],[[@,@,@,@],[@,@,@,@]]]]",  # amplification
    "[@,@,@,@][][@,@,@,@][][@,@,@,@][][@,@,@,@][]",  # sequential amplification
    "foo[?",  # syntax error
])
def test_hostile_expressions_refused_at_compile_time(expr):
    with pytest.raises(MappingError):
        CompiledExpression(expr)


def test_expression_result_limits_hold_at_run_time():
    e = CompiledExpression("[*].[@, @, @, @][]")
    started = time.perf_counter()
    with pytest.raises(StepError):
        e.search([list(range(1000))] * 2000)
    assert time.perf_counter() - started < 5


def test_hostile_template_in_a_design_becomes_a_field_error_not_a_crash():
    c = compile_design({"connector": "x", "stream": "s", "careType": "Contact", "mappings": [
        {"sourceField": "n", "targetField": "name", "transformation": [
            {"function": "template", "args": {"source": "{% for a in record.s %}{% for b in record.s %}{% endfor %}{% endfor %}"}}]}]})
    r = c.apply({"n": "x", "s": "z" * 30000})
    assert r.errors and r.errors[0].field == "name" and "longer than" in r.errors[0].message


def test_compiled_design_with_hostile_template_refused_at_compile_time():
    with pytest.raises(MappingError):
        compile_design({"connector": "x", "stream": "s", "careType": "Contact", "mappings": [
            {"sourceField": "n", "targetField": "name",
             "transformation": [{"function": "template", "args": {"source": "{% macro a() %}{% endmacro %}"}}]}]})
