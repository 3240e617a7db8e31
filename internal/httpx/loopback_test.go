package httpx

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestLoopback(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write([]byte(strings.Repeat("x", 100)))
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.RemoteAddr+" "+r.Host+" "+r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	c := &http.Client{Transport: Loopback{Handler: h, RemoteAddr: "192.0.2.7:4000", MaxBody: 50}}
	req, _ := http.NewRequest("POST", "https://id.example.com/v1/x?y=1", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || string(body) != "hello" || resp.Header.Get("X-Seen") != "192.0.2.7:4000 id.example.com Bearer t" {
		t.Fatalf("got %d %q %q", resp.StatusCode, body, resp.Header.Get("X-Seen"))
	}
	if _, err := c.Get("https://id.example.com/big"); err == nil {
		t.Fatal("an answer over MaxBody was kept")
	}
}
