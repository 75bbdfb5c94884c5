"""Just enough of ClickHouse's SQL lexer to route a statement without parsing it.

The engine parses every statement itself; the front only needs to know, before
it runs anything:
  * whether the text is `INSERT ... FORMAT <fmt>` / `INSERT ... VALUES`, and
    where its data starts (ClickHouse reads `query` + "\\n" + body as one
    stream, so the data may begin inside the query text): parse_insert_head
  * the first keyword (is it read-only, for GET and `readonly`), an output
    `FORMAT` clause (the X-ClickHouse-Format header) and whether a second
    statement follows (refused, as on a real server): inspect_query
Both walk tokens with next_token, which knows ClickHouse's comments, quoted
strings/identifiers and heredocs, so a `;` or `FORMAT` inside them is not
mistaken for one in the statement. Also here: quoting values and identifiers
for the SQL the front writes itself.
"""

import re


def sql_string(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"[0-9][0-9A-Za-z_.]*(?:(?<=[eEpP])[+-][0-9]+)?")
_HEREDOC_RE = re.compile(r"\$([A-Za-z0-9_]*)\$")


def next_token(text, pos):
    """The next token of ClickHouse SQL at or after pos, skipping whitespace and
    comments: (kind, value, start, end) with kind word|string|ident|number|punct,
    or None at the end. Quoted strings and identifiers are one token each."""
    n = len(text)
    while pos < n:
        c = text[pos]
        if c in " \t\r\n\f\v":
            pos += 1
        elif text.startswith("--", pos) or (c == "#" and text[pos + 1:pos + 2] in (" ", "!")):
            j = text.find("\n", pos)
            pos = n if j < 0 else j + 1
        elif text.startswith("/*", pos):
            depth, pos = 1, pos + 2
            while pos < n and depth:
                if text.startswith("/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif text.startswith("*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        else:
            break
    if pos >= n:
        return None
    c = text[pos]
    if c in "'\"`":
        j = pos + 1
        while j < n:
            if text[j] == "\\":
                j += 2
            elif text[j] == c:
                if text[j + 1:j + 2] == c:
                    j += 2
                else:
                    break
            else:
                j += 1
        end = min(j + 1, n)
        return ("string" if c == "'" else "ident", text[pos:end], pos, end)
    if c == "$":
        m = _HEREDOC_RE.match(text, pos)
        if m:
            close = text.find(m.group(0), m.end())
            end = n if close < 0 else close + len(m.group(0))
            return ("string", text[pos:end], pos, end)
    m = _WORD_RE.match(text, pos)
    if m:
        return ("word", m.group(0), pos, m.end())
    m = _NUMBER_RE.match(text, pos)
    if m:
        return ("number", m.group(0), pos, m.end())
    return ("punct", c, pos, pos + 1)


def parse_insert_head(text):
    """For `INSERT INTO ... FORMAT <fmt>` or `INSERT INTO ... VALUES` return
    (statement_without_format, fmt, data_start); else None (also for
    INSERT ... SELECT, which is an ordinary query). Data starts after the
    FORMAT name, its spaces/tabs and at most one newline, as in ClickHouse."""
    tok = next_token(text, 0)
    if not tok or tok[0] != "word" or tok[1].upper() != "INSERT":
        return None
    pos, depth, expect_name = tok[3], 0, False
    tok = next_token(text, pos)
    if tok and tok[0] == "word" and tok[1].upper() == "INTO":
        pos = tok[3]
        tok = next_token(text, pos)
        if tok and tok[0] == "word" and tok[1].upper() == "TABLE":
            pos = tok[3]
        expect_name = True
    while True:
        tok = next_token(text, pos)
        if tok is None:
            return None
        kind, val, start, end = tok
        pos = end
        if expect_name:  # the table name may itself be a keyword, e.g. `format`
            expect_name = False
            if kind in ("word", "ident"):
                if val.upper() != "FUNCTION":
                    nxt = next_token(text, pos)
                    while nxt and nxt[1] == ".":
                        nm = next_token(text, nxt[3])
                        if not nm:
                            return None
                        pos = nm[3]
                        nxt = next_token(text, pos)
                continue
        if kind == "punct":
            if val in "([":
                depth += 1
            elif val in ")]":
                depth -= 1
            elif val == ";" and depth == 0:
                return None
            continue
        if kind != "word" or depth:
            continue
        word = val.upper()
        if word in ("SELECT", "WITH", "FROM"):  # INSERT SELECT / FROM INFILE: a plain query
            return None
        if word == "VALUES":
            return text[:start].rstrip(), "Values", end
        if word == "FORMAT":
            fmt = next_token(text, end)
            if not fmt or fmt[0] != "word":
                return None
            j = fmt[3]
            while j < len(text) and text[j] in " \t":
                j += 1
            if text.startswith("\r\n", j):
                j += 2
            elif text.startswith("\n", j):
                j += 1
            return text[:start].rstrip(), fmt[1], j


def inspect_query(text):
    """(first keyword upper-cased, output format of a trailing `FORMAT X
    [SETTINGS ...]` clause or None, offset of a second statement or None)."""
    first, second, depth, pos = None, None, 0, 0
    top = []  # top-level tokens of the first statement: (upper-cased value, as written)
    while True:
        tok = next_token(text, pos)
        if tok is None:
            break
        kind, val, start, pos = tok
        if first is None:
            first = val.upper() if kind == "word" else val
        if kind == "punct" and val in "([{":
            depth += 1
        elif kind == "punct" and val in ")]}":
            depth -= 1
        elif kind == "punct" and val == ";" and depth <= 0:
            nxt = next_token(text, pos)
            if nxt is not None:
                second = nxt[2]
            break
        elif depth == 0:
            top.append((kind, val.upper(), val))
    fmt = None
    for i in range(len(top) - 1):
        if top[i][:2] == ("word", "FORMAT") and top[i + 1][0] == "word" and (
                i + 2 == len(top) or top[i + 2][:2] == ("word", "SETTINGS")):
            fmt = top[i + 1][2]
    return first, fmt, second


READ_ONLY_STATEMENTS = frozenset({
    "SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "SET",
    "USE", "(", "CHECK",
})
