package browsertest_test

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/bulkhead-dev/bulkhead/internal/browsertest"
)

// TestExampleDriveAPage shows how a test drives a page: fill in a form,
// submit it, wait for the next page and read it, check its accessibility
// and keep a screenshot.
func TestExampleDriveAPage(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Greeting", `<main><h1>Greeting</h1>
<form method="post" action="/hello">
<label for="name">Your name</label> <input id="name" name="name" autocomplete="name">
<button type="submit">Greet me</button>
</form></main>`)
	})
	mux.HandleFunc("POST /hello", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Hello", `<main><h1>Hello</h1><p id="result">Hello, `+
			html.EscapeString(r.PostFormValue("name"))+`!</p></main>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.New(t)
	tab := b.Tab(t)
	if err := chromedp.Do(tab,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SendKeys(chromedp.ID("name"), "Ada <Lovelace>"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		// Click does not wait for the page the form loads: wait for an
		// element of it.
		chromedp.WaitVisible(chromedp.ID("result")),
	); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hello, Ada <Lovelace>!"; got != want {
		t.Errorf("result = %q, want %q", got, want)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "hello")
}

// page writes a small, accessible HTML page.
func page(w http.ResponseWriter, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title></head>
<body>%s</body></html>`, html.EscapeString(title), body)
}
