"""Normalising a student's code before it is fingerprinted (:mod:`course.similarity`): what a copier changes
cheaply goes, what carries meaning stays. Each top-level definition is normalised on its own:

1. comments, docstrings, blank lines and layout are dropped: only Python tokens remain;
2. names bound inside the definition (parameters, local variables, loop and comprehension targets, nested
   functions) become ``v1, v2, …`` in order of first use, and the student's own top-level helpers become
   ``ƒ``; what the code reads from outside (``torch.randn``, ``F.mse_loss``, the course's helpers), the
   graded names, attributes (``self.conv``, prescribed by the assignment) and keyword names stay as written;
3. a string becomes ``S`` (a message is cheap to reword) unless it reads like a key (``"alpha_bars"``);
   a number is spelled one way (``1.`` and ``1.0`` alike).

A :class:`Unit` is what is compared for one graded name: the graded definition, then the student's helpers
it calls, sorted by their normalised tokens (so the order of definitions does not matter). Every token keeps
where it came from in the student's text, so that shared runs can be highlighted in the code as written.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from dataclasses import dataclass

HELPER = "ƒ"  # what every helper the student defines is called after normalisation
STRING = "S"  # what a string that is not a key becomes
DROPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
           tokenize.ENCODING, tokenize.ENDMARKER}
FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12 splits f-strings into tokens
FSTRING_END = getattr(tokenize, "FSTRING_END", None)
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Block:
    """One top-level definition as the student wrote it, and its normalised tokens."""

    text: str  # the original lines of the definition
    tokens: list[str]  # normalised tokens, in order
    spans: list[tuple[int, int]]  # per token: its start and end offsets in ``text``


def char_column(line: str, byte_col: int) -> int:
    """``ast`` counts columns in UTF-8 bytes, ``tokenize`` in characters: the character column."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def docstring_nodes(tree: ast.AST) -> list[ast.Expr]:
    """The docstring expressions of a module and of every function and class in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, *DEFINITIONS)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and \
                    isinstance(first.value.value, str):
                found.append(first)
    return found


def bound_names(top: ast.AST) -> set[str]:
    """Names a definition binds inside itself: parameters, assigned and loop names, nested functions (not the
    methods of a class, whose names are the assignment's: ``forward``, ``__init__``)."""
    names, methods = set(), set()
    if isinstance(top, ast.ClassDef):
        methods = {id(n) for n in top.body if isinstance(n, DEFINITIONS)}
    for node in ast.walk(top):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, DEFINITIONS) and node is not top and id(node) not in methods:
            names.add(node.name)
    return names


def rename_positions(tree: ast.AST, lines: list[str], renamed: set[str]) -> set[tuple[int, int]]:
    """(line, character column) of every ``Name`` and parameter whose name is in ``renamed``."""
    positions = set()
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.arg if isinstance(node, ast.arg) else None
        if name in renamed:
            positions.add((node.lineno, char_column(lines[node.lineno - 1], node.col_offset)))
    return positions


def string_token(text: str) -> str:
    """A string literal: itself when it reads like a key (``"alpha_bars"``), else :data:`STRING`."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return STRING
    return repr(value) if isinstance(value, str) and value.isidentifier() else STRING


def number_token(text: str) -> str:
    """A number literal in one spelling (``1.``, ``1.0`` and ``1_0.0e-1`` alike)."""
    try:
        return repr(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return text


@dataclass
class Token:
    """A Python token of a block as written."""

    kind: int  # tokenize's type
    text: str
    start: tuple[int, int]  # (line, character column)
    span: tuple[int, int]  # start and end offsets in the block's text


def code_tokens(text: str, tree: ast.AST) -> list[Token]:
    """The tokens of ``text`` without comments, layout and docstrings; a Python 3.12 f-string as one token."""
    lines = text.splitlines()
    docstrings = [((d.lineno, char_column(lines[d.lineno - 1], d.col_offset)),
                   (d.end_lineno, char_column(lines[d.end_lineno - 1], d.end_col_offset)))
                  for d in docstring_nodes(tree)]
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    offset = lambda pos: starts[pos[0] - 1] + pos[1]  # noqa: E731 - (line, column) → offset in text
    found, fstring = [], None  # fstring: [its first token, nesting depth] while inside one
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if fstring is not None:
            fstring[1] += (tok.type == FSTRING_START) - (tok.type == FSTRING_END)
            if fstring[1] == 0:
                first = fstring[0]
                found.append(Token(tokenize.STRING, text[offset(first.start):offset(tok.end)], first.start,
                                   (offset(first.start), offset(tok.end))))
                fstring = None
        elif tok.type == FSTRING_START:
            fstring = [tok, 1]
        elif tok.type not in DROPPED and not any(a <= tok.start and tok.end <= b for a, b in docstrings):
            found.append(Token(tok.type, tok.string, tok.start, (offset(tok.start), offset(tok.end))))
    return found


def layout_punctuation(tokens: list[Token]) -> set[int]:
    """Indices of tokens a formatter adds or drops: parentheses that are not a call's or a definition's
    (grouping, a tuple, a generator: ``ast.unparse`` writes ``a, b = (x, y)`` and drops redundant ones) and
    a comma before a closing bracket."""
    stack, drop = [], set()
    for i, t in enumerate(tokens):
        if t.kind == tokenize.OP and t.text in "([{":
            stack.append(i)
        elif t.kind == tokenize.OP and t.text in ")]}":
            j = stack.pop()
            drop |= {i - 1} if tokens[i - 1].text == "," else set()
            before = tokens[j - 1] if j else None
            called = before is not None and (before.text in (")", "]") or before.kind == tokenize.STRING or (
                before.kind == tokenize.NAME and not keyword.iskeyword(before.text)))
            drop |= {i, j} if tokens[j].text == "(" and not called else set()
    return drop


def normalise(text: str, graded: set[str], helpers: set[str]) -> Block:
    """The tokens of one top-level definition, normalised as the module docstring says.

    graded: the assignment's graded names (kept as written); helpers: the student's own top-level helpers
    (each becomes :data:`HELPER`). ``text`` must parse.
    """
    tree = ast.parse(text)
    top = tree.body[0] if tree.body else tree
    renamed = (bound_names(top) | helpers) - graded | \
        ({top.name} & helpers if isinstance(top, DEFINITIONS) else set())
    positions = rename_positions(tree, text.splitlines(), renamed)
    tokens = code_tokens(text, tree)
    dropped = layout_punctuation(tokens)
    canonical: dict[str, str] = {}
    words, spans = [], []
    for i, tok in enumerate(tokens):
        word = tok.text
        if i in dropped:
            continue
        if tok.kind == tokenize.NAME and word in renamed and not keyword.iskeyword(word) and \
                (tok.start in positions or (i and tokens[i - 1].text in ("def", "class"))):
            word = HELPER if word in helpers else canonical.setdefault(word, f"v{len(canonical) + 1}")
        elif tok.kind == tokenize.STRING and i and tokens[i - 1].kind == tokenize.STRING:
            words[-1], spans[-1] = STRING, (spans[-1][0], tok.span[1])  # "a" "b" is one string
            continue
        elif tok.kind == tokenize.STRING:
            word = string_token(word)
        elif tok.kind == tokenize.NUMBER:
            word = number_token(word)
        words.append(word)
        spans.append(tok.span)
    return Block(text, words, spans)


@dataclass
class Unit:
    """One source's code of one graded name: the graded definition first, then its helpers, sorted."""

    owner: str  # the submission's name, or "known: <file>"
    name: str  # the graded function or class
    blocks: list[Block]

    @property
    def tokens(self) -> list[str]:
        return [t for b in self.blocks for t in b.tokens]

    def locate(self, index: int) -> tuple[int, int, int]:
        """Token ``index`` of the unit → (block, start, end) in that block's text."""
        for b, block in enumerate(self.blocks):
            if index < len(block.tokens):
                return (b, *block.spans[index])
            index -= len(block.tokens)
        raise IndexError(index)


def top_level(source: str) -> dict[str, str]:
    """Name → original lines of each top-level ``def``, ``class`` and simple assignment of a cell (the last
    one of a name wins, as when the cell runs)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    lines = source.splitlines()
    found = {}
    for node in tree.body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "\n".join(lines[start - 1:node.end_lineno]) + "\n"
        if isinstance(node, DEFINITIONS):
            found[node.name] = text
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = text
    return found


def units_of(extracted, graded: list[str], owner: str) -> dict[str, Unit]:
    """Graded name → its :class:`Unit`, from what :func:`autograder.notebook.extract` found.

    The graded definition is taken from the last answer cell that defines it; the helpers it calls (directly
    or through each other) from any cell the grader kept, except the definitions the assignment provides.
    """
    from autograder.notebook import global_names_used

    answers, helpers = {}, {}
    for cell in extracted.cells:
        if cell.label.startswith("provided after "):
            continue
        defined = top_level(cell.source)
        for name in cell.names:
            if name in defined:
                answers[name] = defined[name]
        helpers.update({n: t for n, t in defined.items() if n not in graded})
    units = {}
    for name, text in answers.items():
        wanted, todo = set(), global_names_used(text) & set(helpers)
        while todo:
            wanted |= todo
            todo = set().union(*(global_names_used(helpers[n]) for n in todo)) & set(helpers) - wanted
        blocks = sorted((normalise(helpers[n], set(graded), wanted) for n in wanted), key=lambda b: b.tokens)
        units[name] = Unit(owner, name, [normalise(text, set(graded), wanted)] + blocks)
    return units
