package migrate

import (
	"fmt"
	"strings"
)

// statement is one top-level statement of a file: its first words
// (upper-cased, at most four) and the line it starts on.
type statement struct {
	words []string
	line  int
}

// split reads sql as PostgreSQL's lexer does, as far as it must to find
// where top-level statements begin: it skips comments (nested /* */ ones
// too), string constants ('…', E'…' with backslash escapes, $tag$…$tag$)
// and quoted identifiers, and does not split the body of a
// CREATE FUNCTION … BEGIN ATOMIC … END at its semicolons. It returns an
// error for a comment, string or identifier that is not closed, which
// PostgreSQL would refuse anyway, but with a position that names the
// file's line.
//
// It exists so that Load can refuse, before anything runs anywhere, the
// statements that would break the promise that a file and its ledger row
// commit together (a COMMIT halfway through a file) or that would carry
// one file's session over to another target on a pooled connection
// (SET ROLE). It does not parse SQL beyond that.
func split(sql string) ([]statement, error) {
	var (
		stmts []statement
		cur   *statement
		depth int // BEGIN ATOMIC … END nesting within a routine's body
		line  = 1
	)
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			start, nest := line, 0
			for {
				if i >= len(sql) {
					return nil, fmt.Errorf("line %d: comment not closed", start)
				}
				switch {
				case strings.HasPrefix(sql[i:], "/*"):
					nest++
					i += 2
				case strings.HasPrefix(sql[i:], "*/"):
					nest--
					i += 2
				default:
					if sql[i] == '\n' {
						line++
					}
					i++
				}
				if nest == 0 {
					break
				}
			}
		case c == ';':
			if depth == 0 {
				cur = nil
			}
			i++
		default:
			if cur == nil {
				stmts = append(stmts, statement{line: line})
				cur = &stmts[len(stmts)-1]
			}
			n, lines, word, err := token(sql, i)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			if word != "" {
				if len(cur.words) < 4 {
					cur.words = append(cur.words, word)
				}
				depth = atomicDepth(cur, word, depth)
			}
			i += n
			line += lines
		}
	}
	return stmts, nil
}

// atomicDepth follows the nesting of a SQL-standard routine body
// (CREATE FUNCTION f() … BEGIN ATOMIC …; …; END), whose semicolons do not
// end the statement: BEGIN and CASE open a level, END closes one.
func atomicDepth(s *statement, word string, depth int) int {
	if !routine(s.words) {
		return depth
	}
	switch {
	case word == "BEGIN":
		return depth + 1
	case word == "CASE" && depth > 0:
		return depth + 1
	case word == "END" && depth > 0:
		return depth - 1
	}
	return depth
}

// routine reports whether a statement that begins with words creates a
// function or procedure.
func routine(words []string) bool {
	if len(words) < 2 || words[0] != "CREATE" {
		return false
	}
	w := words[1]
	if w == "OR" && len(words) == 4 && words[2] == "REPLACE" {
		w = words[3]
	}
	return w == "FUNCTION" || w == "PROCEDURE"
}

// token reads the token at sql[i:] (not a space, comment or ';') and
// returns its length, the newlines in it and, for a word, the word
// upper-cased.
func token(sql string, i int) (n, lines int, word string, err error) {
	c := sql[i]
	switch {
	case (c == 'E' || c == 'e') && i+1 < len(sql) && sql[i+1] == '\'':
		n, lines, err = quoted(sql[i+1:], '\'', true)
		return n + 1, lines, "", err
	case c == '\'':
		n, lines, err = quoted(sql[i:], '\'', false)
		return n, lines, "", err
	case c == '"':
		n, lines, err = quoted(sql[i:], '"', false)
		return n, lines, "", err
	case c == '$':
		if tag, ok := dollarTag(sql[i:]); ok {
			end := strings.Index(sql[i+len(tag):], tag)
			if end < 0 {
				return 0, 0, "", fmt.Errorf("string %s…%s not closed", tag, tag)
			}
			n = len(tag) + end + len(tag)
			return n, strings.Count(sql[i:i+n], "\n"), "", nil
		}
		return 1, 0, "", nil
	case identStart(c):
		j := i + 1
		for j < len(sql) && identPart(sql[j]) {
			j++
		}
		return j - i, 0, strings.ToUpper(sql[i:j]), nil
	default:
		return 1, 0, "", nil
	}
}

// quoted reads a constant or identifier opened by q at s[0]; a doubled q
// stands for itself and, with backslash, \ escapes the next byte.
func quoted(s string, q byte, backslash bool) (n, lines int, err error) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\n':
			lines++
		case '\\':
			if backslash {
				i++
				if i < len(s) && s[i] == '\n' {
					lines++
				}
			}
		case q:
			if i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return i + 1, lines, nil
		}
	}
	if q == '"' {
		return 0, 0, fmt.Errorf("quoted identifier not closed")
	}
	return 0, 0, fmt.Errorf("string constant not closed")
}

// dollarTag returns the tag ($$ or $name$) that opens a dollar-quoted
// string at s[0], if one does ($1 is a parameter, not a tag).
func dollarTag(s string) (string, bool) {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '$':
			return s[:i+1], true
		case identStart(c), i > 1 && c >= '0' && c <= '9':
		default:
			return "", false
		}
	}
	return "", false
}

func identStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func identPart(c byte) bool {
	return identStart(c) || c >= '0' && c <= '9' || c == '$'
}

// refused says why a top-level statement that begins with words may not
// be in a migration file, or "" if it may.
func refused(words []string) string {
	w := func(i int) string {
		if i < len(words) {
			return words[i]
		}
		return ""
	}
	switch w(0) {
	case "BEGIN", "START", "COMMIT", "END", "ABORT":
		return "a file runs in one transaction with its ledger row; it may not begin or end one (" + w(0) + ")"
	case "ROLLBACK":
		if w(1) == "TO" {
			return ""
		}
		return "a file runs in one transaction with its ledger row; it may not roll it back"
	case "PREPARE":
		if w(1) == "TRANSACTION" {
			return "a file runs in one transaction with its ledger row; it may not prepare it"
		}
	case "SET", "RESET":
		what := w(1)
		if what == "LOCAL" || what == "SESSION" && w(2) != "AUTHORIZATION" {
			what = w(2)
		}
		switch {
		case what == "ROLE" || what == "SESSION":
			// SET LOCAL ROLE ends with the transaction; SET ROLE would stay
			// on the pooled connection for the next place.
			if w(1) != "LOCAL" {
				return "a file may not change the session's role (" + strings.Join(words, " ") + "); use SET LOCAL ROLE"
			}
		case what == "SEARCH_PATH" || what == "ALL":
			// The search_path is the place's schema: a file written once
			// for every place that set it would apply them all to one.
			return "a file may not change the search_path (" + strings.Join(words, " ") + "): it is the schema of the place being migrated"
		}
	}
	return ""
}
