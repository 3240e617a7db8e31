package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Violation is one rule of axe-core that the page breaks, with the elements
// that break it.
type Violation struct {
	ID      string `json:"id"`     // the rule, e.g. "color-contrast"
	Impact  string `json:"impact"` // "minor", "moderate", "serious" or "critical"
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []Node `json:"nodes"`
}

// Node is an element that breaks a rule.
type Node struct {
	// Target holds the CSS selectors that reach the element, one for each
	// frame or shadow root on the way ("a >>> b" within one).
	Target         []string `json:"target"`
	HTML           string   `json:"html"`
	FailureSummary string   `json:"failureSummary"`
}

// Serious reports whether the violation's impact is "serious" or
// "critical": what the console must not have.
func (v Violation) Serious() bool {
	return v.Impact == "serious" || v.Impact == "critical"
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s <%s>", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n\t%s: %s", strings.Join(n.Target, " "), n.HTML)
	}
	return b.String()
}

// axeRun runs axe-core on the whole document and keeps what a test reports.
const axeRun = `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
	nodes: v.nodes.map(n => ({
		target: n.target.map(s => Array.isArray(s) ? s.join(' >>> ') : String(s)),
		html: n.html, failureSummary: n.failureSummary || '',
	})),
})))`

// Axe injects axe-core into the page in the tab (once per document) and
// returns the page's violations of its rules. Without axe.min.js (see the
// package documentation) it skips the test, or fails it when
// BULKHEAD_REQUIRE_BROWSER=1.
func (b *Browser) Axe(ctx context.Context, t testing.TB) []Violation {
	t.Helper()
	src := b.axeSource(t)
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === 'object'`))
	if err != nil {
		t.Fatalf("browsertest: axe: %v", err)
	}
	if !loaded {
		// The final expression keeps Evaluate from returning axe's module
		// object by value.
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](src+"\n;void 0")); err != nil {
			t.Fatalf("browsertest: injecting axe-core: %v", err)
		}
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]Violation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browsertest: running axe-core: %v", err)
	}
	return vs
}

// RequireNoSerious fails the test for each serious or critical violation
// and logs the others.
func RequireNoSerious(t testing.TB, vs []Violation) {
	t.Helper()
	for _, v := range vs {
		if v.Serious() {
			t.Errorf("accessibility: %v", v)
		} else {
			t.Logf("accessibility (not failing): %v", v)
		}
	}
}

// axeSource returns axe.min.js, read once per Browser.
func (b *Browser) axeSource(t testing.TB) string {
	t.Helper()
	b.axeOnce.Do(func() {
		path := os.Getenv("BULKHEAD_AXE")
		if path == "" {
			path = findAxe()
		}
		if path == "" {
			b.axeErr = "no axe-core: set BULKHEAD_AXE to axe.min.js, or install it with " +
				"npm install --prefix .cache/npm axe-core@<version in .ci/run>"
			return
		}
		src, err := os.ReadFile(path)
		if err != nil {
			b.axeErr = fmt.Sprintf("no axe-core: %v", err)
			return
		}
		b.axeSrc = string(src)
	})
	if b.axeErr != "" {
		missing(t, b.axeErr)
	}
	return b.axeSrc
}

// findAxe looks for the axe.min.js .ci/run installs, in the module's root
// above the working directory (a test's is its package's directory).
func findAxe() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, filepath.FromSlash(axeRelPath))
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}
