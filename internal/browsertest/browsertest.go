// Package browsertest runs a real headless Chromium for the tests of
// Bulkhead's web pages (the console), and checks the pages' accessibility
// with axe-core. It is imported only by _test.go files.
//
// New starts Chromium, the binary BULKHEAD_CHROMIUM names (default
// /usr/bin/chromium); Axe injects axe-core's axe.min.js, the file
// BULKHEAD_AXE names (default: the one .ci/run installs into .cache/npm at
// the module's root). Without either the test is skipped, or, with
// BULKHEAD_REQUIRE_BROWSER=1 (as CI sets), it fails: CI must not pass
// because the browser tests did not run.
//
// # Driving a page
//
// Start one Browser per test and open a Tab for each independent user:
// every tab has a browser context of its own (its own cookies and
// storage, like a private window), so tabs of parallel tests do not share
// sessions, although all cookies of 127.0.0.1 are shared across ports. A
// tab's context ends 30 seconds (TabTimeout) after it opens. Drive it with
// chromedp: Do runs actions that return nothing, Run one that returns a
// value.
//
//	b := browsertest.New(t)
//	tab := b.Tab(t)
//	if err := chromedp.Do(tab,
//		chromedp.Navigate(srv.URL+"/login"),
//		chromedp.SendKeys(chromedp.ID("name"), "ada"),
//		chromedp.Click(chromedp.CSS("button[type=submit]")),
//		chromedp.WaitVisible(chromedp.ID("result")),
//	); err != nil {
//		t.Fatal(err)
//	}
//	got, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("result")))
//	browsertest.RequireNoSerious(t, b.Axe(tab, t))
//	b.Screenshot(tab, t, "after-login")
//
// A plain string selector is a DevTools search (CSS, XPath or text);
// chromedp.CSS and chromedp.ID select by CSS and by id only. Click does not
// wait for the navigation a form submission starts: wait for an element of
// the next page (WaitVisible), or use chromedp.RunResponse to get the
// response. Viewport and Mobile resize a tab, e.g. for a check at 320 CSS
// pixels wide. example_test.go has a complete test.
//
// # Content-Security-Policy
//
// Axe evaluates axe-core through the DevTools protocol (Runtime.evaluate),
// which a page's Content-Security-Policy does not govern: it works in a
// page served with "default-src 'none'; script-src 'self'; style-src
// 'self'" with the policy enforced, so a test still sees what the policy
// blocks (TestAxeUnderStrictCSP).
//
// # Cookies on plain-http loopback
//
// Chromium treats http://127.0.0.1 and http://localhost as secure contexts
// and accepts from them a cookie that is Secure and has the __Host- prefix
// ("Set-Cookie: __Host-x=1; Path=/; Secure; HttpOnly; SameSite=Strict"),
// and sends it back over plain http (TestHostCookieOnLoopback records
// this). So a console served by httptest.NewServer, without TLS, can set
// its real __Host- session cookie in tests. Cookies reads the cookies the
// browser holds for a URL, to check their attributes.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// DefaultChromium is the Chromium binary New starts when BULKHEAD_CHROMIUM
// is unset: Debian's chromium package.
const DefaultChromium = "/usr/bin/chromium"

// TabTimeout is how long a tab's context lasts after Tab opens it: a step
// that waits for what never comes fails the test instead of hanging it.
const TabTimeout = 30 * time.Second

// The window size of the browser, and the viewport of every tab until
// Viewport or Mobile changes it, in CSS pixels.
const (
	WindowWidth  = 1280
	WindowHeight = 900
)

// MobileWidth is the narrowest viewport the console must work in, in CSS
// pixels; Mobile sets it.
const MobileWidth = 320

// axeRelPath is where .ci/run installs axe-core, relative to the module's
// root.
const axeRelPath = ".cache/npm/node_modules/axe-core/axe.min.js"

// startTimeout bounds Chromium's start: a browser that does not answer
// within it fails the test rather than hanging it.
const startTimeout = time.Minute

// Browser is a headless Chromium running for the length of a test.
type Browser struct {
	ctx  context.Context // the browser's own first tab; the browser lives as long as it
	home string          // Chromium's XDG_CONFIG_HOME and XDG_CACHE_HOME are in it

	axeOnce sync.Once
	axeSrc  string
	axeErr  string // why axe.min.js is not available, when it is not
}

// New starts a headless Chromium with a fresh, temporary profile; it is
// stopped, its processes ended and its profile removed when the test ends.
// Without the binary New skips the test, or fails it when
// BULKHEAD_REQUIRE_BROWSER=1.
func New(t testing.TB) *Browser {
	t.Helper()
	bin := os.Getenv("BULKHEAD_CHROMIUM")
	if bin == "" {
		bin = DefaultChromium
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		missing(t, fmt.Sprintf("no Chromium at %s (install Debian's chromium, or set BULKHEAD_CHROMIUM)", bin))
	}
	out := &boundedBuffer{max: 64 << 10}
	// Chromium's crash handler keeps its database under XDG_CONFIG_HOME
	// (~/.config/chromium otherwise) and outlives the browser briefly:
	// keep it in the test's temporary directory, where stop finds it.
	home := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", "new"),
		// Root in a container has no user namespace sandbox to use.
		chromedp.NoSandbox,
		// A container's /dev/shm is often too small for Chromium.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(WindowWidth, WindowHeight),
		// Stable text for tests that read it and for axe's checks.
		chromedp.Flag("lang", "en-US"),
		chromedp.CombinedOutput(out),
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(home, "config"),
			"XDG_CACHE_HOME="+filepath.Join(home, "cache")),
		// No user-data-dir: the allocator makes a fresh temporary one and
		// removes it, after ending any process still using it, when
		// Chromium exits.
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	stop := func() {
		// Close the browser gracefully, then wait for its processes to end.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil && !strings.Contains(err.Error(), "context canceled") {
			t.Logf("browsertest: closing Chromium: %v", err)
		}
		cancel()
		cancelAlloc()
		// The allocator has ended every process of the profile; the crash
		// handler, detached from the browser, ends on its own.
		if left := endProcessesUsing(home, 5*time.Second); left > 0 {
			t.Errorf("browsertest: killed %d Chromium processes still running after the browser closed", left)
		}
		if t.Failed() {
			t.Logf("Chromium's output:\n%s", out)
		}
	}

	// The first Do starts Chromium and binds its life to ctx, so it cannot
	// have a deadline of its own: watch the time from outside instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	var err error
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		cancel()
		err = fmt.Errorf("no answer within %v", startTimeout)
		<-started
	}
	if err != nil {
		stop()
		t.Fatalf("browsertest: starting %s: %v\nChromium's output:\n%s", bin, err, out)
	}
	t.Cleanup(stop)
	return &Browser{ctx: ctx, home: home}
}

// missing skips the test for want of a browser part, or fails it when
// BULKHEAD_REQUIRE_BROWSER=1.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("BULKHEAD_REQUIRE_BROWSER") == "1" {
		t.Fatalf("BULKHEAD_REQUIRE_BROWSER=1 but %s", why)
	}
	t.Skipf("browser test skipped: %s", why)
}

// Tab opens a new tab in a browser context of its own (its own cookies,
// storage and cache), closed when the test ends, and returns its chromedp
// context, which ends TabTimeout after Tab returns.
func (b *Browser) Tab(t testing.TB) context.Context {
	t.Helper()
	return b.open(t, b.ctx, chromedp.WithNewBrowserContext())
}

// TabBeside opens another tab in tab's browser context: it shares tab's
// cookies and storage, as a second tab of the same window does (e.g. to
// check that signing out in one tab ends the session in the other). It
// ends when tab does, at the latest.
func (b *Browser) TabBeside(t testing.TB, tab context.Context) context.Context {
	t.Helper()
	if chromedp.FromContext(tab) == nil {
		t.Fatal("browsertest: TabBeside needs a context from Tab")
	}
	return b.open(t, tab)
}

func (b *Browser) open(t testing.TB, parent context.Context, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	tabCtx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	// The first Do creates the tab and binds its life to tabCtx; the
	// deadline applies to what the test does in it.
	// The window's viewport is smaller than the window, by the height of
	// the browser's (invisible) toolbars: set it.
	if err := chromedp.Do(tabCtx, chromedp.EmulateViewport(WindowWidth, WindowHeight)); err != nil {
		t.Fatalf("browsertest: opening a tab: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(tabCtx, TabTimeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

// Viewport sets the tab's viewport to width×height CSS pixels, as a desktop
// window of that size.
func Viewport(ctx context.Context, t testing.TB, width, height int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("browsertest: setting the viewport to %dx%d: %v", width, height, err)
	}
}

// Mobile makes the tab a phone MobileWidth CSS pixels wide, in portrait,
// with touch: the page's <meta name="viewport"> applies, as on a phone.
func Mobile(ctx context.Context, t testing.TB) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(MobileWidth, 640,
		chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)); err != nil {
		t.Fatalf("browsertest: emulating a phone: %v", err)
	}
}

// Screenshot saves a PNG of the whole page in the tab, beyond the viewport,
// as $BULKHEAD_ARTEFACTS/<test name>/<name>.png (CI keeps that directory),
// or in the test's temporary directory when BULKHEAD_ARTEFACTS is unset, and
// returns its path.
func (b *Browser) Screenshot(ctx context.Context, t testing.TB, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browsertest: screenshot %q: %v", name, err)
	}
	dir := t.TempDir()
	if base := os.Getenv("BULKHEAD_ARTEFACTS"); base != "" {
		dir = filepath.Join(base, filepath.FromSlash(safeName(t.Name())))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: screenshot %q: %v", name, err)
	}
	path := filepath.Join(dir, safeName(strings.ReplaceAll(name, "/", "_"))+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: screenshot %q: %v", name, err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._/-]+`)

// safeName makes s a relative path of plain characters, with no empty, "."
// or ".." element.
func safeName(s string) string {
	var parts []string
	for p := range strings.SplitSeq(unsafeChars.ReplaceAllString(s, "_"), "/") {
		if p = strings.Trim(p, "."); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "_"
	}
	return strings.Join(parts, "/")
}

// Cookies returns the cookies the tab's browser context holds for the URLs
// (default: the current page's), with every attribute: a test checks
// e.g. that a session cookie has the __Host- prefix and is Secure, HttpOnly
// and SameSite=Strict (network.CookieSameSiteStrict).
func Cookies(ctx context.Context, t testing.TB, urls ...string) []*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: urls})
	if err != nil {
		t.Fatalf("browsertest: reading cookies: %v", err)
	}
	return res.Cookies
}

// Cookie returns the cookie of that name among Cookies(ctx, t, url), or nil.
func Cookie(ctx context.Context, t testing.TB, url, name string) *network.Cookie {
	t.Helper()
	for _, c := range Cookies(ctx, t, url) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// boundedBuffer keeps the first max bytes written to it, from several
// goroutines.
type boundedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
