package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Rules: what a finding can be.
const (
	// RuleCrossTenantRead: another tenant's credential read an object or
	// a tenant's collection.
	RuleCrossTenantRead = "cross_tenant_read"
	// RuleCrossTenantWrite: another tenant's credential changed, deleted
	// or acted on an object, or acted in a tenant's name.
	RuleCrossTenantWrite = "cross_tenant_write"
	// RuleUnauthenticated: no credential at all was enough.
	RuleUnauthenticated = "unauthenticated_access"
	// RuleListLeak: a list or search answered to one tenant held another
	// tenant's ids or text.
	RuleListLeak = "list_leak"
	// RuleExistenceOracle: "another tenant's object" and "no such object"
	// got different answers, so a caller can learn which ids exist.
	RuleExistenceOracle = "existence_oracle"
)

// rules describe each rule for the report and SARIF.
var rules = []struct{ ID, Severity, Title, Help string }{
	{RuleCrossTenantRead, "high", "Another tenant's credential reads this tenant's data",
		"Scope every read to the caller's tenant (a tenant-scoped transaction, a tenant column in every query, " +
			"or row-level security) and answer another tenant's object exactly as a missing one (404)."},
	{RuleCrossTenantWrite, "critical", "Another tenant's credential changes this tenant's data",
		"Load the object within the caller's tenant before acting on it; an object of another tenant must be " +
			"answered as missing (404) and left unchanged."},
	{RuleUnauthenticated, "critical", "No credential is needed",
		"Require a credential on every operation the document does not mark public (security: [])."},
	{RuleListLeak, "high", "A list or search shows another tenant's objects",
		"Filter lists and searches by the caller's tenant in the query itself, not after the fact."},
	{RuleExistenceOracle, "medium", "Another tenant's object is answered differently from a missing one",
		"Give another tenant's object the very same answer as an id that does not exist: same status, same body, " +
			"no 403 for 'not yours'."},
}

func ruleSeverity(id string) string {
	for _, r := range rules {
		if r.ID == id {
			return r.Severity
		}
	}
	return "medium"
}

// Exchange is one request and its answer, as a finding shows it. It never
// holds a credential: As names whose credential was sent.
type Exchange struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	As          string `json:"as"` // an identity's label, or "nobody"
	RequestBody string `json:"request_body,omitempty"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	Body        string `json:"body,omitempty"` // the first KiB, credentials masked
}

// Finding is one isolation defect, with the evidence.
type Finding struct {
	Rule      string    `json:"rule"`
	Severity  string    `json:"severity"`
	Operation string    `json:"operation"` // "METHOD /path" of the document
	Owner     string    `json:"owner"`     // whose object or tenant
	Attacker  string    `json:"attacker"`  // who reached it ("nobody": no credential)
	Why       string    `json:"why"`
	Request   Exchange  `json:"request"`
	Compared  *Exchange `json:"compared,omitempty"` // the answer it differs from, for an oracle
}

// Skip is an operation the probe could not (fully) test, and why.
type Skip struct {
	Operation string `json:"operation"`
	Reason    string `json:"reason"`
}

// Report is what a probe run found and covered.
type Report struct {
	Target     string    `json:"target"`
	Document   string    `json:"document"`
	Started    time.Time `json:"started"`
	Duration   float64   `json:"duration_seconds"`
	Operations int       `json:"operations"` // in the document
	Probed     int       `json:"probed"`     // covered: tested, and not listed in Skipped
	Requests   int       `json:"requests"`
	Objects    int       `json:"objects"` // created for the run
	Findings   []Finding `json:"findings"`
	Skipped    []Skip    `json:"skipped"`
	// Incomplete says why the run stopped early (its budget, its
	// deadline, the target going away), if it did.
	Incomplete string `json:"incomplete,omitempty"`
}

func (r *Report) sort() {
	rank := map[string]int{"critical": 0, "high": 1, "medium": 2, "low": 3}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		if d := rank[a.Severity] - rank[b.Severity]; d != 0 {
			return d
		}
		if c := strings.Compare(a.Operation, b.Operation); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	slices.SortStableFunc(r.Skipped, func(a, b Skip) int { return strings.Compare(a.Operation, b.Operation) })
}

// mask replaces each of secrets wherever the report holds text.
func (r *Report) mask(secrets []string) {
	m := func(t *string) { *t = maskSecrets(*t, secrets) }
	exchange := func(e *Exchange) {
		for _, t := range []*string{&e.Method, &e.URL, &e.As, &e.RequestBody, &e.ContentType, &e.Body} {
			m(t)
		}
	}
	for _, t := range []*string{&r.Target, &r.Document, &r.Incomplete} {
		m(t)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		for _, t := range []*string{&f.Rule, &f.Severity, &f.Operation, &f.Owner, &f.Attacker, &f.Why} {
			m(t)
		}
		exchange(&f.Request)
		if f.Compared != nil {
			exchange(f.Compared)
		}
	}
	for i := range r.Skipped {
		m(&r.Skipped[i].Operation)
		m(&r.Skipped[i].Reason)
	}
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a terminal: a summary table, then each
// finding with its evidence, then what was not covered.
//
// Everything the application said (answers, content types, reasons that
// quote them) reaches the terminal with its control characters shown as
// escapes: a hostile application must not be able to move the cursor,
// rewrite earlier lines or set the window title of whoever reads it.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	r.writeText(&b)
	_, err := io.WriteString(w, printable(b.String()))
	return err
}

// printable shows control characters (C0, DEL and C1) other than
// newline and tab as escapes, \x1b for ESC.
func printable(s string) string {
	var b strings.Builder
	for _, c := range s {
		if unicode.IsControl(c) && c != '\n' && c != '\t' {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "probed %s with %s: %d of %d operations covered, %d requests, %d objects created, %.1fs\n",
		r.Target, r.Document, r.Probed, r.Operations, r.Requests, r.Objects, r.Duration)
	if r.Incomplete != "" {
		fmt.Fprintf(w, "INCOMPLETE: %s\n", r.Incomplete)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "no findings")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nSEVERITY\tRULE\tOPERATION\tOWNER\tBY")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Rule, f.Operation, f.Owner, f.Attacker)
		}
		tw.Flush()
		for _, f := range r.Findings {
			fmt.Fprintf(w, "\n%s %s: %s\n  why: %s\n", f.Severity, f.Rule, f.Operation, f.Why)
			writeExchange(w, "sent", f.Request)
			if f.Compared != nil {
				writeExchange(w, "compared with", *f.Compared)
			}
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "\nnot covered (%d):\n", len(r.Skipped))
		for _, s := range r.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.Operation, s.Reason)
		}
	}
}

func writeExchange(w io.Writer, what string, e Exchange) {
	fmt.Fprintf(w, "  %s: %s %s as %s", what, e.Method, e.URL, e.As)
	if e.RequestBody != "" {
		fmt.Fprintf(w, " with %s", e.RequestBody)
	}
	fmt.Fprintf(w, "\n    → %d %s %s\n", e.Status, e.ContentType, e.Body)
}

// WriteSARIF writes the report as SARIF 2.1.0, the format code scanning
// services take. Each finding is a result located in the document at the
// line of its path (where the document has one), so that the defect shows
// next to the route's declaration.
func (r *Report) WriteSARIF(w io.Writer, document []byte) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string            `json:"id"`
		Name             string            `json:"name"`
		ShortDescription msg               `json:"shortDescription"`
		Help             msg               `json:"help"`
		Properties       map[string]any    `json:"properties"`
		DefaultConfig    map[string]string `json:"defaultConfiguration"`
	}
	type region struct {
		StartLine int `json:"startLine"`
	}
	type physical struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
		Region region `json:"region"`
	}
	type location struct {
		PhysicalLocation physical `json:"physicalLocation"`
		LogicalLocations []struct {
			FullyQualifiedName string `json:"fullyQualifiedName"`
		} `json:"logicalLocations"`
	}
	type result struct {
		RuleID              string            `json:"ruleId"`
		Level               string            `json:"level"`
		Message             msg               `json:"message"`
		Locations           []location        `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
		Properties          map[string]any    `json:"properties"`
	}
	var rs []rule
	for _, x := range rules {
		rs = append(rs, rule{ID: x.ID, Name: x.ID, ShortDescription: msg{x.Title}, Help: msg{x.Help},
			Properties:    map[string]any{"security-severity": securitySeverity(x.Severity), "tags": []string{"security", "multi-tenant", "authorization"}},
			DefaultConfig: map[string]string{"level": sarifLevel(x.Severity)}})
	}
	results := []result{}
	for _, f := range r.Findings {
		var loc location
		loc.PhysicalLocation.ArtifactLocation.URI = r.Document
		loc.PhysicalLocation.Region.StartLine = lineOf(document, f.Operation)
		loc.LogicalLocations = append(loc.LogicalLocations, struct {
			FullyQualifiedName string `json:"fullyQualifiedName"`
		}{f.Operation})
		results = append(results, result{RuleID: f.Rule, Level: sarifLevel(f.Severity),
			Message:             msg{fmt.Sprintf("%s: %s (%s %s as %s → %d)", f.Operation, f.Why, f.Request.Method, f.Request.URL, f.Request.As, f.Request.Status)},
			Locations:           []location{loc},
			PartialFingerprints: map[string]string{"bulkheadProbe/v1": f.Rule + " " + f.Operation + " " + f.Attacker},
			Properties:          map[string]any{"owner": f.Owner, "attacker": f.Attacker}})
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "bulkhead probe", "informationUri": "https://github.com/bulkhead-dev/bulkhead", "rules": rs}},
			"results": results,
			"properties": map[string]any{"target": r.Target, "requests": r.Requests, "probed": r.Probed,
				"operations": r.Operations, "incomplete": r.Incomplete},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func sarifLevel(severity string) string {
	switch severity {
	case "critical", "high":
		return "error"
	case "medium":
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score code scanning sorts by.
func securitySeverity(severity string) string {
	switch severity {
	case "critical":
		return "9.5"
	case "high":
		return "8.0"
	case "medium":
		return "5.5"
	}
	return "3.0"
}

// lineOf is the 1-based line of the document where op's path is declared
// (its first quoted occurrence, JSON or YAML), or 1.
func lineOf(document []byte, op string) int {
	_, path, _ := strings.Cut(op, " ")
	text := string(document)
	for _, needle := range []string{`"` + path + `"`, `'` + path + `'`, "\n  " + path + ":", "\n" + path + ":"} {
		if i := strings.Index(text, needle); i >= 0 {
			return strings.Count(text[:i+1], "\n") + 1
		}
	}
	return 1
}
