"""Which mutants a module has: cosmic-ray's operators, a chosen subset, located.

cosmic-ray offers ~210 operators, most of them every binary or comparison
operator replaced by every other one (``a + b`` becomes ``a & b``, ``a << b``,
...). Those add hundreds of mutants per module that any test kills at once and
that say nothing new, so the default set keeps, for each operator, the one
replacement that models a plausible slip: ``<`` and ``<=`` swapped (an
off-by-one), ``==`` and ``!=``, ``is`` and ``is not``, ``+`` and ``-``, ``and``
and ``or``, ``not`` added or dropped, numbers moved by one, ``True`` and
``False`` swapped, an exception handler that no longer matches, a loop body never
run, ``break`` and ``continue`` swapped, a decorator dropped.

Mutants inside type annotations are skipped: with ``from __future__ import
annotations`` an annotation is never evaluated, so ``int | None`` becoming
``int & None`` is equivalent by construction.

A mutant is named by what a reader can find again after the file changed: the
module, the operator, the stripped source line, and which occurrence of that
operator on an identical line it is (``nth``, from 1). Line numbers are only
shown, never matched.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cosmic_ray.plugins
import parso.python.tree
import parso.tree
from cosmic_ray.ast import ast_nodes, get_ast_from_path
from cosmic_ray.ast.ast_query import ASTQuery
from cosmic_ray.mutating import mutate_code

_CMP = "core/ReplaceComparisonOperator_"
_BIN = "core/ReplaceBinaryOperator_"

#: The default operator set (cosmic-ray names); ``all`` selects every operator.
DEFAULT_OPERATORS: tuple[str, ...] = (
    f"{_CMP}Eq_NotEq",
    f"{_CMP}NotEq_Eq",
    f"{_CMP}Lt_LtE",
    f"{_CMP}LtE_Lt",
    f"{_CMP}Gt_GtE",
    f"{_CMP}GtE_Gt",
    f"{_CMP}Is_IsNot",
    f"{_CMP}IsNot_Is",
    f"{_BIN}Add_Sub",
    f"{_BIN}Sub_Add",
    f"{_BIN}Mul_Div",
    f"{_BIN}Div_Mul",
    f"{_BIN}FloorDiv_Mul",
    f"{_BIN}Mod_FloorDiv",
    f"{_BIN}Pow_Mul",
    f"{_BIN}BitOr_BitAnd",
    f"{_BIN}BitAnd_BitOr",
    f"{_BIN}BitXor_BitOr",
    f"{_BIN}LShift_RShift",
    f"{_BIN}RShift_LShift",
    "core/ReplaceUnaryOperator_Delete_Not",
    "core/ReplaceUnaryOperator_Delete_USub",
    "core/AddNot",
    "core/ReplaceAndWithOr",
    "core/ReplaceOrWithAnd",
    "core/ReplaceTrueWithFalse",
    "core/ReplaceFalseWithTrue",
    "core/ReplaceBreakWithContinue",
    "core/ReplaceContinueWithBreak",
    "core/NumberReplacer",
    "core/ExceptionReplacer",
    "core/ZeroIterationForLoop",
    "core/RemoveDecorator",
)


def short_operator(name: str) -> str:
    """``core/ReplaceComparisonOperator_Lt_LtE`` -> ``ReplaceComparisonOperator_Lt_LtE``."""
    return name.removeprefix("core/")


def operator_names(selection: str) -> tuple[str, ...]:
    """Resolve ``default``, ``all`` or a comma-separated list of operator names.

    Raises ValueError naming the unknown operators, so the CLI can say what to type.
    """
    available = tuple(cosmic_ray.plugins.operator_names())
    if selection == "default":
        return DEFAULT_OPERATORS
    if selection == "all":
        # Operators that need arguments (variable replacers) have no default use.
        return tuple(n for n in available if not cosmic_ray.plugins.get_operator(n).arguments())
    wanted = [w.strip() for w in selection.split(",") if w.strip()]
    names = [w if "/" in w else f"core/{w}" for w in wanted]
    unknown = [w for w, n in zip(wanted, names, strict=True) if n not in available]
    if unknown or not names:
        what = ", ".join(unknown) if unknown else repr(selection)
        raise ValueError(
            f"unknown mutation operator(s) {what}; use 'default', 'all' or names "
            "such as ReplaceComparisonOperator_Lt_LtE,NumberReplacer"
        )
    return tuple(names)


@dataclass(frozen=True)
class Mutant:
    """One mutation of one module: where it is and how to apply it again."""

    module: str  # path relative to the project root, with '/'
    operator: str  # cosmic-ray operator name
    occurrence: int  # cosmic-ray's index among this operator's positions in the module
    line: int
    code: str  # the stripped source line the mutation starts on
    nth: int  # 1-based, among mutants with the same operator and code in the module
    definition: str | None  # the enclosing function or class, for the reader

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What an entry of the equivalents table matches."""
        return (self.module, self.operator, self.code, self.nth)

    @property
    def label(self) -> str:
        """The operator as written in the equivalents table (``Name`` or ``Name#2``)."""
        name = short_operator(self.operator)
        return name if self.nth == 1 else f"{name}#{self.nth}"

    def diff(self, source: str) -> list[str]:
        """The changed lines, ``-``/``+`` prefixed, applying this mutant to ``source``."""
        mutated = mutate_code(source, _operator(self.operator), self.occurrence)
        if mutated is None:
            return []
        lines = difflib.unified_diff(source.splitlines(), mutated.splitlines(), n=0, lineterm="")
        return [ln for ln in lines if ln[:1] in "+-" and ln[:3] not in ("---", "+++")]


def _operator(name: str) -> Any:
    return cosmic_ray.plugins.get_operator(name)()


def _annotation_spans(tree: parso.tree.BaseNode) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Start and end positions of every annotation (parameters, returns, variables)."""
    spans = []
    for node in ast_nodes(tree):
        annotation: parso.tree.NodeOrLeaf | None = None
        if isinstance(node, parso.python.tree.Param | parso.python.tree.Function):
            annotation = node.annotation
        elif getattr(node, "type", None) == "annassign":
            annotation = node.children[1]
        if annotation is not None:
            spans.append((annotation.start_pos, annotation.end_pos))
    return spans


def find_mutants(root: Path, module: str, operators: Sequence[str]) -> list[Mutant]:
    """Every mutant of ``root/module`` for ``operators``, in source order."""
    path = root / module
    tree = get_ast_from_path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    skip = _annotation_spans(tree)
    found: list[tuple[tuple[int, int], str, int, str | None]] = []
    for name in operators:
        operator = _operator(name)
        positions: Iterator[tuple[Any, tuple[int, int]]] = (
            (node, start)
            for node in ast_nodes(tree)
            for start, _end in operator.mutation_positions(node)
        )
        for occurrence, (node, start) in enumerate(positions):
            if any(lo <= start < hi for lo, hi in skip):
                continue
            definition = ASTQuery(node).get_definition_name()
            found.append((start, name, occurrence, definition))
    found.sort(key=lambda item: (item[0], item[1], item[2]))
    seen: Counter[tuple[str, str]] = Counter()
    mutants = []
    for (line, _col), name, occurrence, definition in found:
        code = lines[line - 1].strip()
        seen[(name, code)] += 1
        mutants.append(Mutant(module, name, occurrence, line, code, seen[(name, code)], definition))
    return mutants
