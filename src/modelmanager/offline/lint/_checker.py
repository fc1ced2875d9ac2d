"""The walk over one module: it binds names as Python would, and asks every rule about every call."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable

from modelmanager.offline.lint._findings import Finding, _Hit, _Raw
from modelmanager.offline.lint._values import (
    _UNKNOWN,
    _canonical,
    _concat,
    _Names,
    _operands,
    _Scope,
    _Value,
)
from modelmanager.offline.lint.http import check_http
from modelmanager.offline.lint.hub import check_hub_download, check_hub_model_id
from modelmanager.offline.lint.timm_clip import check_clip_load, check_timm_pretrained
from modelmanager.offline.lint.torch_hub import check_torch_hub

#: A rule: what it says about a call to ``qualname`` (None: not an imported name).
_Check = Callable[[ast.Call, str | None, _Names], _Hit | None]

_CHECKS: tuple[_Check, ...] = (
    check_hub_model_id,
    check_hub_download,
    check_torch_hub,
    check_timm_pretrained,
    check_clip_load,
    check_http,
)

_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


class _Checker(ast.NodeVisitor):
    """Walks one module in source order, keeping an alias table per scope.

    Function bodies are checked after the module (as Python runs them: later),
    so they see names bound anywhere at module level.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw: list[_Raw] = []
        self.names = _Names()
        self._deferred: deque[tuple[list[_Scope], _FunctionNode]] = deque()

    def run(self, tree: ast.Module) -> list[_Raw]:
        self.visit(tree)
        while self._deferred:
            scopes, function = self._deferred.popleft()
            outer, self.names.scopes = self.names.scopes, scopes
            for statement in function.body:
                self.visit(statement)
            self.names.scopes = outer
        return self.raw

    # -- names ---------------------------------------------------------------

    def _assign(self, target: ast.expr, value: _Value) -> None:
        if isinstance(target, ast.Name):
            self.names.bind(target.id, value)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._assign(element, _UNKNOWN)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, _UNKNOWN)
        else:
            self.visit(target)  # attribute or subscript: not followed

    def _push(self, kind: str) -> None:
        self.names.scopes.append(_Scope(kind))

    def _pop(self) -> None:
        self.names.scopes.pop()

    def _bind_arguments(self, arguments: ast.arguments) -> None:
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        for argument in every:
            self.names.bind(argument.arg, _UNKNOWN)

    # -- statements that bind names ---------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.names.bind(alias.asname, _Value(qualname=_canonical(alias.name)))
            else:
                top = alias.name.partition(".")[0]
                self.names.bind(top, _Value(qualname=top))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            local = alias.asname or alias.name
            if node.level or not node.module:
                self.names.bind(local, _UNKNOWN)  # our own package, not a library
            else:
                self.names.bind(local, _Value(qualname=_canonical(f"{node.module}.{alias.name}")))

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        value = self.names.evaluate(node.value)
        for target in node.targets:
            self._assign(target, value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self._assign(node.target, self.names.evaluate(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            before = self.names.lookup(node.target.id) or _UNKNOWN
            grown = (
                _concat([before, self.names.evaluate(node.value)])
                if isinstance(node.op, ast.Add)
                else _UNKNOWN
            )
            self.names.bind(node.target.id, grown)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._assign(node.target, self.names.evaluate(node.value))

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._assign(node.target, _UNKNOWN)
        for statement in (*node.body, *node.orelse):
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._assign(item.optional_vars, self.names.evaluate(item.context_expr))
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.names.bind(node.name, _UNKNOWN)
        for statement in node.body:
            self.visit(statement)

    def visit_FunctionDef(self, node: _FunctionNode) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)  # defaults run now
        self.names.bind(node.name, _UNKNOWN)
        scope = _Scope("function")
        chain = [s for s in self.names.scopes if s.kind != "class"] + [scope]
        outer, self.names.scopes = self.names.scopes, chain
        self._bind_arguments(node.args)
        self.names.scopes = outer
        self._deferred.append((chain, node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._push("function")
        self._bind_arguments(node.args)
        self.visit(node.body)
        self._pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        self._push("class")
        for statement in node.body:
            self.visit(statement)
        self._pop()
        self.names.bind(node.name, _UNKNOWN)

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        self._push("function")
        for generator in node.generators:
            self.visit(generator.iter)
            self._assign(generator.target, _UNKNOWN)
            for condition in generator.ifs:
                self.visit(condition)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self._pop()

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension

    # -- calls ------------------------------------------------------------------

    def visit_BinOp(self, node: ast.BinOp) -> None:
        for term in _operands(node):  # a loop, not recursion: generated code chains hundreds
            self.visit(term)

    def visit_Call(self, node: ast.Call) -> None:
        callee = self.names.evaluate(node.func).qualname
        qualname = None if callee is None else _canonical(callee)
        for check in _CHECKS:
            hit = check(node, qualname, self.names)
            if hit is not None:
                self._report(node, *hit)
        self.generic_visit(node)

    def _report(self, node: ast.Call, rule: str, why: str) -> None:
        end = node.end_lineno or node.lineno
        func_end = node.func.end_lineno or node.lineno
        finding = Finding(
            self.path, node.lineno, node.col_offset + 1, rule, ast.unparse(node.func), why
        )
        allow = frozenset({*range(node.lineno, func_end + 1), end})
        self.raw.append(_Raw(finding, allow, node.lineno - 1))
