package browsertest_test

import (
	"bytes"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/bulkhead-dev/bulkhead/internal/browsertest"
)

// serve serves body as an HTML page at every path, with the headers.
func serve(t *testing.T, body string, headers ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		page(w, "Test page", body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWindowAndViewport(t *testing.T) {
	srv := serve(t, `<main><h1>Size</h1></main>`)
	b := browsertest.New(t)
	tab := b.Tab(t)
	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	size := func() string {
		t.Helper()
		s, err := chromedp.Run(tab, chromedp.Evaluate[string](`innerWidth + "x" + innerHeight`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, want := size(), fmt.Sprintf("%dx%d", browsertest.WindowWidth, browsertest.WindowHeight); got != want {
		t.Errorf("a new tab's viewport is %s, want %s", got, want)
	}
	browsertest.Viewport(tab, t, 800, 600)
	if got := size(); got != "800x600" {
		t.Errorf("after Viewport(800, 600) the viewport is %s", got)
	}
	browsertest.Mobile(tab, t)
	if got, want := size(), strconv.Itoa(browsertest.MobileWidth)+"x640"; got != want {
		t.Errorf("after Mobile the viewport is %s, want %s", got, want)
	}
}

func TestScreenshot(t *testing.T) {
	srv := serve(t, `<main><h1>Tall</h1><div style="height: 3000px">x</div></main>`)
	b := browsertest.New(t)
	tab := b.Tab(t)
	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, path string) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not a PNG: %v", path, err)
		}
		// The whole page, not only the viewport.
		if sz := img.Bounds().Size(); sz.X != browsertest.WindowWidth || sz.Y <= browsertest.WindowHeight {
			t.Errorf("screenshot is %v, want %d wide and taller than %d", sz, browsertest.WindowWidth, browsertest.WindowHeight)
		}
	}
	t.Run("temp", func(t *testing.T) {
		t.Setenv("BULKHEAD_ARTEFACTS", "")
		check(t, b.Screenshot(tab, t, "page"))
	})
	t.Run("artefacts", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("BULKHEAD_ARTEFACTS", dir)
		path := b.Screenshot(tab, t, "full page/1")
		if want := filepath.Join(dir, "TestScreenshot", "artefacts", "full_page_1.png"); path != want {
			t.Errorf("path = %s, want %s", path, want)
		}
		check(t, path)
	})
}

// A page with what axe-core must call serious: an image without alt text,
// an input without a label and text of too low a contrast.
const badPage = `<main><h1>Bad</h1>
<img src="/x.png">
<form><input id="q" name="q"></form>
<p style="color: #bbb; background: #fff">Hard to read</p>
</main>`

// A page with nothing axe-core calls serious.
const goodPage = `<main><h1>Good</h1>
<img src="/x.png" alt="A chart of requests">
<form><label for="q">Search</label> <input id="q" name="q"> <button>Go</button></form>
<p>Easy to read</p>
</main>`

func TestAxe(t *testing.T) {
	b := browsertest.New(t)
	t.Run("bad", func(t *testing.T) {
		tab := b.Tab(t)
		if err := chromedp.Do(tab, chromedp.Navigate(serve(t, badPage).URL)); err != nil {
			t.Fatal(err)
		}
		vs := b.Axe(tab, t)
		for _, id := range []string{"image-alt", "label", "color-contrast"} {
			i := slices.IndexFunc(vs, func(v browsertest.Violation) bool { return v.ID == id })
			if i < 0 {
				t.Errorf("axe did not report %s; it reported %v", id, vs)
				continue
			}
			if v := vs[i]; !v.Serious() || len(v.Nodes) == 0 || len(v.Nodes[0].Target) == 0 {
				t.Errorf("violation %v: want serious or critical, with the element's selector", v)
			}
		}
		// A second run in the same document reuses the injected axe-core.
		if again := b.Axe(tab, t); len(again) != len(vs) {
			t.Errorf("second run: %d violations, first %d", len(again), len(vs))
		}
		rec := &recorder{TB: t}
		browsertest.RequireNoSerious(rec, vs)
		if len(rec.errors) < 3 {
			t.Errorf("RequireNoSerious reported %d errors, want one for each of the 3 serious violations: %q", len(rec.errors), rec.errors)
		}
	})
	t.Run("good", func(t *testing.T) {
		tab := b.Tab(t)
		if err := chromedp.Do(tab, chromedp.Navigate(serve(t, goodPage).URL)); err != nil {
			t.Fatal(err)
		}
		vs := b.Axe(tab, t)
		browsertest.RequireNoSerious(t, vs)
	})
}

// TestAxeUnderStrictCSP runs axe-core in a page whose policy allows only
// scripts and styles from the page's own origin, as the console's does, and
// checks that the policy still holds for the page's own scripts.
func TestAxeUnderStrictCSP(t *testing.T) {
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'"
	mux := http.NewServeMux()
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `window.fromFile = true;`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		page(w, "Strict", `<main><h1>Strict</h1>
<img src="/x.png">
<script src="/app.js"></script>
<script>window.inline = true;</script>
</main>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.New(t)
	tab := b.Tab(t)
	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(tab, chromedp.Evaluate[string](
		`(window.fromFile ? "file ran" : "file blocked") + ", " + (window.inline ? "inline ran" : "inline blocked")`))
	if err != nil {
		t.Fatal(err)
	}
	if state != "file ran, inline blocked" {
		t.Fatalf("the page's policy is not in force: %s", state)
	}
	vs := b.Axe(tab, t)
	if !slices.ContainsFunc(vs, func(v browsertest.Violation) bool { return v.ID == "image-alt" }) {
		t.Errorf("axe-core under the policy did not report the image without alt text: %v", vs)
	}
}

// TestHostCookieOnLoopback records whether Chromium takes a __Host- cookie
// (which must be Secure) from a plain-http loopback server, and sends it
// back: the console's tests serve it so. The package documentation states
// the answer; update it if this test changes.
func TestHostCookieOnLoopback(t *testing.T) {
	const setCookie = "__Host-x=1; Path=/; Secure; HttpOnly; SameSite=Strict"
	var mu sync.Mutex
	var received []string
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", setCookie)
		page(w, "Set", `<main><h1>Set</h1></main>`)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received = append(received, r.Header.Get("Cookie"))
		mu.Unlock()
		page(w, "Echo", `<main><h1>Echo</h1></main>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	b := browsertest.New(t)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			base := "http://" + net.JoinHostPort(host, port)
			tab := b.Tab(t)
			if err := chromedp.Do(tab, chromedp.Navigate(base+"/set")); err != nil {
				t.Fatal(err)
			}
			c := browsertest.Cookie(tab, t, base+"/", "__Host-x")
			if c == nil {
				t.Fatalf("Chromium did not keep %q from %s (plain http); cookies: %v",
					setCookie, base, browsertest.Cookies(tab, t, base+"/"))
			}
			t.Logf("Chromium kept the cookie from %s: domain %s, secure %v, httpOnly %v, sameSite %s, source scheme %s",
				base, c.Domain, c.Secure, c.HTTPOnly, c.SameSite, c.SourceScheme)
			if !c.Secure || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Domain != host {
				t.Errorf("cookie attributes: %+v", c)
			}
			mu.Lock()
			received = nil
			mu.Unlock()
			if err := chromedp.Do(tab, chromedp.Navigate(base+"/echo")); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := slices.Clone(received)
			mu.Unlock()
			if len(got) != 1 || got[0] != "__Host-x=1" {
				t.Errorf("Chromium sent Cookie %q to %s/echo, want [\"__Host-x=1\"]", got, base)
			}

			// Another tab has a browser context of its own, without the cookie;
			// a tab beside this one shares it.
			if c := browsertest.Cookie(b.Tab(t), t, base+"/", "__Host-x"); c != nil {
				t.Errorf("a new tab sees the other tab's cookie %v", c)
			}
			if c := browsertest.Cookie(b.TabBeside(t, tab), t, base+"/", "__Host-x"); c == nil {
				t.Errorf("a tab beside does not see the cookie")
			}
		})
	}
}

// TestMissing checks that a test without Chromium or axe-core is skipped,
// or, with BULKHEAD_REQUIRE_BROWSER=1, fails.
func TestMissing(t *testing.T) {
	for _, require := range []string{"", "1"} {
		t.Run("require="+require, func(t *testing.T) {
			t.Setenv("BULKHEAD_REQUIRE_BROWSER", require)
			t.Setenv("BULKHEAD_CHROMIUM", filepath.Join(t.TempDir(), "no-chromium"))
			rec := run(t, func(tb testing.TB) { browsertest.New(tb) })
			checkMissing(t, rec, require, "no Chromium at")
		})
	}
	for _, require := range []string{"", "1"} {
		t.Run("axe/require="+require, func(t *testing.T) {
			t.Setenv("BULKHEAD_REQUIRE_BROWSER", require)
			t.Setenv("BULKHEAD_AXE", filepath.Join(t.TempDir(), "axe.min.js"))
			b := browsertest.New(t) // a Browser reads axe.min.js once
			tab := b.Tab(t)
			rec := run(t, func(tb testing.TB) { b.Axe(tab, tb) })
			checkMissing(t, rec, require, "no axe-core")
		})
	}
}

func checkMissing(t *testing.T, rec *recorder, require, want string) {
	t.Helper()
	switch {
	case require == "1" && (len(rec.fatals) != 1 || len(rec.skips) != 0):
		t.Errorf("BULKHEAD_REQUIRE_BROWSER=1: fatals %q, skips %q; want one fatal", rec.fatals, rec.skips)
	case require == "" && (len(rec.skips) != 1 || len(rec.fatals) != 0):
		t.Errorf("BULKHEAD_REQUIRE_BROWSER unset: fatals %q, skips %q; want one skip", rec.fatals, rec.skips)
	case !strings.Contains(strings.Join(append(rec.fatals, rec.skips...), ""), want):
		t.Errorf("message %q does not say %q", append(rec.fatals, rec.skips...), want)
	}
}

// recorder is a testing.TB that records failures and skips, which end the
// goroutine as the real ones do, instead of reporting them.
type recorder struct {
	testing.TB
	mu                    sync.Mutex
	errors, fatals, skips []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Logf(string, ...any) {}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skips = append(r.skips, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls fn with a recorder in a goroutine of its own, which a fatal
// or skip ends.
func run(t *testing.T, fn func(testing.TB)) *recorder {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	return rec
}

// TestNoLeftovers checks that no process of a Browser outlives its test:
// neither the browser's nor its detached crash handler's.
func TestNoLeftovers(t *testing.T) {
	var home string
	var profiles []string
	t.Run("browse", func(t *testing.T) {
		b := browsertest.New(t)
		tab := b.Tab(t)
		if err := chromedp.Do(tab, chromedp.Navigate(serve(t, goodPage).URL)); err != nil {
			t.Fatal(err)
		}
		home = b.Home()
		for _, pid := range descendants(os.Getpid()) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			for arg := range strings.SplitSeq(string(cmdline), "\x00") {
				if p, ok := strings.CutPrefix(arg, "--user-data-dir="); ok && !slices.Contains(profiles, p) {
					profiles = append(profiles, p)
				}
			}
		}
		if len(profiles) != 1 {
			t.Fatalf("want the browser's processes to share one profile, found %q", profiles)
		}
		if len(browsertest.ProcessesUsing(home)) == 0 {
			t.Errorf("no process names %s: is the crash handler elsewhere?", home)
		}
	})
	if pids := descendants(os.Getpid()); len(pids) > 0 {
		t.Errorf("processes %v of the test still run", pids)
	}
	for _, dir := range append(profiles, home) {
		if pids := browsertest.ProcessesUsing(dir); len(pids) > 0 {
			t.Errorf("processes %v using %s still run", pids, dir)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", dir, err)
		}
	}
}

// descendants returns the running processes (not zombies) under pid.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm can hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}
