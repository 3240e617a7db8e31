package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// toyYAML is toyDoc's API as YAML, with what YAML adds: anchors, aliases,
// block scalars.
const toyYAML = `openapi: 3.1.0
info: {title: toy, version: "1"}
servers:
  - url: "{scheme}://127.0.0.1:{port}/api"
    variables:
      scheme: {default: http, enum: [http, https]}
      port: {default: "8080"}
security: [{bearer: []}]
paths:
  /items:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/NewItem"}
      responses: &created {"201": {description: created}}
    get:
      parameters:
        - {name: q, in: query, required: true, schema: {type: string, minLength: 3}}
      responses: *created
  /items/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {responses: *created}
    delete: {responses: *created}
components:
  securitySchemes: {bearer: {type: http, scheme: bearer}}
  schemas:
    NewItem:
      type: object
      description: |
        An item.
      required: [title, tags, n]
      properties:
        title: {type: string, maxLength: 200}
        tags: {type: array, minItems: 2, items: {type: string, format: uuid}}
        n: {type: [integer, "null"], minimum: 3, exclusiveMinimum: true}
`

// recursiveDoc has schemas that refer to themselves and each other.
const recursiveDoc = `{
 "openapi": "3.0.3", "info": {"title": "rec", "version": "1"},
 "paths": {
  "/nodes": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}, "responses": {"201": {"description": "x"}}}},
  "/nodes/{id}": {"get": {"responses": {"200": {"description": "x"}}}},
  "/trees": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}, "responses": {"201": {"description": "x"}}}},
  "/trees/{id}": {"put": {"requestBody": {"content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/A"}, {"$ref": "#/components/schemas/B"}]}}}}, "responses": {"200": {"description": "x"}}}}
 },
 "components": {"schemas": {
  "Node": {"type": "object", "required": ["children"], "properties": {"children": {"type": "array", "minItems": 2, "items": {"$ref": "#/components/schemas/Node"}}}},
  "A": {"allOf": [{"$ref": "#/components/schemas/B"}, {"type": "object", "required": ["a"], "properties": {"a": {"$ref": "#/components/schemas/A"}}}]},
  "B": {"anyOf": [{"$ref": "#/components/schemas/A"}, {"type": "string"}]}
 }}
}`

// FuzzLoadDocument: loadDocument returns a document or an error wrapping
// ErrDocument, never panics; and for a document it accepts, filling and
// generating a request for every operation ends soon, with bounded
// bodies.
func FuzzLoadDocument(f *testing.F) {
	for _, seed := range []string{
		toyDoc, toyYAML, recursiveDoc,
		"", "{", "[]", "null", "{}", "openapi: 3.0.3", `{"openapi": "2.0", "paths": {"/a": {}}}`,
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}`,
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"a": {"get": {}}}}`,
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/{a}{b}/{c}.json": {"get": {}}, "/x/{id}": {"post": {}}}}`,
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": "http://{h}/", "variables": {"h": {"default": "evil.example"}}}], "paths": {"/a": {"get": {}}}}`,
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"$ref": "http://127.0.0.1:1/x.json"}}}`,
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S"}}}}}}}, "components": {"schemas": {"S": {"$ref": "#/components/schemas/S"}}}}`,
		"openapi: 3.0.3\nx-a: &a [1, 2]\nx-b: [*a, *a]\npaths: {/a: {get: {}}}\n",
		// Tried 8^12 times within the depth bound, before the generator
		// had a bound on its work.
		`{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S"}}}}}}},
		  "components": {"schemas": {"S": {"oneOf": [{"$ref": "#/components/schemas/S"}, {"$ref": "#/components/schemas/S"}, {"$ref": "#/components/schemas/S"}, {"$ref": "#/components/schemas/S"},
		    {"$ref": "#/components/schemas/S"}, {"$ref": "#/components/schemas/S"}, {"$ref": "#/components/schemas/S"}, {"$ref": "#/components/schemas/S"}]}}}}`,
	} {
		f.Add([]byte(seed))
	}
	base, err := url.Parse("http://127.0.0.1:8080/api")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := loadDocument(context.Background(), data, base)
		if err != nil {
			if !errors.Is(err, ErrDocument) {
				t.Fatalf("an error not wrapping ErrDocument: %v", err)
			}
			return
		}
		if len(d.ops) > maxOperations {
			t.Fatalf("accepted a document of %d operations", len(d.ops))
		}
		start := time.Now()
		r := fuzzRun(d)
		for _, op := range d.ops {
			for _, id := range r.ids {
				f, why := r.fill(op, id, id.Tenant)
				if why == "" && !strings.HasPrefix(f.path, "/") {
					t.Fatalf("%s: filled path %q", op.ID, f.path)
				}
				body, query, why := r.request(op, id, true)
				if why != "" {
					continue
				}
				if len(body) > maxGenerated {
					t.Fatalf("%s: a body of %d bytes", op.ID, len(body))
				}
				if body != nil && !json.Valid(body) {
					t.Fatalf("%s: a body that is not JSON: %q", op.ID, body)
				}
				if n := len(query.Encode()); n > 3*maxGenerated {
					t.Fatalf("%s: a query of %d bytes", op.ID, n)
				}
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("generating requests for %d operations took %v", len(r.doc.ops), d)
		}
	})
}

// fuzzRun is a run of d with two identities, each with an object for
// every create, as far as Run would have got without sending anything.
func fuzzRun(d *document) *run {
	r := &run{doc: d, ids: []*Identity{{Label: "a", Tenant: "ta", Token: "tok-a"}, {Label: "b", Tenant: "tb", Token: "tok-b"}},
		creates: map[string]*operation{}, objects: map[string]map[*operation]*object{},
		markers: map[string][]string{}, marked: map[string]bool{}, made: map[string][]string{}, probed: map[string]bool{}, skipped: map[string]string{},
		report: &Report{}}
	r.findCreates(d.ops)
	for _, id := range r.ids {
		r.objects[id.Label] = map[*operation]*object{}
		for _, c := range r.creates {
			r.objects[id.Label][c] = &object{owner: id, create: c, id: "obj-" + id.Label}
		}
	}
	return r
}

// FuzzParseRecipe: ParseRecipe never panics; a recipe it accepts is
// well formed, reads back as itself, and its templates expand in bounded
// time whatever ids the application gave its objects.
func FuzzParseRecipe(f *testing.F) {
	f.Add([]byte(`{
	  "params": {"tenant": "{tenant}", "cluster": "app"},
	  "operations": {
	    "POST /projects": {"body": {"name": "{marker}"}, "id": "/project/id"},
	    "POST /projects/{project}/tasks": {"body": {"title": "{marker}", "project": "{id:POST /projects}"}, "query": {"p": "{id:POST /projects}"}},
	    "POST /tenants/{tenant}/suspend": {"skip": "it would lock the probe out"}
	  }
	}`), "{id:POST /projects}")
	f.Add([]byte(`{"operations": {"POST /x": {"create": true, "body": [1, {"a": "{id:POST /x}{id:POST /x}"}]}}}`), "{id:POST /x}{id:POST /x}")
	f.Add([]byte(`{"params": {"a": "{id:"}}`), "x{id:")
	f.Add([]byte(`{"operations": {"get /x": {}}}`), "")
	f.Add([]byte(`{"operations": {"GET x": {}}}`), "")
	f.Add([]byte(`{"operations": {"GET /x": {"id": "x"}}}`), "")
	f.Add([]byte(`{"skip": "x"}`), "")
	f.Add([]byte(`{} {}`), "")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		rec, err := ParseRecipe(data)
		if err != nil {
			return
		}
		if rec == nil {
			t.Fatal("no recipe and no error")
		}
		for key, op := range rec.Operations {
			method, path, ok := strings.Cut(key, " ")
			if !ok || method != strings.ToUpper(method) || !strings.HasPrefix(path, "/") {
				t.Fatalf("accepted operation %q", key)
			}
			if op.Body != nil && !json.Valid(op.Body) {
				t.Fatalf("accepted a body that is not JSON: %q", op.Body)
			}
		}
		// It reads back as itself.
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRecipe(b)
		if err != nil {
			t.Fatalf("a recipe does not read back: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(again)
		if !bytes.Equal(b, b2) {
			t.Fatalf("a recipe reads back as another:\n%s\n%s", b, b2)
		}
		// Its templates expand, with objects the application named id.
		owner := &Identity{Label: "a", Tenant: "ta"}
		r := &run{recipe: rec, markers: map[string][]string{}, marked: map[string]bool{}, objects: map[string]map[*operation]*object{"a": {}}}
		for key := range rec.Operations {
			c := &operation{ID: key}
			r.objects["a"][c] = &object{owner: owner, create: c, id: id}
		}
		start := time.Now()
		var templates []string
		for _, v := range rec.Params {
			templates = append(templates, v)
		}
		for _, op := range rec.Operations {
			for _, v := range op.Query {
				templates = append(templates, v)
			}
		}
		for _, tmpl := range templates {
			out, why := r.expand(tmpl, owner, owner.Tenant)
			if why == "" && !strings.ContainsAny(tmpl, "{") && out != tmpl {
				t.Fatalf("expand(%q) = %q: a template without templates changed", tmpl, out)
			}
		}
		for _, op := range rec.Operations {
			if op.Body == nil {
				continue
			}
			var v any
			if err := json.Unmarshal(op.Body, &v); err != nil {
				t.Fatalf("a body it accepted does not unmarshal: %v", err)
			}
			r.expandValue(v, owner)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("expanding took %v", d)
		}
	})
}

// separators are the characters absentID keeps in place.
const separators = "_-.:"

// FuzzAbsentID: absentID never returns its input; for an id that is not
// all digits and has a letter or digit to change, it returns one of the
// same length, with every character that is not an ASCII letter or
// digit (the separators among them) in place and every changed one of
// the same kind.
func FuzzAbsentID(f *testing.F) {
	for _, seed := range []string{"", "1", "42", "0000000000000000000000", "itm_01HZX3", "a", "z", "Z", "zz", "ZZZ-zzz",
		"3f2504e0-4f89-11d3-9a0c-0305e82c3301", "tenant:acme.eu-1", "...", "-", "é", "ééé1", "a/../../admin", "{id}",
		"prj-7", "USR_ABCDEFGHIJ", "x.y.z"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		out := absentID(id)
		if out == id {
			t.Fatalf("absentID(%q) = %q, the id itself", id, out)
		}
		if isDigits(id) {
			if !isDigits(out) {
				t.Fatalf("absentID(%q) = %q, not digits", id, out)
			}
			return
		}
		if !strings.ContainsFunc(id, func(c rune) bool { return class(c) != "" }) {
			return // nothing to change in place: it gets longer
		}
		if len(out) != len(id) {
			t.Fatalf("absentID(%q) = %q, of another length", id, out)
		}
		for i := range len(id) {
			in, got := rune(id[i]), rune(out[i])
			switch {
			case class(in) == "" && got != in:
				t.Fatalf("absentID(%q) = %q: %q at %d changed", id, out, in, i)
			case class(in) != class(got):
				t.Fatalf("absentID(%q) = %q: %q at %d became %q", id, out, in, i, got)
			case strings.ContainsRune(separators, in) && got != in:
				t.Fatalf("absentID(%q) = %q: a separator moved", id, out)
			}
		}
	})
}

// FuzzNormalize: normalize and replaceToken never panic; normalize
// changes nothing in a body that does not hold the id; and it leaves no
// standalone occurrence of an id that starts and ends with a word
// character (for another id, the "{id}" it puts in changes what stands
// next to an occurrence, and "id" itself is in "{id}").
func FuzzNormalize(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"code": "not_found", "id": "itm_1"}`, "itm_1"},
		{`{"tenant": "a", "code": "not_found"}`, "a"},
		{`aa a`, "a"},
		{`xa.a.a`, "a.a"},
		{`/items/a%2Fb and a/b`, "a/b"},
		{`{id} id`, "id"},
		{``, ""},
		{`abc`, ""},
	} {
		f.Add([]byte(seed[0]), seed[1])
	}
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		orig := bytes.Clone(body)
		out := normalize(body, id)
		replaceToken(body, id)
		if !bytes.Equal(body, orig) {
			t.Fatalf("normalize changed its argument")
		}
		if id == "" || !bytes.Contains(body, []byte(id)) && !bytes.Contains(body, []byte(url.PathEscape(id))) {
			if !bytes.Equal(out, body) {
				t.Fatalf("normalize(%q, %q) = %q, with no id in the body", body, id, out)
			}
			return
		}
		if !wordByte(id[0]) || !wordByte(id[len(id)-1]) || id == "id" || strings.ContainsAny(id, "{}") {
			return
		}
		if i := standaloneAt(out, id); i >= 0 {
			t.Fatalf("normalize(%q, %q) = %q: %q stands alone at %d", body, id, out, id, i)
		}
	})
}

func wordByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// standaloneAt is where tok first stands in b as a whole token, or -1.
func standaloneAt(b []byte, tok string) int {
	for i := 0; i+len(tok) <= len(b); i++ {
		end := i + len(tok)
		if string(b[i:end]) == tok && (i == 0 || !wordByte(b[i-1])) && (end == len(b) || !wordByte(b[end])) {
			return i
		}
	}
	return -1
}
