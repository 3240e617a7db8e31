package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/probe"
)

// TestProbe runs bulkhead probe, with openapi.json and the credentials
// of the two pool tenants, against the real service, on which it must
// find nothing and cover every operation, and against the broken
// variant, on which it must find each of its three defects and nothing
// else.
func TestProbe(t *testing.T) {
	doc, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	w, brokenURL := newBrokenWorld(t)
	run := func(t *testing.T, base string) *probe.Report {
		t.Helper()
		rep, err := probe.Run(t.Context(), probe.Config{Document: doc, DocumentName: "openapi.json", BaseURL: base,
			Identities: []probe.Identity{{Label: "a", Tenant: poolA, Token: w.tokens[poolA]}, {Label: "b", Tenant: poolB, Token: w.tokens[poolB]}}})
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		var text bytes.Buffer
		rep.WriteText(&text)
		var js bytes.Buffer
		if err := rep.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		for who, tok := range w.tokens {
			if strings.Contains(text.String(), tok) || strings.Contains(js.String(), tok) {
				t.Fatalf("the probe's report holds %s's token", who)
			}
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the probe's report:\n%s", text.String())
			}
		})
		if rep.Incomplete != "" {
			t.Errorf("the run is incomplete: %s", rep.Incomplete)
		}
		if rep.Objects != 2 {
			t.Errorf("the probe made %d notes, want one per tenant", rep.Objects)
		}
		return rep
	}

	t.Run("the real service", func(t *testing.T) {
		rep := run(t, w.url)
		for _, f := range rep.Findings {
			t.Errorf("finding %s on %s (%s's, by %s): %s", f.Rule, f.Operation, f.Owner, f.Attacker, f.Why)
		}
		for _, s := range rep.Skipped {
			t.Errorf("not covered: %s: %s", s.Operation, s.Reason)
		}
		if rep.Operations != 4 || rep.Probed != rep.Operations {
			t.Errorf("probed %d of %d operations, want all 4", rep.Probed, rep.Operations)
		}
	})

	t.Run("the broken variant", func(t *testing.T) {
		rep := run(t, brokenURL)
		want := []string{
			probe.RuleCrossTenantRead + " GET /notes/{id}",    // defect (a)
			probe.RuleListLeak + " GET /notes",                // defect (b)
			probe.RuleExistenceOracle + " DELETE /notes/{id}", // defect (c)
		}
		var got []string
		for _, f := range rep.Findings {
			k := f.Rule + " " + f.Operation
			if !slices.Contains(want, k) {
				t.Errorf("a finding that is no defect of the variant: %s (%s's, by %s): %s", k, f.Owner, f.Attacker, f.Why)
			}
			got = append(got, k)
		}
		for _, k := range want {
			if !slices.Contains(got, k) {
				t.Errorf("missed: %s", k)
			}
		}
	})
}
