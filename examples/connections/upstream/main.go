// Command upstream is a stand-in for a third-party SaaS API, for trying
// Bulkhead's connections proxy: it answers only requests that carry its
// token (Authorization: Bearer <token>) with a small JSON document naming
// the path it was asked for, and 401 to anything else.
//
//	go run ./examples/connections/upstream -listen 127.0.0.1:9099 -token-file token.txt
package main

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9099", "address to listen on")
	tokenFile := flag.String("token-file", "", "file holding the only token this API accepts (required)")
	flag.Parse()
	b, err := os.ReadFile(*tokenFile)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		log.Fatalf("upstream: -token-file: a file holding the token is required (%v)", err)
	}
	want := []byte("Bearer " + strings.TrimSpace(string(b)))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"error":"invalid token"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "answer": "hello from the third party"})
	})
	log.Printf("upstream: listening on http://%s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
