package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Recipe tells the probe what a document alone cannot: bodies that need
// real values (a Cedar statement, a pattern), where a created object's id
// is in the answer, path parameters that name neither the tenant nor an
// object the probe creates, and operations to leave alone. It is JSON:
//
//	{
//	  "params": {"tenant": "{tenant}", "cluster": "app"},
//	  "operations": {
//	    "POST /projects": {"body": {"name": "{marker}"}, "id": "/project/id"},
//	    "POST /projects/{project}/tasks": {"body": {"title": "{marker}"}},
//	    "POST /tenants/{tenant}/suspend": {"skip": "it would lock the probe out"}
//	  }
//	}
//
// In every string of params and bodies, {tenant} is the calling
// identity's tenant, {marker} a fresh marker (a string the probe then
// looks for in other tenants' answers) and {id:METHOD /path} the id of the
// object the identity created with that operation.
type Recipe struct {
	// Params fill path parameters by name, for every operation.
	Params map[string]string `json:"params,omitempty"`
	// Operations, by "METHOD /path" as the document spells the path.
	Operations map[string]OperationRecipe `json:"operations,omitempty"`
}

// OperationRecipe is what a recipe says of one operation.
type OperationRecipe struct {
	// Body is the JSON request body, used instead of one generated from
	// the operation's schema.
	Body json.RawMessage `json:"body,omitempty"`
	// Query parameters to send.
	Query map[string]string `json:"query,omitempty"`
	// ID is a JSON pointer (RFC 6901) to the created object's id in a
	// create's answer; by default the probe takes "id", then the one
	// property whose name says it is an id (and names neither the tenant
	// nor the request), at the top or in a "data" envelope, then the
	// Location header.
	ID string `json:"id,omitempty"`
	// Create marks a POST as making objects even when no other operation
	// of the document takes them by id.
	Create bool `json:"create,omitempty"`
	// Skip leaves the operation out, with this reason in the report.
	Skip string `json:"skip,omitempty"`
}

// maxRecipeBytes bounds a recipe file.
const maxRecipeBytes = 1 << 20

// ParseRecipe reads a recipe, refusing unknown fields (a misspelt "skip"
// must not quietly send a destructive request).
func ParseRecipe(data []byte) (*Recipe, error) {
	if len(data) > maxRecipeBytes {
		return nil, fmt.Errorf("probe: the recipe is %d bytes, more than %d", len(data), maxRecipeBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("probe: the recipe: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("probe: the recipe: more than one JSON value")
	}
	for key, op := range r.Operations {
		method, path, ok := strings.Cut(key, " ")
		if !ok || method != strings.ToUpper(method) || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf(`probe: the recipe: operation %q is not "METHOD /path"`, key)
		}
		if op.Body != nil && !json.Valid(op.Body) {
			return nil, fmt.Errorf("probe: the recipe: the body of %s is not JSON", key)
		}
		if op.ID != "" && !strings.HasPrefix(op.ID, "/") {
			return nil, fmt.Errorf("probe: the recipe: the id of %s must be a JSON pointer starting with /", key)
		}
	}
	return &r, nil
}

// operation is the recipe's entry for op, or the zero entry.
func (r *Recipe) operation(op string) OperationRecipe {
	if r == nil {
		return OperationRecipe{}
	}
	return r.Operations[op]
}

// param is the recipe's value template for a path parameter.
func (r *Recipe) param(name string) (string, bool) {
	if r == nil {
		return "", false
	}
	v, ok := r.Params[name]
	return v, ok
}

// pointer follows a JSON pointer into v.
func pointer(v any, ptr string) (any, bool) {
	if ptr == "" {
		return v, true
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[tok]; !ok {
				return nil, false
			}
		case []any:
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}
