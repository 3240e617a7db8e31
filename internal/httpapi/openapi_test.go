package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// servedOutsideRoutes are paths the server serves that Server.Routes() does
// not list.
var servedOutsideRoutes = map[string]bool{"GET /metrics": true}

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

type openAPIOperation struct {
	OperationID string             `json:"operationId"`
	Security    *[]map[string]any  `json:"security"` // nil: the document's default
	Parameters  []openAPIParameter `json:"parameters"`
	Responses   map[string]any     `json:"responses"`
}

type openAPIParameter struct {
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
	Ref      string `json:"$ref"`
}

// TestOpenAPIMatchesRoutes keeps openapi.json in step with Server.Routes():
// every route is documented with its method, and nothing is documented that
// is not served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		r := send(t, env.URL, call{method: "GET", path: "/v1/openapi.json"})
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /v1/openapi.json: %d %s", r.Status, r.Header.Get("Content-Type"))
		}
		var doc openAPIDoc
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatalf("openapi.json is not JSON: %v", err)
		}
		var tree map[string]any
		if err := json.Unmarshal(r.Body, &tree); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
			t.Fatalf("not an OpenAPI 3 document: openapi=%q, %d paths", doc.OpenAPI, len(doc.Paths))
		}

		documented := map[string]bool{}
		for path, ops := range doc.Paths {
			for method := range ops {
				switch method {
				case "get", "put", "post", "delete", "options", "head", "patch", "trace":
					documented[strings.ToUpper(method)+" "+path] = true
				}
			}
		}
		registered := map[string]httpapi.Route{}
		for _, rt := range env.API.Routes() {
			key := rt.Method + " " + rt.Path // ServeMux {tenant} is OpenAPI's {tenant}
			registered[key] = rt
			if !documented[key] {
				t.Errorf("route %s (%s) is not in openapi.json", key, rt.Name)
			}
		}
		for key := range documented {
			if _, ok := registered[key]; !ok && !servedOutsideRoutes[key] {
				t.Errorf("openapi.json documents %s, which is not a registered route", key)
			}
		}
		for key := range servedOutsideRoutes {
			parts := strings.SplitN(key, " ", 2)
			if r := send(t, env.URL, call{method: parts[0], path: parts[1]}); r.Status != 200 {
				t.Errorf("%s is documented as served outside Routes() but answers %d", key, r.Status)
			}
		}

		// Each operation: security matches the route's access, path
		// parameters are declared, responses are documented.
		opIDs := map[string]string{}
		for key, rt := range registered {
			path := rt.Path
			raw := doc.Paths[path][strings.ToLower(rt.Method)]
			if raw == nil {
				continue
			}
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Errorf("%s: operation does not decode: %v", key, err)
				continue
			}
			public := op.Security != nil && len(*op.Security) == 0
			if public != (rt.Access == httpapi.Public) {
				t.Errorf("%s: openapi says public=%v, the route's access is %v", key, public, rt.Access)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses documented", key)
			}
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", key)
			} else if other, dup := opIDs[op.OperationID]; dup {
				t.Errorf("%s: operationId %q also used by %s", key, op.OperationID, other)
			} else {
				opIDs[op.OperationID] = key
			}
			if strings.Contains(path, "{tenant}") {
				params := append([]openAPIParameter{}, op.Parameters...)
				if pp, ok := doc.Paths[path]["parameters"]; ok {
					var shared []openAPIParameter
					if err := json.Unmarshal(pp, &shared); err == nil {
						params = append(params, shared...)
					}
				}
				ok := slices.ContainsFunc(params, func(p openAPIParameter) bool {
					if p.Ref != "" {
						return resolves(tree, p.Ref)
					}
					return p.Name == "tenant" && p.In == "path" && p.Required
				})
				if !ok {
					t.Errorf("%s: the {tenant} path parameter is not declared", key)
				}
			}
		}

		// Every $ref points at something in the document.
		walkRefs(tree, func(ref string) {
			if !resolves(tree, ref) {
				t.Errorf("$ref %q does not resolve", ref)
			}
		})
	})
}

// walkRefs calls fn with every "$ref" value in v.
func walkRefs(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				fn(s)
			}
			walkRefs(e, fn)
		}
	case []any:
		for _, e := range x {
			walkRefs(e, fn)
		}
	}
}

// resolves reports whether a local JSON pointer ref ("#/a/b") names a value in doc.
func resolves(doc map[string]any, ref string) bool {
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, tok := range strings.Split(ptr, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[tok]; !ok {
			return false
		}
	}
	return true
}
