package probe

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// These tests play an attacker who writes the document the probe reads
// and the application it probes. Each one states the safe behaviour
// exactly: what the probe refuses, what it skips and why, and what
// reaches the wire (bytes, paths, hosts) or the report.

// maxRequestBody is how much of a generated body a test accepts: a
// hostile schema must not make the probe send more.
const maxRequestBody = 64 << 10

// wire is a loopback HTTP server that records what reaches it: every
// connection it accepts and every request, as the wire shows it.
type wire struct {
	url   string
	conns atomic.Int64
	mu    sync.Mutex
	seen  []seenRequest
}

type seenRequest struct {
	Method, RequestURI, Path, RawPath, EscapedPath, Auth string
	BodyBytes                                            int64
}

// serveWire starts h behind a recorder on a loopback port of its own.
// h sees the request body as read (at most 1 MiB of it); the recorder
// counts all of it.
func serveWire(t *testing.T, h http.HandlerFunc) *wire {
	t.Helper()
	w := &wire{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.url = "http://" + ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			var kept bytes.Buffer
			n, _ := io.Copy(io.MultiWriter(&limitedBuffer{&kept, 1 << 20}), r.Body)
			r.Body = io.NopCloser(&kept)
			w.mu.Lock()
			w.seen = append(w.seen, seenRequest{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path,
				RawPath: r.URL.RawPath, EscapedPath: r.URL.EscapedPath(), Auth: r.Header.Get("Authorization"), BodyBytes: n})
			w.mu.Unlock()
			if h != nil {
				h(rw, r)
			}
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				w.conns.Add(1)
			}
		},
	}
	runtest.Go(t, func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	return w
}

func (w *wire) requests() []seenRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]seenRequest(nil), w.seen...)
}

// limitedBuffer keeps the first max bytes written to it and accepts
// (and drops) the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// docOf is a document with the given paths and component schemas (JSON
// object members, without their braces).
func docOf(paths, schemas string) string {
	return `{"openapi": "3.0.3", "info": {"title": "hostile", "version": "1"}, "security": [{"bearer": []}],
 "paths": {` + paths + `},
 "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": {` + schemas + `}}}`
}

// itemPaths are a create and a read by id, the create's body of schema.
func itemPaths(schema string) string {
	return `"/items": {"post": {"requestBody": {"required": true, "content": {"application/json": {"schema": ` + schema + `}}},
   "responses": {"201": {"description": "created"}}}},
 "/items/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
   "responses": {"200": {"description": "item"}}}}`
}

// probeWithin runs the probe with the toy identities and fails the test if it
// has not returned within d: a hang is one of the defects these tests
// look for, and a test that hung would say nothing about which one.
func probeWithin(t *testing.T, d time.Duration, cfg Config) (*Report, error) {
	t.Helper()
	if cfg.Identities == nil {
		cfg.Identities = toyIdentities()
	}
	if cfg.DocumentName == "" {
		cfg.DocumentName = "hostile.json"
	}
	type result struct {
		rep *Report
		err error
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		rep, err := Run(ctx, cfg)
		done <- result{rep, err}
	}()
	select {
	case r := <-done:
		return r.rep, r.err
	case <-time.After(d):
		t.Fatalf("the probe had not returned after %v", d)
		return nil, nil
	}
}

// refused runs the probe on doc and wants it refused as a document,
// within d, with no connection made to app or to any of others.
func refused(t *testing.T, d time.Duration, doc string, app *wire, others ...*wire) error {
	t.Helper()
	rep, err := probeWithin(t, d, Config{Document: []byte(doc), BaseURL: app.url})
	if !errors.Is(err, ErrDocument) {
		t.Fatalf("want an error wrapping ErrDocument, got %v (report %+v)", err, rep)
	}
	for _, w := range append([]*wire{app}, others...) {
		if n := w.conns.Load(); n != 0 {
			t.Errorf("%s got %d connections from a refused document", w.url, n)
		}
	}
	return err
}

// skippedFor is the report's reason for skipping op, or "".
func skippedFor(rep *Report, op string) string {
	for _, s := range rep.Skipped {
		if s.Operation == op {
			return s.Reason
		}
	}
	return ""
}

func TestHostileDocumentOverTheSizeBoundIsRefusedUnread(t *testing.T) {
	app := serveWire(t, nil)
	// A valid document padded past the bound: refused for its size, not
	// for anything a parser would find (which would mean it was parsed).
	doc := strings.Replace(docOf(itemPaths(`{"type": "object"}`), ""), `"version": "1"`,
		`"version": "1", "x-pad": "`+strings.Repeat("a", MaxDocumentBytes)+`"`, 1)
	start := time.Now()
	err := refused(t, 10*time.Second, doc, app)
	if !strings.Contains(err.Error(), "more than the") {
		t.Errorf("refused for another reason than its size: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing an oversize document took %v: it was read", d)
	}
}

// manyPaths is a document of n paths with one GET each.
func manyPaths(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"/p%d": {"get": {"responses": {"200": {"description": "x"}}}}`, i)
	}
	return docOf(b.String(), "")
}

func TestHostileDocumentWithTensOfThousandsOfPathsIsBounded(t *testing.T) {
	// As many paths as fit under the size bound.
	n := 100_000
	doc := manyPaths(n)
	for len(doc) > MaxDocumentBytes {
		n -= 5000
		doc = manyPaths(n)
	}
	if n < 50_000 {
		t.Fatalf("only %d paths fit in %d bytes", n, MaxDocumentBytes)
	}
	app := serveWire(t, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	err := refused(t, 2*time.Minute, doc, app)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if !strings.Contains(err.Error(), fmt.Sprintf("more than %d operations", maxOperations)) {
		t.Errorf("refused for another reason than its %d operations: %v", n, err)
	}
	// Generous bounds, an order of magnitude above what an 8 MiB
	// document takes to parse, far below what a quadratic pass or a
	// probe of 100,000 operations would.
	if elapsed > 60*time.Second {
		t.Errorf("refusing %d paths took %v", n, elapsed)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<30 {
		t.Errorf("refusing %d paths allocated %d MiB", n, alloc>>20)
	}
	t.Logf("%d paths, %d bytes: refused in %v, %d MiB allocated", n, len(doc), elapsed, (after.TotalAlloc-before.TotalAlloc)>>20)
}

func TestMaxOperationsIsTheBound(t *testing.T) {
	base := mustURL(t, "http://127.0.0.1:1")
	d, err := loadDocument(t.Context(), []byte(manyPaths(maxOperations)), base)
	if err != nil || len(d.ops) != maxOperations {
		t.Fatalf("a document of %d operations: %v", maxOperations, err)
	}
	if _, err := loadDocument(t.Context(), []byte(manyPaths(maxOperations+1)), base); !errors.Is(err, ErrDocument) {
		t.Fatalf("a document of %d operations was not refused: %v", maxOperations+1, err)
	}
}

func TestHostileDocumentDeeplyNestedIsRefused(t *testing.T) {
	const depth = 100_000
	open, closeArr := strings.Repeat("[", depth), strings.Repeat("]", depth)
	for name, doc := range map[string]string{
		"arrays in an extension": strings.Replace(docOf(itemPaths(`{"type": "object"}`), ""), `"version": "1"`,
			`"version": "1", "x-deep": `+open+closeArr, 1),
		"objects in an extension": strings.Replace(docOf(itemPaths(`{"type": "object"}`), ""), `"version": "1"`,
			`"version": "1", "x-deep": `+strings.Repeat(`{"a":`, depth)+"1"+strings.Repeat("}", depth), 1),
		"schemas": docOf(itemPaths(strings.Repeat(`{"type": "array", "items": `, depth)+`{"type": "string"}`+strings.Repeat("}", depth)), ""),
		"yaml flow sequences": "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {/a: {get: {responses: {'200': {description: x}}}}}\nx-deep: " +
			open + closeArr + "\n",
		"yaml block mappings": "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {/a: {get: {responses: {'200': {description: x}}}}}\nx-deep:\n" +
			func() string {
				var b strings.Builder
				for i := range 20_000 {
					b.WriteString(strings.Repeat(" ", i+1) + "a:\n")
				}
				return b.String()
			}(),
	} {
		t.Run(name, func(t *testing.T) {
			app := serveWire(t, nil)
			refused(t, time.Minute, doc, app)
		})
	}
}

func TestHostileDocumentDeepButParseableSchemaIsSkipped(t *testing.T) {
	// Nesting the parser takes (below its depth bound of 10,000) but the
	// probe does not follow past maxSchemaDepth.
	const depth = 3000
	schema := strings.Repeat(`{"type": "object", "required": ["a"], "properties": {"a": `, depth) + `{"type": "string"}` + strings.Repeat("}}", depth)
	app := serveWire(t, nil)
	rep, err := probeWithin(t, time.Minute, Config{Document: []byte(docOf(itemPaths(schema), "")), BaseURL: app.url})
	if err != nil {
		t.Fatal(err)
	}
	if why := skippedFor(rep, "POST /items"); !strings.Contains(why, "body schema") {
		t.Errorf("POST /items: want it skipped for its body schema, got %q", why)
	}
	for _, r := range app.requests() {
		if r.Method == "POST" {
			t.Errorf("sent %s %s for a schema it cannot satisfy", r.Method, r.RequestURI)
		}
	}
}

func TestHostileYAMLAliasBombIsRefused(t *testing.T) {
	doc := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {/a: {get: {responses: {'200': {description: x}}}}}\n" +
		"x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		doc += fmt.Sprintf("x-%s: &%s [%s]\n", name, name, strings.TrimSuffix(strings.Repeat("*"+prev+", ", 9), ", "))
		prev = name
	}
	app := serveWire(t, nil)
	start := time.Now()
	refused(t, time.Minute, doc, app)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing an alias bomb took %v", d)
	}
}

// Recursive and exploding schemas: the probe finishes, skips the create
// with a reason, and sends no body it cannot bound.
func TestHostileSchemasAreBounded(t *testing.T) {
	ref := func(name string) string { return `{"$ref": "#/components/schemas/` + name + `"}` }
	wide := func(levels, width int) string {
		var b strings.Builder
		for l := range levels {
			if l > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"L%d": {"type": "object", "required": [`, l)
			for p := range width {
				if p > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `"p%d"`, p)
			}
			b.WriteString(`], "properties": {`)
			for p := range width {
				if p > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `"p%d": %s`, p, ref(fmt.Sprintf("L%d", l+1)))
			}
			b.WriteString("}}")
		}
		fmt.Fprintf(&b, `, "L%d": {"type": "string"}, "Body": %s`, levels, ref("L0"))
		return b.String()
	}
	for _, tc := range []struct {
		name, schemas string
		// sent: the probe may make a (small) body and send it; else the
		// create must be skipped for its body schema.
		sent bool
	}{
		{name: "required self-reference",
			schemas: `"Body": {"type": "object", "required": ["self"], "properties": {"self": ` + ref("Body") + `}}`},
		{name: "mutual recursion",
			schemas: `"Body": {"type": "object", "required": ["b"], "properties": {"b": ` + ref("B") + `}},
			          "B": {"type": "object", "required": ["a"], "properties": {"a": ` + ref("Body") + `}}`},
		{name: "a $ref to itself",
			schemas: `"Body": {"type": "object", "required": ["x"], "properties": {"x": ` + ref("X") + `}}, "X": ` + ref("X"), sent: true},
		{name: "allOf cycle",
			schemas: `"Body": {"allOf": [` + ref("Body") + `, {"type": "object"}]}`},
		{name: "allOf-oneOf cycle",
			schemas: `"Body": {"allOf": [` + ref("B") + `]}, "B": {"oneOf": [` + ref("Body") + `]}`},
		{name: "wide oneOf cycle",
			schemas: `"Body": {"oneOf": [` + strings.TrimSuffix(strings.Repeat(ref("Body")+",", 8), ",") + `]}`},
		{name: "wide anyOf cycle through arrays",
			schemas: `"Body": {"type": "array", "minItems": 8, "items": {"anyOf": [` + strings.TrimSuffix(strings.Repeat(ref("Body")+",", 6), ",") + `]}}`},
		{name: "oneOf cycle with a way out",
			schemas: `"Body": {"type": "array", "minItems": 8, "items": {"oneOf": [` + ref("Body") + `, {"type": "string"}]}}`},
		{name: "ten required properties, twelve levels deep", schemas: wide(12, 10)},
		{name: "arrays of arrays", schemas: `"Body": ` + strings.Repeat(`{"type": "array", "minItems": 8, "items": `, 10) + `{"type": "string", "minLength": 64}` + strings.Repeat("}", 10)},
		{name: "arrays of big numbers", schemas: `"Body": ` + strings.Repeat(`{"type": "array", "minItems": 8, "items": `, 5) + `{"type": "number", "minimum": 1e300}` + strings.Repeat("}", 5)},
		{name: "arrays of booleans", schemas: `"Body": ` + strings.Repeat(`{"type": "array", "minItems": 8, "items": `, 5) + `{"type": "boolean"}` + strings.Repeat("}", 5)},
		{name: "huge minItems", schemas: `"Body": {"type": "array", "minItems": 1000000000000, "items": {"type": "string"}}`},
		{name: "huge minLength", schemas: `"Body": {"type": "object", "required": ["s"], "properties": {"s": {"type": "string", "minLength": 1000000000000}}}`},
		{name: "minLength past the bound", schemas: `"Body": {"type": "object", "required": ["s"], "properties": {"s": {"type": "string", "minLength": 100000}}}`},
		{name: "minLength within the bound", schemas: `"Body": {"type": "object", "required": ["s"], "properties": {"s": {"type": "string", "minLength": 1000}}}`, sent: true},
		// A create's plain strings are markers, not the example's text:
		// the example is not used eight times over (nor once).
		{name: "a huge example", schemas: `"Body": {"type": "array", "minItems": 8, "items": {"type": "string", "example": "` + strings.Repeat("e", 1<<20) + `"}}`, sent: true},
		{name: "long property names", schemas: `"Body": {"type": "object", "required": [` + func() string {
			var names []string
			for i := range 200 {
				names = append(names, fmt.Sprintf(`"%s%d"`, strings.Repeat("n", 1000), i))
			}
			return strings.Join(names, ",")
		}() + `]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.Method == "POST" {
					w.WriteHeader(201)
					fmt.Fprintf(w, `{"id": "itm-%d"}`, time.Now().UnixNano())
					return
				}
				w.WriteHeader(404)
				io.WriteString(w, `{"code": "not_found"}`)
			})
			doc := docOf(itemPaths(ref("Body")), tc.schemas)
			rep, err := probeWithin(t, 30*time.Second, Config{Document: []byte(doc), BaseURL: app.url})
			if err != nil {
				t.Fatal(err)
			}
			posts := 0
			for _, r := range app.requests() {
				if r.BodyBytes > maxRequestBody {
					t.Errorf("sent a body of %d bytes: %s %s", r.BodyBytes, r.Method, r.RequestURI)
				}
				if r.Method == "POST" {
					posts++
				}
			}
			why := skippedFor(rep, "POST /items")
			switch {
			case tc.sent && posts == 0:
				t.Errorf("want the create sent, got no POST (skipped: %q)", why)
			case !tc.sent && (posts != 0 || !strings.Contains(why, "cannot create") || !strings.Contains(why, "body")):
				t.Errorf("want the create skipped for its body, got %d POSTs and reason %q", posts, why)
			}
		})
	}
}

func TestHostileHugeMediaExampleIsNotSent(t *testing.T) {
	paths := `"/items": {"post": {"requestBody": {"required": true, "content": {"application/json": {
	   "schema": {"type": "object"}, "example": {"big": "` + strings.Repeat("e", 1<<20) + `"}}}},
	 "responses": {"201": {"description": "created"}}}},
	 "/items/{id}": {"get": {"responses": {"200": {"description": "item"}}}}`
	// The marked body is refused, so that the probe falls back to the
	// document's example, which must not be sent.
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.WriteHeader(422)
		}
	})
	rep, err := probeWithin(t, 30*time.Second, Config{Document: []byte(docOf(paths, "")), BaseURL: app.url})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range app.requests() {
		if r.BodyBytes > maxRequestBody {
			t.Errorf("sent a body of %d bytes: %s %s", r.BodyBytes, r.Method, r.RequestURI)
		}
	}
	if why := skippedFor(rep, "POST /items"); !strings.Contains(why, "example") {
		t.Errorf("POST /items: want it skipped for its example, got %q", why)
	}
}

func TestHostileExternalReferencesAreNeverFetched(t *testing.T) {
	other := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"S": {"type": "string"}, "openapi": "3.0.3"}`)
	})
	for name, doc := range map[string]string{
		"schema over http":  docOf(itemPaths(`{"$ref": "`+other.url+`/s.json#/S"}`), ""),
		"schema over //":    docOf(itemPaths(`{"$ref": "//`+strings.TrimPrefix(other.url, "http://")+`/s.json#/S"}`), ""),
		"a component":       docOf(itemPaths(`{"$ref": "#/components/schemas/S"}`), `"S": {"$ref": "`+other.url+`/s.json#/S"}`),
		"a path item":       docOf(`"/items": {"$ref": "`+other.url+`/p.json#/P"}`, ""),
		"a parameter":       docOf(`"/items": {"get": {"parameters": [{"$ref": "`+other.url+`/x.json#/P"}], "responses": {"200": {"description": "x"}}}}`, ""),
		"a request body":    docOf(`"/items": {"post": {"requestBody": {"$ref": "`+other.url+`/x.json#/B"}, "responses": {"200": {"description": "x"}}}}`, ""),
		"a response":        docOf(`"/items": {"get": {"responses": {"200": {"$ref": "`+other.url+`/x.json#/R"}}}}`, ""),
		"/etc/passwd":       docOf(itemPaths(`{"$ref": "file:///etc/passwd#/x"}`), ""),
		"an absolute path":  docOf(itemPaths(`{"$ref": "/etc/passwd#/x"}`), ""),
		"a relative file":   docOf(itemPaths(`{"$ref": "schemas.json#/S"}`), ""),
		"a whole document":  docOf(itemPaths(`{"$ref": "`+other.url+`/s.json"}`), ""),
		"the metadata host": docOf(itemPaths(`{"$ref": "http://169.254.169.254/latest/meta-data#/x"}`), ""),
	} {
		t.Run(name, func(t *testing.T) {
			app := serveWire(t, nil)
			refused(t, time.Minute, doc, app, other)
		})
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the other listener got %d requests", n)
	}
}

func TestHostileServersNamingAnotherHostAreRefused(t *testing.T) {
	// The other listener is on loopback too, named "localhost": another
	// host name than the base URL's 127.0.0.1, so a document naming it
	// must be refused, and it must see no traffic either way.
	other := serveWire(t, nil)
	elsewhere := strings.Replace(other.url, "127.0.0.1", "localhost", 1)
	hostPort := strings.TrimPrefix(elsewhere, "http://")
	_, port, _ := net.SplitHostPort(hostPort)
	get := `{"get": {"responses": {"200": {"description": "x"}}}}`
	top := func(servers string) string {
		return strings.Replace(docOf(`"/items": `+get, ""), `"security"`, `"servers": `+servers+`, "security"`, 1)
	}
	for name, doc := range map[string]string{
		"top level":            top(`[{"url": "` + elsewhere + `"}]`),
		"top level, second":    top(`[{"url": "/api"}, {"url": "` + elsewhere + `/api"}]`),
		"scheme-relative":      top(`[{"url": "//` + hostPort + `/api"}]`),
		"upper case":           top(`[{"url": "HTTP://LOCALHOST:` + port + `"}]`),
		"user information":     top(`[{"url": "http://127.0.0.1@` + hostPort + `/"}]`),
		"a variable host":      top(`[{"url": "http://{host}:{port}/", "variables": {"host": {"default": "localhost"}, "port": {"default": "` + port + `"}}}]`),
		"a variable url":       top(`[{"url": "{url}", "variables": {"url": {"default": "` + elsewhere + `"}}}]`),
		"an undefined var":     top(`[{"url": "http://{host}/"}]`),
		"a nested var":         top(`[{"url": "http://{a}/", "variables": {"a": {"default": "{b}"}, "b": {"default": "localhost"}}}]`),
		"path level":           docOf(`"/items": {"servers": [{"url": "`+elsewhere+`"}], "get": {"responses": {"200": {"description": "x"}}}}`, ""),
		"path level, variable": docOf(`"/items": {"servers": [{"url": "http://{h}/", "variables": {"h": {"default": "localhost"}}}], "get": {"responses": {"200": {"description": "x"}}}}`, ""),
		"operation level":      docOf(`"/items": {"get": {"servers": [{"url": "`+elsewhere+`"}], "responses": {"200": {"description": "x"}}}}`, ""),
		"operation, variable":  docOf(`"/items": {"get": {"servers": [{"url": "{s}://{h}", "variables": {"s": {"default": "http"}, "h": {"default": "`+hostPort+`"}}}], "responses": {"200": {"description": "x"}}}}`, ""),
	} {
		t.Run(name, func(t *testing.T) {
			app := serveWire(t, nil)
			refused(t, time.Minute, doc, app, other)
		})
	}
	// A server on the base URL's host (another port) is accepted, and
	// still never talked to: the probe sends only to the base URL.
	t.Run("same host, another port", func(t *testing.T) {
		app := serveWire(t, nil)
		doc := top(`[{"url": "` + other.url + `/api"}]`)
		rep, err := probeWithin(t, time.Minute, Config{Document: []byte(doc), BaseURL: app.url})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests == 0 || len(app.requests()) != rep.Requests {
			t.Errorf("the report counts %d requests, the base URL got %d", rep.Requests, len(app.requests()))
		}
	})
	if n := other.conns.Load(); n != 0 {
		t.Errorf("the document's server got %d connections", n)
	}
}

func TestHostileRedirectsAreNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			other := serveWire(t, nil)
			app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/elsewhere") {
					io.WriteString(w, `{"followed": true}`)
					return
				}
				// Every other answer sends the probe away: to another
				// listener, or to another path of the same one.
				if r.Method == "GET" {
					w.Header().Set("Location", "/elsewhere")
				} else {
					w.Header().Set("Location", other.url+"/items")
				}
				w.WriteHeader(status)
			})
			rep, err := probeWithin(t, time.Minute, Config{Document: []byte(toyDoc), BaseURL: app.url})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Incomplete != "" {
				t.Errorf("incomplete: %s", rep.Incomplete)
			}
			if n := other.conns.Load(); n != 0 {
				t.Errorf("the redirect's target got %d connections", n)
			}
			for _, r := range app.requests() {
				if strings.HasSuffix(r.Path, "/elsewhere") {
					t.Errorf("followed a redirect to %s", r.RequestURI)
				}
			}
			if why := skippedFor(rep, "POST /items"); !strings.Contains(why, fmt.Sprint(status)) {
				t.Errorf("POST /items: want it skipped for its %d, got %q", status, why)
			}
		})
	}
}

func TestHostileHugeAnswerIsReadOnlyUpToTheBound(t *testing.T) {
	const size = 100 << 20
	var completed, started atomic.Int64
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		completed.Add(1)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Document: []byte(toyDoc), DocumentName: "toy.json", BaseURL: app.url, Identities: toyIdentities()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Incomplete != "" {
		t.Errorf("incomplete: %s", rep.Incomplete)
	}
	if started.Load() == 0 || completed.Load() != 0 {
		t.Errorf("%d of %d answers of %d MiB were read to the end", completed.Load(), started.Load(), size>>20)
	}
	checkExcerpts(t, rep)
}

func TestHostileEndlessAnswerEndsWithTheContext(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"stalls after the headers": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			io.WriteString(w, `{"items": [`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
		"trickles forever": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			for {
				if _, err := io.WriteString(w, " "); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		},
		"never answers": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	} {
		t.Run(name, func(t *testing.T) {
			app := serveWire(t, h)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			start := time.Now()
			rep, err := Run(ctx, Config{Document: []byte(toyDoc), DocumentName: "toy.json", BaseURL: app.url, Identities: toyIdentities()})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("the run took %v past a deadline of 2s", d)
			}
			if !strings.Contains(rep.Incomplete, "stopped before the end") {
				t.Errorf("want the report marked incomplete, got %q", rep.Incomplete)
			}
		})
	}
}

// checkExcerpts fails the test for any answer excerpt longer than the
// report keeps.
func checkExcerpts(t *testing.T, rep *Report) {
	t.Helper()
	check := func(e *Exchange) {
		if e != nil && (len(e.Body) > 1024+len("…") || len(e.RequestBody) > 1024+len("…")) {
			t.Errorf("an excerpt of %d bytes in %s %s", len(e.Body), e.Method, e.URL)
		}
	}
	for _, f := range rep.Findings {
		check(&f.Request)
		check(f.Compared)
	}
	for _, s := range rep.Skipped {
		if len(s.Reason) > 2048 {
			t.Errorf("a skip reason of %d bytes for %s", len(s.Reason), s.Operation)
		}
	}
}

// Tokens of high entropy, so that a piece of one in a report cannot be
// there by chance.
const (
	tokenA = "3f9c2e7a1b5d8f0e4c6a9b2d7e1f3a5c8b0d2e4f"
	tokenB = "c1e5a9d3f7b2e6a0c4d8f2b6e0a4c8d2f6b0e4a8"
)

// echoApp is a multi-tenant application that echoes the caller's
// Authorization header wherever where says: "body", "content-type", "id"
// (a create answers with the header as the new object's id), "raw-id"
// (with the bare token as the id). It reads any item for anyone and lists
// every tenant's, so the report has findings with answers to show.
func echoApp(where string) http.HandlerFunc {
	var mu sync.Mutex
	var items []string
	seq := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth := r.Header.Get("Authorization")
		if auth == "" {
			w.WriteHeader(401)
			return
		}
		ct := "application/json"
		if where == "content-type" {
			ct = "application/json; seen=\"" + auth + "\""
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Seen", auth)
		w.Header().Set("Location", "/items/"+strings.TrimPrefix(auth, "Bearer "))
		out := map[string]any{}
		if where == "body" {
			out["seen"] = auth
			out["detail"] = "you sent " + auth
		}
		if where == "transformed" {
			tok := strings.TrimPrefix(auth, "Bearer ")
			out["upper"] = strings.ToUpper(tok)
			out["b64"] = base64.StdEncoding.EncodeToString([]byte(tok))
			out["b64url"] = base64.RawURLEncoding.EncodeToString([]byte(tok))
		}
		switch {
		case r.Method == "POST" && r.URL.Path == "/items":
			seq++
			id := fmt.Sprintf("itm-%06d", seq)
			switch where {
			case "id":
				id = auth
			case "raw-id":
				id = strings.TrimPrefix(auth, "Bearer ")
			}
			items = append(items, id)
			out["id"] = id
			w.WriteHeader(201)
		case r.Method == "GET" && r.URL.Path == "/items":
			out["items"] = items
		case r.Method == "DELETE":
			w.WriteHeader(403)
		}
		json.NewEncoder(w).Encode(out)
	}
}

func TestHostileEchoedCredentialsStayOutOfTheReport(t *testing.T) {
	for _, where := range []string{"body", "content-type", "id", "raw-id", "transformed"} {
		t.Run(where, func(t *testing.T) {
			app := serveWire(t, echoApp(where))
			ids := []Identity{{Label: "a", Tenant: "a", Token: tokenA}, {Label: "b", Tenant: "b", Token: tokenB}}
			doc := []byte(toyDoc)
			rep, err := probeWithin(t, time.Minute, Config{Document: doc, DocumentName: "toy.json", BaseURL: app.url, Identities: ids})
			if err != nil {
				t.Fatal(err)
			}
			var sent int
			for _, r := range app.requests() {
				if r.Auth != "" {
					sent++
				}
			}
			if sent == 0 {
				t.Fatal("no credential was sent: the test proves nothing")
			}
			var text, js, sarif bytes.Buffer
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteSARIF(&sarif, doc); err != nil {
				t.Fatal(err)
			}
			for name, out := range map[string]string{"text": text.String(), "JSON": js.String(), "SARIF": sarif.String()} {
				if piece := pieceOf(strings.ToLower(out), tokenA, tokenB, b64(tokenA), b64(tokenB)); piece != "" {
					t.Errorf("the %s report holds %q, a piece of a credential:\n%s", name, piece, out)
				}
			}
			switch where {
			case "body", "content-type", "transformed":
				if len(rep.Findings) == 0 {
					t.Errorf("no findings: the report shows no answer, and the test proves little:\n%s", text.String())
				}
			case "id", "raw-id":
				// An id holding a credential would be sent in paths, and
				// an absent id made from it shows most of it: not used.
				if why := skippedFor(rep, "POST /items"); !strings.Contains(why, "holds a credential") {
					t.Errorf("POST /items: want it skipped for an id holding a credential, got %q", why)
				}
			}
		})
	}
}

// pieceOf is the first 10-byte run of any of tokens found in out.
// b64 is tok in base64, lower-cased as pieceOf's callers lower the
// report.
func b64(tok string) string { return strings.ToLower(base64.StdEncoding.EncodeToString([]byte(tok))) }

func pieceOf(out string, tokens ...string) string {
	for _, tok := range tokens {
		for i := 0; i+10 <= len(tok); i++ {
			if strings.Contains(out, tok[i:i+10]) {
				return tok[i : i+10]
			}
		}
	}
	return ""
}

func TestHostileRetryAfterIsNotWaitedOut(t *testing.T) {
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "99999")
		w.WriteHeader(429)
	})
	start := time.Now()
	rep, err := probeWithin(t, time.Minute, Config{Document: []byte(toyDoc), BaseURL: app.url})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the run took %v", d)
	}
	// Each request sent once: a Retry-After past the bound is an answer,
	// not a reason to send again.
	got := app.requests()
	if rep.Requests != len(got) {
		t.Errorf("the report counts %d requests, the application got %d", rep.Requests, len(got))
	}
	sent := map[string]int{}
	for _, r := range got {
		sent[r.Method+" "+r.RequestURI+" "+r.Auth]++
	}
	for req, n := range sent {
		if n > 1 && !strings.HasPrefix(req, "GET ") {
			t.Errorf("%s sent %d times", req, n)
		}
	}
}

// pathsDoc is a create, operations on its objects, and templates that
// mix text and parameters.
const pathsDoc = `"/items": {"post": {"responses": {"201": {"description": "created"}}}},
	 "/items/{id}": {"get": {"responses": {"200": {"description": "item"}}}, "delete": {"responses": {"204": {"description": "gone"}}}},
	 "/items/{id}.json": {"get": {"responses": {"200": {"description": "item"}}}},
	 "/pairs/{a}{b}": {"get": {"responses": {"200": {"description": "pair"}}}},
	 "/items/{id}/{{id}}": {"get": {"responses": {"200": {"description": "braces"}}}}`

// probePaths probes pathsDoc under the base path /api/v1 of an
// application whose creates name their objects id(tenant), and checks
// what every request must be: under /api/v1/, without a dot segment,
// without a template left unfilled.
func probePaths(t *testing.T, id func(tenant string) string) (*Report, []seenRequest) {
	t.Helper()
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == "POST" {
			tn := map[string]string{"Bearer tok-a": "a", "Bearer tok-b": "b"}[r.Header.Get("Authorization")]
			w.WriteHeader(201)
			json.NewEncoder(w).Encode(map[string]string{"id": id(tn)})
			return
		}
		w.WriteHeader(404)
		io.WriteString(w, `{"code": "not_found"}`)
	})
	rep, err := probeWithin(t, time.Minute, Config{Document: []byte(docOf(pathsDoc, "")), BaseURL: app.url + "/api/v1"})
	if err != nil {
		t.Fatal(err)
	}
	got := app.requests()
	for _, r := range got {
		p := r.EscapedPath
		if !strings.HasPrefix(p, "/api/v1/") {
			t.Errorf("%s %s: not under /api/v1/", r.Method, r.RequestURI)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				t.Errorf("%s %s: a dot segment", r.Method, r.RequestURI)
			}
		}
		if strings.ContainsAny(r.Path, "{}") {
			t.Errorf("%s %s: an unfilled template", r.Method, r.RequestURI)
		}
	}
	return rep, got
}

// Ids that look like paths, escapes, a query: each reaches the
// application as the one segment it is, escaped once.
func TestHostileIDsReachTheApplicationAsOneSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   func(tenant string) string
		// want is the segment the application must get for tenant a's
		// object, as r.URL.EscapedPath shows it.
		want string
	}{
		{"slashes and dot segments", func(tn string) string { return tn + "/../../admin" }, "a%2F..%2F..%2Fadmin"},
		{"a leading dot segment", func(tn string) string { return "../../" + tn }, "..%2F..%2Fa"},
		{"escapes", func(tn string) string { return tn + "%2F..%2Fadmin" }, "a%252F..%252Fadmin"},
		{"query and fragment", func(tn string) string { return tn + "?admin=1#x" }, "a%3Fadmin=1%23x"},
		{"a space and a backslash", func(tn string) string { return tn + ` ..\..\x` }, "a%20..%5C..%5Cx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := probePaths(t, tc.id)
			own := false
			for _, r := range got {
				if r.Method == "GET" && r.Auth == "Bearer tok-a" && r.EscapedPath == "/api/v1/items/"+tc.want {
					own = true
					if r.Path != "/api/v1/items/"+tc.id("a") {
						t.Errorf("the application read the id as %q, want %q", strings.TrimPrefix(r.Path, "/api/v1/items/"), tc.id("a"))
					}
				}
			}
			if !own {
				t.Errorf("the application never got tenant a's id as the segment %s: %+v", tc.want, got)
			}
		})
	}
}

// "." and ".." cannot be escaped: the operations that need such an id
// are skipped.
func TestHostileDotIDsAreNotSent(t *testing.T) {
	rep, _ := probePaths(t, func(tn string) string { return map[string]string{"a": "..", "b": "."}[tn] })
	for _, op := range []string{"GET /items/{id}", "DELETE /items/{id}"} {
		if why := skippedFor(rep, op); !strings.Contains(why, "no path segment") {
			t.Errorf("%s: want it skipped for an id that is no path segment, got %q", op, why)
		}
	}
}

func TestHostileMixedTemplatesAreSkipped(t *testing.T) {
	rep, _ := probePaths(t, func(tn string) string { return "itm-" + tn })
	for _, op := range []string{"GET /items/{id}.json", "GET /pairs/{a}{b}", "GET /items/{id}/{{id}}"} {
		if why := skippedFor(rep, op); !strings.Contains(why, "mixes text and a parameter") {
			t.Errorf("%s: want it skipped as a template the probe cannot fill, got %q", op, why)
		}
	}
	if rep.Probed == 0 {
		t.Errorf("nothing probed: the test proves little")
	}
}

func TestHostileDocumentPathsWithDotSegmentsAreRefused(t *testing.T) {
	for _, path := range []string{"/../admin", "/items/..", "/items/./x", "/a/../../b"} {
		t.Run(path, func(t *testing.T) {
			app := serveWire(t, nil)
			refused(t, time.Minute, docOf(`"`+path+`": {"get": {"responses": {"200": {"description": "x"}}}}`, ""), app)
		})
	}
}

func TestHostileCreatedIDIsBounded(t *testing.T) {
	long := strings.Repeat("i", 64<<10)
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == "POST" {
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"id": "%d-%s"}`, time.Now().UnixNano(), long)
			return
		}
		w.WriteHeader(404)
	})
	rep, err := probeWithin(t, time.Minute, Config{Document: []byte(toyDoc), BaseURL: app.url})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range app.requests() {
		if len(r.RequestURI) > 4096 {
			t.Errorf("sent a request-target of %d bytes", len(r.RequestURI))
		}
	}
	if why := skippedFor(rep, "POST /items"); !strings.Contains(why, "bytes") {
		t.Errorf("POST /items: want it skipped for its id's length, got %q", why)
	}
	checkExcerpts(t, rep)
}

// A recipe's {id:...} is filled with ids the application chose: an id
// that spells a template must be sent as it is, not expanded again.
func TestHostileIDThatSpellsARecipeTemplate(t *testing.T) {
	paths := `"/items": {"post": {"responses": {"201": {"description": "created"}}}},
	 "/items/{id}": {"patch": {"responses": {"200": {"description": "item"}}}}`
	for _, id := range []string{"{id:POST /items}", "{id:POST /items}{id:POST /items}", "x{id:POST /items"} {
		t.Run(id, func(t *testing.T) {
			var patched sync.Map
			app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.Method == "POST" {
					w.WriteHeader(201)
					json.NewEncoder(w).Encode(map[string]string{"id": id})
					return
				}
				b, _ := io.ReadAll(r.Body)
				patched.Store(string(b), true)
				w.WriteHeader(404)
			})
			recipe, err := ParseRecipe([]byte(`{"operations": {"PATCH /items/{id}": {"body": {"parent": "{id:POST /items}"}}}}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := probeWithin(t, 30*time.Second, Config{Document: []byte(docOf(paths, "")), BaseURL: app.url, Recipe: recipe}); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(map[string]string{"parent": id})
			n := 0
			patched.Range(func(k, _ any) bool {
				n++
				if k.(string) != string(want) {
					t.Errorf("sent %s, want %s", k, want)
				}
				return true
			})
			if n == 0 {
				t.Errorf("no PATCH was sent")
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A recipe's {marker} in a create's body is a marker like the ones the
// probe makes itself: found in another tenant's answer, it is a leak.
func TestRecipeMarkersAreLookedFor(t *testing.T) {
	recipe, err := ParseRecipe([]byte(`{"operations": {"POST /items": {"body": {"title": "{marker}"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), Config{Document: []byte(toyDoc), DocumentName: "toy.json", BaseURL: serveToy(t, defects{echoes: true}),
		Identities: toyIdentities(), Recipe: recipe})
	if err != nil {
		t.Fatal(err)
	}
	if !rulesFound(rep)[RuleCrossTenantRead+" GET /items/{id}"] {
		t.Fatalf("the refusal shows the other tenant's title, made from the recipe's {marker}, and nothing was found:\n%s", textOf(rep))
	}
}

// Every text field of every body the probe sends carries a marker, and
// every answer is searched for them: with wide bodies, many operations
// and answers of a megabyte that look like markers, the search must not
// grow with their number (it took more than ten minutes when it did).
func TestHostileManyMarkersAndBigAnswers(t *testing.T) {
	var props, required []string
	for i := range 300 {
		props = append(props, fmt.Sprintf(`"f%d": {"type": "string"}`, i))
		required = append(required, fmt.Sprintf(`"f%d"`, i))
	}
	schemas := `"Body": {"type": "object", "required": [` + strings.Join(required, ",") + `], "properties": {` + strings.Join(props, ",") + `}}`
	body := `{"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}}}}, "responses": {"200": {"description": "x"}}}`
	paths := `"/items": {"post": ` + body + `}`
	for i := range 40 {
		paths += fmt.Sprintf(`, "/items/{id}/a%d": {"patch": %s, "get": {"responses": {"200": {"description": "x"}}}}`, i, body)
	}
	answer := bytes.Repeat([]byte("probe-a-x"), maxAnswer/9)
	var seq atomic.Int64
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"id": "itm-%d"}`, seq.Add(1))
			return
		}
		w.WriteHeader(404)
		w.Write(answer)
	})
	start := time.Now()
	rep, err := probeWithin(t, 3*time.Minute, Config{Document: []byte(docOf(paths, schemas)), BaseURL: app.url})
	if err != nil {
		t.Fatal(err)
	}
	// The application refuses its owners too, so little counts as
	// covered; what matters is that every answer was searched, in time.
	if rep.Incomplete != "" || rep.Requests < 400 {
		t.Errorf("%d requests, incomplete %q", rep.Requests, rep.Incomplete)
	}
	t.Logf("%d requests in %v", rep.Requests, time.Since(start))
}

// An application's answers reach the terminal of whoever reads the text
// report: escape sequences in them (set the title, clear the screen,
// rewrite a line) are shown, not obeyed.
func TestHostileAnswersCannotDriveTheTerminal(t *testing.T) {
	evil := "\x1b]0;pwned\x07\x1b[2J\x1b[1A\r\u009bclean\x7f"
	app := serveWire(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"detail": "`+evil+`"}`)
	})
	paths := `"/items": {"post": {"responses": {"201": {"description": "made"}}}},
	 "/items/{id}": {"get": {"responses": {"200": {"description": "item"}}}}`
	rep, err := probeWithin(t, 30*time.Second, Config{Document: []byte(docOf(paths, "")), BaseURL: app.url})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07\r\x7f\u009b") {
		t.Fatalf("control characters reach the terminal: %q", out.String())
	}
	if !strings.Contains(out.String(), `\x1b]0;pwned\x07`) {
		t.Fatalf("the answer is not shown escaped: %q", out.String())
	}
}
