package rlslint

import (
	"strconv"
	"strings"
)

// A token of a policy expression as pg_get_expr prints it.
type token struct {
	kind tokenKind
	text string // a string literal's value, a quoted identifier's name, or the token as written
}

type tokenKind uint8

const (
	tokWord   tokenKind = iota // a bare identifier or keyword
	tokQuoted                  // a "quoted identifier"
	tokString                  // a 'string literal' (also E'…')
	tokNumber
	tokPunct // ( ) [ ] , . ::
	tokOp    // any other operator: = <> || …
)

// tokenize splits a deparsed expression into tokens. It reports false on
// text it cannot read (an unterminated literal or identifier): such an
// expression is not one the lint can vouch for.
func tokenize(s string) ([]token, bool) {
	var ts []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || (c == 'E' || c == 'e') && i+1 < len(s) && s[i+1] == '\'':
			if c != '\'' {
				i++
			}
			v, n, ok := quoted(s[i:], '\'')
			if !ok {
				return nil, false
			}
			ts = append(ts, token{tokString, v})
			i += n
		case c == '"':
			v, n, ok := quoted(s[i:], '"')
			if !ok {
				return nil, false
			}
			ts = append(ts, token{tokQuoted, v})
			i += n
		case isWordStart(c):
			j := i + 1
			for j < len(s) && isWordPart(s[j]) {
				j++
			}
			ts = append(ts, token{tokWord, s[i:j]})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E') {
				j++
			}
			ts = append(ts, token{tokNumber, s[i:j]})
			i = j
		case c == ':' && i+1 < len(s) && s[i+1] == ':':
			ts = append(ts, token{tokPunct, "::"})
			i += 2
		case c == ';':
			return nil, false // not in an expression pg_get_expr prints
		case strings.IndexByte("()[],.", c) >= 0:
			ts = append(ts, token{tokPunct, s[i : i+1]})
			i++
		default:
			j := i + 1
			for j < len(s) && strings.IndexByte("+-*/<>=~!@#%^&|`?:", s[j]) >= 0 {
				j++
			}
			ts = append(ts, token{tokOp, s[i:j]})
			i = j
		}
	}
	return ts, true
}

// quoted reads a literal or identifier that starts with q at s[0], where
// a doubled q stands for one. Backslashes are not escapes (standard
// strings; pg_get_expr prints E'…' only with doubled backslashes, which a
// setting name never holds).
func quoted(s string, q byte) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != q {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == q {
			b.WriteByte(q)
			i++
			continue
		}
		return b.String(), i + 1, true
	}
	return "", 0, false
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isWordPart(c byte) bool { return isWordStart(c) || c >= '0' && c <= '9' || c == '$' }

func (t token) is(kind tokenKind, text string) bool { return t.kind == kind && t.text == text }

// keyword reports whether t is the bare keyword kw (ASCII, any case).
func (t token) keyword(kw string) bool { return t.kind == tokWord && asciiEqualFold(t.text, kw) }

// asciiEqualFold compares ASCII case-insensitively, as PostgreSQL compares
// keywords and setting names: strings.EqualFold would also fold non-ASCII
// letters (the Kelvin sign to k), which PostgreSQL keeps apart.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// restrictsToTenant reports whether a policy expression, as pg_get_expr
// prints it, limits rows to the tenant of the setting: whether it is a
// conjunction (AND at its top level, no OR) of which one term is exactly
// column = current_setting('setting'[, missing_ok]), either way round,
// with parentheses and casts allowed around either side. Anything it does
// not recognise counts as not restricting: the lint would rather flag a
// sound policy written in an unusual way than pass one that `OR true`, a
// CASE or a BETWEEN opens to every tenant. A mere mention of the setting
// is not enough for the same reason.
func restrictsToTenant(expr, column, setting string) bool {
	ts, ok := tokenize(expr)
	return ok && balanced(ts) && conjunctionRestricts(ts, column, setting)
}

// conjunctionRestricts is restrictsToTenant on tokens: ts is the tenant
// comparison, or an AND of terms one of which restricts.
func conjunctionRestricts(ts []token, column, setting string) bool {
	ts = unwrap(ts)
	if isTenantComparison(ts, column, setting) {
		return true
	}
	terms, ok := conjuncts(ts)
	if !ok || len(terms) < 2 {
		return false
	}
	for _, term := range terms {
		if conjunctionRestricts(term, column, setting) {
			return true
		}
	}
	return false
}

// conjuncts splits ts at its top-level ANDs. It reports false if ts is
// not a plain conjunction: OR binds looser than AND, and CASE and BETWEEN
// hold ANDs of their own that are not the policy's.
func conjuncts(ts []token) ([][]token, bool) {
	start, ok := 0, true
	var terms [][]token
	topLevel(ts, func(i int, t token) bool {
		switch {
		case t.keyword("or") || t.keyword("case") || t.keyword("between"):
			ok = false
		case t.keyword("and"):
			terms = append(terms, ts[start:i])
			start = i + 1
		}
		return ok
	})
	if !ok {
		return nil, false
	}
	return append(terms, ts[start:]), true
}

// topLevel calls fn with each token of ts outside any brackets (the
// brackets themselves excepted) and its index, until fn returns false.
func topLevel(ts []token, fn func(i int, t token) bool) {
	depth := 0
	for i, t := range ts {
		switch {
		case t.is(tokPunct, "(") || t.is(tokPunct, "["):
			depth++
		case t.is(tokPunct, ")") || t.is(tokPunct, "]"):
			depth--
		case depth == 0 && !fn(i, t):
			return
		}
	}
}

// balanced reports whether the brackets of ts nest properly.
func balanced(ts []token) bool {
	var stack []string
	for _, t := range ts {
		switch {
		case t.is(tokPunct, "("):
			stack = append(stack, ")")
		case t.is(tokPunct, "["):
			stack = append(stack, "]")
		case t.is(tokPunct, ")") || t.is(tokPunct, "]"):
			if len(stack) == 0 || stack[len(stack)-1] != t.text {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}

// closing returns the index of the bracket that closes the one at ts[i]
// (ts balanced).
func closing(ts []token, i int) int {
	depth := 0
	for j := i; j < len(ts); j++ {
		switch {
		case ts[j].is(tokPunct, "(") || ts[j].is(tokPunct, "["):
			depth++
		case ts[j].is(tokPunct, ")") || ts[j].is(tokPunct, "]"):
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// unwrap strips parentheses around the whole of ts and casts at its end
// (x::text, (x)::character varying(63)), as many as there are.
func unwrap(ts []token) []token {
	for {
		switch {
		case len(ts) >= 2 && ts[0].is(tokPunct, "(") && closing(ts, 0) == len(ts)-1:
			ts = ts[1 : len(ts)-1]
		case castAt(ts) > 0:
			ts = ts[:castAt(ts)]
		default:
			return ts
		}
	}
}

// castAt returns the index of a top-level "::" after which ts holds only a
// type name, or -1.
func castAt(ts []token) int {
	at := -1
	topLevel(ts, func(i int, t token) bool {
		if t.is(tokPunct, "::") {
			at = i
		}
		return true
	})
	if at <= 0 || !isTypeName(ts[at+1:]) || cutsValue(ts[at+1:]) {
		return -1
	}
	return at
}

// maxTenantID is the longest tenant id, in characters.
const maxTenantID = 63

// cutsValue reports whether a cast to the type name ts can cut a tenant
// id short, so that a comparison through it matches a prefix: "char"
// (one byte), bare character (character(1)), and any type whose first
// modifier is below the longest tenant id (character varying(8),
// character(62), bit(8)). Such a cast is not stripped, and the policy is
// refused: x::varchar(8) = 'acme-corp-2'::varchar(8) holds for x =
// 'acme-cor'.
func cutsValue(ts []token) bool {
	name := ts
	for i, t := range ts {
		if t.is(tokPunct, "(") {
			name = ts[:i]
			if i+1 < len(ts) && ts[i+1].kind == tokNumber {
				if n, err := strconv.Atoi(ts[i+1].text); err != nil || n < maxTenantID {
					return true
				}
			}
			break
		}
	}
	last := name[len(name)-1]
	switch {
	case last.kind == tokQuoted:
		return last.text == "char"
	case len(name) == len(ts) && (last.keyword("character") || last.keyword("char")):
		return true // character without a length is character(1)
	}
	return false
}

// isTypeName reports whether ts is a type name as pg_get_expr prints one:
// words (character varying, public.tenant_id), then a modifier list of
// numbers and array brackets.
func isTypeName(ts []token) bool {
	i := 0
	for i < len(ts) && (ts[i].kind == tokWord || ts[i].kind == tokQuoted || ts[i].is(tokPunct, ".")) {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(ts); i++ {
		if ts[i].kind != tokNumber && !ts[i].is(tokPunct, "(") && !ts[i].is(tokPunct, ")") &&
			!ts[i].is(tokPunct, ",") && !ts[i].is(tokPunct, "[") && !ts[i].is(tokPunct, "]") {
			return false
		}
	}
	return true
}

// isTenantComparison reports whether ts is exactly column =
// current_setting('setting'…) or the other way round.
func isTenantComparison(ts []token, column, setting string) bool {
	eq, ok := -1, true
	topLevel(ts, func(i int, t token) bool {
		switch {
		case t.kind == tokOp:
			ok = t.text == "=" && eq < 0
			eq = i
		case t.kind == tokWord && !isIdentifierWord(t):
			ok = false // NOT, IS, IN, …
		}
		return ok
	})
	if !ok || eq <= 0 {
		return false
	}
	l, r := unwrap(ts[:eq]), unwrap(ts[eq+1:])
	return isColumn(l, column) && isSettingCall(r, setting) || isColumn(r, column) && isSettingCall(l, setting)
}

// isIdentifierWord reports whether a bare word at the top level of a
// comparison may be a name rather than an operator keyword.
func isIdentifierWord(t token) bool {
	for _, kw := range []string{"not", "is", "in", "like", "ilike", "similar", "distinct", "any", "all", "some",
		"exists", "and", "or", "case", "between", "collate", "at", "overlaps", "isnull", "notnull"} {
		if t.keyword(kw) {
			return false
		}
	}
	return true
}

// isColumn reports whether ts names the tenant column, bare or quoted.
// pg_get_expr prints a column of the policy's own table unqualified.
func isColumn(ts []token, column string) bool {
	return len(ts) == 1 && (ts[0].kind == tokQuoted || ts[0].kind == tokWord) && ts[0].text == column
}

// isSettingCall reports whether ts is current_setting('setting') or
// current_setting('setting', missing_ok), optionally qualified with
// pg_catalog.
func isSettingCall(ts []token, setting string) bool {
	if len(ts) >= 3 && ts[0].is(tokWord, "pg_catalog") && ts[1].is(tokPunct, ".") {
		ts = ts[2:]
	}
	if len(ts) < 4 || !ts[0].is(tokWord, "current_setting") || !ts[1].is(tokPunct, "(") || closing(ts, 1) != len(ts)-1 {
		return false
	}
	args := ts[2 : len(ts)-1]
	comma, ok := -1, true
	topLevel(args, func(i int, t token) bool {
		if t.is(tokPunct, ",") {
			ok = comma < 0
			comma = i
		}
		return ok
	})
	if !ok {
		return false
	}
	name := args
	if comma >= 0 {
		name = args[:comma]
		if flag := unwrap(args[comma+1:]); len(flag) != 1 || !flag[0].keyword("true") && !flag[0].keyword("false") {
			return false
		}
	}
	name = unwrap(name)
	// Setting names are ASCII-case-insensitive to PostgreSQL.
	return len(name) == 1 && name[0].kind == tokString && asciiEqualFold(name[0].text, setting)
}
