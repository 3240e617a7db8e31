package rlslint

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Report is the JSON form of a lint's result.
type Report struct {
	Findings []Finding `json:"findings"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
}

// NewReport counts findings by severity.
func NewReport(fs []Finding) Report {
	r := Report{Findings: fs}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, f := range fs {
		if f.Severity == Error {
			r.Errors++
		} else {
			r.Warnings++
		}
	}
	return r
}

// WriteJSON writes the report as one JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes one line per finding (severity, code, object, detail,
// remedy) and a summary line. Names come from the database and may hold
// anything, a newline included: printed as they are, a table's name could
// forge a line of the report or a terminal escape, so every character
// that is not printable is written as a Go escape.
func (r Report) WriteText(w io.Writer) error {
	for _, f := range r.Findings {
		if _, err := fmt.Fprintf(w, "%-7s %s %s: %s; fix: %s\n",
			f.Severity, f.Code, printable(f.Object), printable(f.Detail), printable(f.Remedy)); err != nil {
			return err
		}
	}
	var err error
	switch {
	case len(r.Findings) == 0:
		_, err = fmt.Fprintln(w, "no findings")
	default:
		_, err = fmt.Fprintf(w, "%d %s, %d %s\n", r.Errors, plural(r.Errors, "error"), r.Warnings, plural(r.Warnings, "warning"))
	}
	return err
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// printable escapes what a terminal would not show as itself.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r != ' ' && !unicode.IsGraphic(r) || r == unicode.ReplacementChar }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == ' ' || unicode.IsGraphic(r) && r != unicode.ReplacementChar {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}
