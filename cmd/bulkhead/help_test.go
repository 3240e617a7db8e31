package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestGroupHelp: every group of the table (tenant, audit, user, …, policy
// template) answers help, -h and --help with its usage on stdout and exit
// 0, and its usage names each of its verbs. tenant --help used to answer
// "unknown command".
func TestGroupHelp(t *testing.T) {
	t.Setenv("BULKHEAD_ADDR", "http://127.0.0.1:1") // nothing listens: no call may be made
	table := commands()
	groups := 0
	for path, u := range table {
		if u.run != nil {
			continue
		}
		groups++
		for _, h := range []string{"help", "-h", "--help"} {
			args := append(strings.Fields(path), h)
			code, out, errOut := runHere("", args...)
			if code != 0 || out != u.usage+"\n" || errOut != "" {
				t.Errorf("bulkhead %s: exit %d; want 0 and the usage on stdout\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
			}
		}
		// bulkhead help <group> used to print the main usage.
		args := append([]string{"help"}, strings.Fields(path)...)
		if code, out, errOut := runHere("", args...); code != 0 || out != u.usage+"\n" || errOut != "" {
			t.Errorf("bulkhead %s: exit %d; want 0 and the group's usage on stdout\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
		if !strings.HasPrefix(u.usage, "Usage:\n  bulkhead "+path+" ") {
			t.Errorf("the usage of %s does not start with Usage: bulkhead %s:\n%s", path, path, u.usage)
		}
		for verb := range table {
			if name, ok := strings.CutPrefix(verb, path+" "); ok && !strings.Contains(name, " ") && !strings.Contains(u.usage, name) {
				t.Errorf("the usage of %s does not name its command %s", path, name)
			}
		}
	}
	if groups < 14 {
		t.Errorf("%d groups in the table; want tenant, audit, user, group, client, policy (and its template, schema, store), key, kms, function, connection (and grant)", groups)
	}
}

// TestVerbHelpAndFlagErrors: every verb answers --help with its group's
// usage and its own flags on stderr, exit 0; and a flag it does not define
// with the error once, exit 2 (the flag package printed it, then the whole
// usage, then run printed it again).
func TestVerbHelpAndFlagErrors(t *testing.T) {
	t.Setenv("BULKHEAD_ADDR", "http://127.0.0.1:1")
	t.Setenv("BULKHEAD_TOKEN", "unused-token-0123456789abcdef")
	for path, u := range commands() {
		if u.run == nil || strings.HasPrefix(path, "-") || path == "help" || path == "version" || path == "hash-worker" {
			continue // a group, or a verb that takes no flags
		}
		args := strings.Fields(path)
		code, out, errOut := runHere("", append(args, "--help")...)
		if code != 0 || out != "" || !strings.Contains(errOut, "Usage") || !strings.Contains(errOut, "  -") {
			t.Errorf("bulkhead %s --help: exit %d; want 0 and usage with flags on stderr\nstdout: %s\nstderr: %s", path, code, out, errOut)
		}
		code, out, errOut = runHere("", append(args, "--bogus")...)
		const msg = "flag provided but not defined: -bogus"
		if code != 2 || out != "" || strings.Count(errOut, msg) != 1 || strings.Contains(errOut, "Usage") {
			t.Errorf("bulkhead %s --bogus: exit %d; want 2 and the error once, without the usage\nstdout: %s\nstderr: %s", path, code, out, errOut)
		}
		if !strings.Contains(errOut, "bulkhead "+path+" --help") {
			t.Errorf("bulkhead %s --bogus does not say where the flags are:\n%s", path, errOut)
		}
	}
}

// TestNoTokenNamesTheFallback: without a token the message names both
// variables the CLI reads.
func TestNoTokenNamesTheFallback(t *testing.T) {
	t.Setenv("BULKHEAD_ADDR", "http://127.0.0.1:1")
	t.Setenv("BULKHEAD_TOKEN", "")
	t.Setenv("BULKHEAD_ADMIN_TOKEN", "")
	code, _, errOut := runHere("", "tenant", "list")
	if code != 2 || !strings.Contains(errOut, "BULKHEAD_TOKEN") || !strings.Contains(errOut, "BULKHEAD_ADMIN_TOKEN") || !strings.Contains(errOut, "--token") {
		t.Errorf("tenant list without a token: exit %d\n%s", code, errOut)
	}
}

// TestTenantDomainSpellings: tenant create and update take --domain and
// --domains alike, repeated or comma-separated; update sends [] for
// --domain "" and no domains at all when neither is given.
func TestTenantDomainSpellings(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]json.RawMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
		}
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"acme","name":"Acme","tier":"basic","status":"active"}`)
	}))
	defer srv.Close()
	t.Setenv("BULKHEAD_ADDR", srv.URL)
	t.Setenv("BULKHEAD_TOKEN", "unused-token-0123456789abcdef")
	for _, c := range []struct {
		args []string
		want string // the request's domains, "" for none sent
	}{
		{[]string{"tenant", "create", "acme", "--domain", "a.example"}, `["a.example"]`},
		{[]string{"tenant", "create", "acme", "--domain", "a.example", "--domain", "b.example"}, `["a.example","b.example"]`},
		{[]string{"tenant", "create", "acme", "--domains", "a.example, b.example", "--domain", "c.example"}, `["a.example","b.example","c.example"]`},
		{[]string{"tenant", "create", "acme"}, ""},
		{[]string{"tenant", "update", "acme", "--domains", "a.example,b.example"}, `["a.example","b.example"]`},
		{[]string{"tenant", "update", "acme", "--domain", "a.example", "--domain", "b.example"}, `["a.example","b.example"]`},
		{[]string{"tenant", "update", "acme", "--domain", ""}, `[]`},
		{[]string{"tenant", "update", "acme", "--name", "Acme"}, ""},
	} {
		mu.Lock()
		bodies = nil
		mu.Unlock()
		code, _, errOut := runHere("", c.args...)
		mu.Lock()
		got := slices.Clone(bodies)
		mu.Unlock()
		if code != 0 || len(got) != 1 {
			t.Errorf("bulkhead %s: exit %d, %d requests\n%s", strings.Join(c.args, " "), code, len(got), errOut)
			continue
		}
		if d := string(got[0]["domains"]); d != c.want {
			t.Errorf("bulkhead %s sent domains %s; want %s", strings.Join(c.args, " "), d, c.want)
		}
	}
}
