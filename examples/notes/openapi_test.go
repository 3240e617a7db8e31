package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
)

// loadOpenAPI parses and validates openapi.json.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// documented is one operation of the document.
type documented struct {
	method, path string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func (d documented) pattern() string { return d.method + " " + d.path }

func operations(doc *openapi3.T) []documented {
	var out []documented
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, documented{method, path, item, op})
		}
	}
	slices.SortFunc(out, func(a, b documented) int { return strings.Compare(a.pattern(), b.pattern()) })
	return out
}

// TestOpenAPIDocumentsTheRoutes holds openapi.json to the code: it is a
// valid document, its operations are the routes Handler serves (pattern
// and operationId), a request to each reaches that route of the mux, and
// the constraints it states are the service's own.
func TestOpenAPIDocumentsTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if len(doc.Servers) != 0 {
		t.Errorf("the document names servers %v: where the service runs is the caller's to say", doc.Servers)
	}

	s := &server{} // only its routes: no handler runs
	var want, got []string
	for _, rt := range s.routes() {
		want = append(want, rt.pattern+" "+rt.operationID)
	}
	mux := s.mux()
	id := ids.New(notePrefix)
	for _, d := range operations(doc) {
		got = append(got, d.pattern()+" "+d.op.OperationID)
		// The documented path, its parameter filled in, is served by
		// the route of the same pattern (the parameter names agree).
		req := httptest.NewRequest(d.method, strings.ReplaceAll(d.path, "{id}", id), nil)
		if _, p := mux.Handler(req); p != d.pattern() {
			t.Errorf("%s: the mux routes %s %s to %q", d.pattern(), req.Method, req.URL.Path, p)
		}
		if _, ok := d.op.Responses.Map()["401"]; !ok {
			t.Errorf("%s: no 401 documented", d.pattern())
		}
		if strings.Contains(d.path, "{id}") {
			if _, ok := d.op.Responses.Map()["404"]; !ok {
				t.Errorf("%s: no 404 documented", d.pattern())
			}
		}
		if d.op.Security != nil {
			t.Errorf("%s: an operation's own security; the document's (bearer) is meant", d.pattern())
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the document's operations:\n  %s\nthe service's routes:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(doc.Security) != 1 || doc.Components.SecuritySchemes["bearerAuth"] == nil ||
		doc.Components.SecuritySchemes["bearerAuth"].Value.Scheme != "bearer" {
		t.Errorf("the document does not require a bearer token of every operation: %+v", doc.Security)
	}

	// A note id: the documented pattern is ids.Valid for notePrefix.
	var patterns []string
	for _, d := range operations(doc) {
		for _, p := range append(d.item.Parameters, d.op.Parameters...) {
			if p.Value.Name == "id" && p.Value.In == "path" {
				patterns = append(patterns, p.Value.Schema.Value.Pattern)
			}
		}
	}
	patterns = append(patterns, doc.Components.Schemas["Note"].Value.Properties["id"].Value.Pattern)
	if len(patterns) != 3 {
		t.Fatalf("id patterns: %q", patterns)
	}
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("pattern %q: %v", p, err)
		}
		for _, s := range []string{ids.New(notePrefix), ids.New(notePrefix), "note_abcdefghijklmnopqrstuvwxyz", "note_234567abcdefghijklmnopqr",
			"note_", "note_abc", ids.New("usr"), "note_0bcdefghijklmnopqrstuvwxyz", "note_1bcdefghijklmnopqrstuvwxyz", "note_8bcdefghijklmnopqrstuvwxyz",
			"note_Abcdefghijklmnopqrstuvwxyz", "note_abcdefghijklmnopqrstuvwxyz2", "xnote_abcdefghijklmnopqrstuvwxyz", "note_abcdefghijklmnopqrstuvwxyz\n"} {
			if re.MatchString(s) != ids.Valid(s, notePrefix) {
				t.Errorf("pattern %q matches %q: %v; ids.Valid: %v", p, s, re.MatchString(s), ids.Valid(s, notePrefix))
			}
		}
	}

	// The body of a create: the service's limits, and nothing but body.
	create := doc.Paths.Find("/notes").Post
	body := create.RequestBody.Value.Content.Get("application/json").Schema.Value
	if b := body.Properties["body"].Value; b.MinLength != 1 || b.MaxLength == nil || *b.MaxLength != maxBody {
		max := "none"
		if b.MaxLength != nil {
			max = strconv.FormatUint(*b.MaxLength, 10)
		}
		t.Errorf("body: minLength %d, maxLength %s; the service takes 1 to %d bytes", b.MinLength, max, maxBody)
	}
	for in, ok := range map[string]bool{`{"body":"x"}`: true, `{}`: false, `{"body":""}`: false, `{"body":1}`: false,
		`{"body":"x","tenant_id":"pool-co"}`: false, `{"body":"` + strings.Repeat("x", maxBody) + `"}`: true,
		`{"body":"` + strings.Repeat("x", maxBody+1) + `"}`: false} {
		req := httptest.NewRequest("POST", "/notes", strings.NewReader(in))
		req.Header.Set("Content-Type", "application/json")
		err := openapi3filter.ValidateRequestBody(context.Background(), &openapi3filter.RequestValidationInput{Request: req}, create.RequestBody.Value)
		if (err == nil) != ok {
			t.Errorf("create %.40s: the schema says %v; the service takes it: %v", in, err, ok)
		}
	}
}

// TestOpenAPIDescribesTheAnswers validates the live service's answers,
// successes and errors, against the document's responses.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	doc := loadOpenAPI(t)
	w := newWorld(t)
	byPattern := map[string]documented{}
	for _, d := range operations(doc) {
		byPattern[d.pattern()] = d
	}
	// check sends a request of the documented operation pattern and
	// validates the answer against the operation's responses.
	check := func(name, token, pattern, path, in string, wantStatus int) {
		t.Helper()
		d, ok := byPattern[pattern]
		if !ok {
			t.Fatalf("%s: %s is not documented", name, pattern)
		}
		st, hdr, b := w.do(t, token, d.method, path, in)
		if st != wantStatus {
			t.Fatalf("%s: %d %s; want %d", name, st, b, wantStatus)
		}
		params := map[string]string{}
		if id, ok := strings.CutPrefix(path, "/notes/"); ok {
			params["id"] = id
		}
		rvi := &openapi3filter.RequestValidationInput{Request: httptest.NewRequest(d.method, path, nil), PathParams: params,
			Route: &routers.Route{Spec: doc, Path: d.path, PathItem: d.item, Method: d.method, Operation: d.op}}
		if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: rvi, Status: st, Header: hdr, Body: io.NopCloser(bytes.NewReader(b)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}); err != nil {
			t.Errorf("%s: the answer %d %s is not the documented one: %v", name, st, b, err)
		}
		if d.op.Responses.Value(strconv.Itoa(st)) == nil {
			t.Errorf("%s: status %d is not documented (only under default)", name, st)
		}
	}
	tok, other := w.tokens["pool-co"], w.tokens["pool-co/other"]
	n := w.create(t, "pool-co", "documented")
	check("create", tok, "POST /notes", "/notes", `{"body":"x"}`, http.StatusCreated)
	check("list", tok, "GET /notes", "/notes", "", http.StatusOK)
	check("get", tok, "GET /notes/{id}", "/notes/"+n.ID, "", http.StatusOK)
	check("get another tenant's", w.tokens["bridge-co"], "GET /notes/{id}", "/notes/"+n.ID, "", http.StatusNotFound)
	check("get a malformed id", tok, "GET /notes/{id}", "/notes/nope", "", http.StatusNotFound)
	check("create an empty body", tok, "POST /notes", "/notes", `{"body":""}`, http.StatusBadRequest)
	check("create with an extra field", tok, "POST /notes", "/notes", `{"body":"x","tenant_id":"bridge-co"}`, http.StatusBadRequest)
	check("list without a token", "", "GET /notes", "/notes", "", http.StatusUnauthorized)
	check("list with a malformed Authorization", "a b", "GET /notes", "/notes", "", http.StatusBadRequest)
	check("delete another member's", other, "DELETE /notes/{id}", "/notes/"+n.ID, "", http.StatusForbidden)
	check("delete", tok, "DELETE /notes/{id}", "/notes/"+n.ID, "", http.StatusNoContent)
	check("delete it again", tok, "DELETE /notes/{id}", "/notes/"+n.ID, "", http.StatusNotFound)
}
