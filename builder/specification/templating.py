"""The one Jinja environment every template of a spec goes through.

Specs and fragments arrive in pull requests and CI plans, lints and renders
them, so a template is untrusted code. Rendering happens in Jinja's
`ImmutableSandboxedEnvironment` (no attribute starting with `_`, no mutation
of lists and dicts, no unsafe callables) with limits on what one render may
produce and how much work it may do:

- at most `MAX_OUTPUT` characters of output, and no string or list made by
  `*`, `**`, a filter or a method larger than that;
- at most `MAX_WORK` steps: items taken by `for` loops and calls;
- `range` counts its items against the same budget.

Breaking a limit, an undefined variable, `1/0` or any other exception of a
render becomes `TemplateFailure` (a `jinja2.TemplateError`) with the template
line, never a traceback. This module is in `spec` because fragments are
compiled at load time; `spec` must not import `plan`.
"""
from __future__ import annotations

import contextvars
import functools
import operator
import re
from typing import Any, Callable, Iterable, Iterator

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

#: characters (or items) one render, or one value inside it, may produce
MAX_OUTPUT = 1_000_000
#: loop items and calls one render may take
MAX_WORK = 100_000
#: numbers above this passed to a function or filter are refused (widths, counts, exponents)
MAX_NUMBER = MAX_OUTPUT
_BIG_WIDTH = re.compile(r"[%{][^%{}]*?\d{7,}")
#: filters whose output grows with their numeric arguments or their input's size
_GROWING_FILTERS = ("center", "indent", "wordwrap", "format", "replace", "join", "truncate", "batch", "slice")


class TemplateFailure(jinja2.TemplateError):
    """A render that failed: what went wrong and the template line (when known)."""

    def __init__(self, message: str, lineno: int | None = None):
        super().__init__(message)
        self.lineno = lineno

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message


class LimitExceeded(jinja2.sandbox.SecurityError):
    """A template asked for more output or work than a spec may."""


class _Budget:
    """Work left in the current render; shared by loops, calls and `range`."""

    def __init__(self, steps: int = MAX_WORK):
        self.steps = steps

    def spend(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise LimitExceeded(f"template does too much work (more than {MAX_WORK} loop items and calls)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("stacks_template_budget", default=None)


def _spend(steps: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(steps)


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > MAX_OUTPUT:
        raise LimitExceeded(f"{what} would make a value of more than {MAX_OUTPUT} characters or items")
    return value


def _check_numbers(values: Iterable[Any], what: str, formats: bool = False) -> None:
    """Refuse huge numbers (widths, counts) and, with `formats`, format strings with huge widths."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
            raise LimitExceeded(f"{what}: number {value} is too large for a template (at most {MAX_NUMBER})")
        if formats and isinstance(value, str) and _BIG_WIDTH.search(value):
            raise LimitExceeded(f"{what}: format width too large for a template")


def _guarded_range(*args: int) -> Iterator[int]:
    """`range` whose items count against the render's work budget."""
    _check_numbers(args, "range")
    numbers = range(*args)
    if len(numbers) > MAX_WORK:
        raise LimitExceeded(f"range of {len(numbers)} items is too long for a template (at most {MAX_WORK})")
    return iter(numbers)


def _size_of(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 1


def _multiply(left: Any, right: Any) -> Any:
    """`*` that refuses to build huge strings or lists before building them."""
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int) and _size_of(seq) * max(count, 0) > MAX_OUTPUT:
            raise LimitExceeded(f"'*' would make a value of more than {MAX_OUTPUT} characters or items")
    return operator.mul(left, right)


def _power(left: Any, right: Any) -> Any:
    if isinstance(right, (int, float)) and abs(right) > 64 and isinstance(left, (int, float)) and abs(left) > 1:
        raise LimitExceeded("'**' with an exponent above 64 is too large for a template")
    return operator.pow(left, right)


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_numbers([left], "'%' formatting", formats=True)
        _check_numbers(right if isinstance(right, tuple) else (right,), "'%' formatting")
    return _check_size(operator.mod(left, right), "'%' formatting")


def _check_str_method(text: str, method: str, args: tuple) -> None:
    """String methods whose result can be far larger than their inputs, estimated first."""
    numbers = [a for a in args if isinstance(a, int)]
    if method == "expandtabs" and text.count("\t") * (numbers[0] if numbers else 8) > MAX_OUTPUT:
        raise LimitExceeded(f"str.expandtabs would make more than {MAX_OUTPUT} characters")
    if method == "join" and args and hasattr(args[0], "__len__") and len(args[0]) * len(text) > MAX_OUTPUT:
        raise LimitExceeded(f"str.join would make more than {MAX_OUTPUT} characters")
    if method == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        _check_replace_join("replace", [text, *args])
    if method in ("format", "format_map"):
        _check_numbers([text], "str.format", formats=True)


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses huge numeric arguments and huge results."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not isinstance(a, (jinja2.runtime.Context, nodes.EvalContext, jinja2.Environment))]
        _check_numbers([*values[1:], *kwargs.values()], f"filter '{name}'")
        if name == "format" and values:
            _check_numbers(values[:1], "filter 'format'", formats=True)
        if name in ("replace", "join"):
            _check_replace_join(name, values)
        _spend()
        return _check_size(function(*args, **kwargs), f"filter '{name}'")

    return guarded


def _check_replace_join(name: str, values: list[Any]) -> None:
    """Estimate the result before making it: both can multiply their input's size."""
    if name == "join" and values:
        items = values[0]
        separator = values[1] if len(values) > 1 and isinstance(values[1], str) else ""
        count = len(items) if hasattr(items, "__len__") else 0
        if count * len(separator) > MAX_OUTPUT:
            raise LimitExceeded(f"filter 'join' would make more than {MAX_OUTPUT} characters")
    if name == "replace" and len(values) >= 3 and all(isinstance(v, str) for v in values[:3]):
        text, old, new = (str(v) for v in values[:3])
        hits = text.count(old) if old else len(text) + 1
        if len(text) + hits * len(new) > MAX_OUTPUT:
            raise LimitExceeded(f"filter 'replace' would make more than {MAX_OUTPUT} characters")


class StacksEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed, strict (undefined variables are errors), no HTML escaping, with limits."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, loader: jinja2.BaseLoader | None = None):
        super().__init__(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                         autoescape=False, cache_size=4096)
        self.globals["range"] = _guarded_range
        for name in _GROWING_FILTERS:
            if name in self.filters:
                self.filters[name] = _guard_filter(name, self.filters[name])

    def call_binop(self, context: jinja2.runtime.Context, operator_: str, left: Any, right: Any) -> Any:
        _spend()
        if operator_ == "*":
            return _multiply(left, right)
        if operator_ == "**":
            return _power(left, right)
        if operator_ == "%":
            return _modulo(left, right)
        return _check_size(super().call_binop(context, operator_, left, right), f"'{operator_}'")

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend()
        _check_numbers([*args, *kwargs.values()], "call")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(__obj, "__name__", ""), args)
        return _check_size(ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs), "call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`'{:>9999999}'.format(...)`: the width is refused before the string is made."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_numbers([value.__self__], "str.format", formats=True)
        return wrapped

    def guard_concat(self, parts: list[Any]) -> str:
        """What `~` compiles to: the joined length is checked before joining."""
        _spend()
        texts = [str(part) for part in parts]
        if sum(map(len, texts)) > MAX_OUTPUT:
            raise LimitExceeded(f"'~' would make a value of more than {MAX_OUTPUT} characters")
        return "".join(texts)

    def guard_iter(self, iterable: Any) -> Iterator[Any]:
        """What every `for` loop iterates: each item costs one step of the budget."""
        for item in iterable:
            _spend()
            yield item

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        """Route every `for` loop's iterable through `guard_iter`, and `~` through `guard_concat`."""
        return super()._generate(_Guards().visit(source), name, filename, defer_init=defer_init)


class _Guards(NodeTransformer):
    """Rewrites a parsed template so loops and `~` reach the environment's guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (visitor naming)
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("guard_iter"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("guard_concat"), [nodes.List(node.nodes, lineno=node.lineno)],
                          [], None, None, lineno=node.lineno)


def make_environment(loader: jinja2.BaseLoader | None = None) -> StacksEnvironment:
    """The environment for templates loaded by name (fragments); every other template uses `STRINGS`."""
    return StacksEnvironment(loader)


#: the environment for the short templates of stacks.yaml (names, tags, build args, params, base fields)
STRINGS = make_environment()


def render(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render with the work budget and output limit; every failure is a `TemplateFailure` with its line."""
    token = _BUDGET.set(_Budget())
    try:
        return _render_chunks(template, context)
    except TemplateFailure:
        raise
    except jinja2.UndefinedError as exc:
        raise TemplateFailure(exc.message or str(exc), _line_of(exc, template)) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateFailure(f"syntax error: {exc.message}", exc.lineno) from None
    except jinja2.TemplateError as exc:
        raise TemplateFailure(str(exc), _line_of(exc, template)) from None
    except RecursionError as exc:
        raise TemplateFailure("template recursion is too deep", _line_of(exc, template)) from None
    except Exception as exc:  # a template is user code: 1/0, int('x'), a failing method...
        raise TemplateFailure(f"{type(exc).__name__}: {exc}", _line_of(exc, template)) from None
    finally:
        _BUDGET.reset(token)


def _render_chunks(template: jinja2.Template, context: dict[str, Any]) -> str:
    """`template.render` without copying the globals into a fresh parent scope (half its cost),
    stopping as soon as the output passes `MAX_OUTPUT`."""
    environment = template.environment
    try:
        variables = {**template.globals, **context}
        chunks, size = [], 0
        for chunk in template.root_render_func(template.new_context(variables, shared=True)):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise LimitExceeded(f"template output is longer than {MAX_OUTPUT} characters")
            chunks.append(chunk)
        return environment.concat(chunks)
    except Exception:
        environment.handle_exception()  # re-raises with the traceback rewritten to template lines
        raise


def _line_of(exc: BaseException, template: jinja2.Template) -> int | None:
    """The template line being rendered when `exc` was raised (Jinja keeps it in the traceback)."""
    filename = template.filename or "<template>"
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# --- short templates from stacks.yaml ---------------------------------------------

_SIMPLE = re.compile(r"\{\{\s*([A-Za-z][\w]*(?:\.[A-Za-z][\w]*)?)\s*\}\}")
_MISSING = object()


def render_text(template: str, context: dict[str, Any]) -> str:
    """Render a short template from stacks.yaml (names, tags, params, base fields).

    Most are plain substitutions like "{{ os.python }}"; those skip Jinja's per-call context
    set-up (the dominant cost of planning a large matrix). Anything else, and any name that
    does not resolve, goes through the sandbox, which also produces the error message.
    As in Jinja's default, one trailing newline of the template is not part of the output.
    """
    if "{" not in template:
        return template
    if "{%" not in template and "{#" not in template and template.count("{{") == len(_SIMPLE.findall(template)):
        parts: list[str] = []
        position = 0
        for match in _SIMPLE.finditer(template):
            value = _lookup(context, match.group(1))
            if value is _MISSING or value is None:
                break
            parts += [template[position:match.start()], str(value)]
            position = match.end()
        else:
            return "".join(parts) + template[position:]
    return render(compile_text(template), context)


def _lookup(context: dict[str, Any], dotted: str) -> Any:
    name, _, attribute = dotted.partition(".")
    value = context.get(name, _MISSING)
    if value is _MISSING or not attribute:
        return value
    found = getattr(value, attribute, _MISSING)
    if found is _MISSING and isinstance(value, dict):
        found = value.get(attribute, _MISSING)
    return found if isinstance(found, (str, int, float)) and not isinstance(found, bool) else _MISSING


@functools.lru_cache(maxsize=4096)
def compile_text(template: str) -> jinja2.Template:
    """Compiling is ~100x dearer than rendering, and a matrix renders the same few templates per variant.
    Raises TemplateFailure for a syntax error."""
    source = template[:-2] if template.endswith("\r\n") else template[:-1] if template.endswith("\n") else template
    try:
        return STRINGS.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateFailure(f"syntax error: {exc.message}", exc.lineno) from None


@functools.lru_cache(maxsize=4096)
def template_variables(template: str) -> frozenset[str]:
    """The variables a template reads; none for a template with a syntax error (rendering reports it)."""
    if "{" not in template:
        return frozenset()
    try:
        return frozenset(meta.find_undeclared_variables(STRINGS.parse(template)) - set(STRINGS.globals))
    except jinja2.TemplateSyntaxError:
        return frozenset()

