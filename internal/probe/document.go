package probe

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Bounds on a document. An application's document is untrusted input to
// the probe (it may come from the application under test), so its size,
// its number of operations and the depth the probe follows its schemas to
// are bounded; external references are never fetched.
const (
	MaxDocumentBytes = 8 << 20
	maxOperations    = 5000
	maxSchemaDepth   = 12
)

// ErrDocument is wrapped by every error about the document itself.
var ErrDocument = errors.New("probe: the OpenAPI document is not usable")

// operation is one method on one path of the document.
type operation struct {
	Method   string
	Path     string   // the template, as the document spells it
	Segments []string // Path split on "/", without the leading empty one
	ID       string   // "METHOD /path", the name findings and recipes use
	OpID     string   // the document's operationId, if any
	Op       *openapi3.Operation
	Public   bool // the document says no credential is needed (security: [])
	Params   []*openapi3.Parameter
}

// paramName reports whether a path segment is a whole parameter, "{id}".
// A segment that mixes text and a parameter ("v{n}.json") is not one the
// probe can fill with an object's id, and is not treated as one: fill
// skips its operations.
func paramName(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' && !strings.ContainsAny(seg[1:len(seg)-1], "{}") {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// document is an application's API as the probe sees it.
type document struct {
	doc *openapi3.T
	ops []*operation
}

// loadDocument parses and checks an OpenAPI 3 document (JSON or YAML).
// base is the only host the probe talks to: a document whose servers name
// another host is refused rather than quietly ignored, since it means the
// document and the base URL disagree about which application is probed.
func loadDocument(ctx context.Context, data []byte, base *url.URL) (*document, error) {
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("%w: it is %d bytes, more than the %d the probe reads", ErrDocument, len(data), MaxDocumentBytes)
	}
	l := openapi3.NewLoader()
	l.Context = ctx
	l.IsExternalRefsAllowed = false
	// A document may not make the loader read files or URLs. In this
	// kin-openapi a ReadFromURIFunc replaces the IsExternalRefsAllowed
	// check rather than adding to it, so this function is the guard
	// (hostile_test.go's external-reference tests hold it to that).
	l.ReadFromURIFunc = func(*openapi3.Loader, *url.URL) ([]byte, error) {
		return nil, errors.New("external references are not followed")
	}
	doc, err := l.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDocument, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fmt.Errorf("%w: openapi version %q; the probe reads OpenAPI 3.0 and 3.1", ErrDocument, doc.OpenAPI)
	}
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		return nil, fmt.Errorf("%w: it has no paths", ErrDocument)
	}
	if err := checkServers(doc.Servers, base, "the document"); err != nil {
		return nil, err
	}
	d := &document{doc: doc}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%w: path %q does not start with /", ErrDocument, path)
		}
		// A "." or ".." segment is resolved by the server or a proxy in
		// front of it: a request would leave the base URL's path.
		if segs := strings.Split(path, "/"); slices.Contains(segs, ".") || slices.Contains(segs, "..") {
			return nil, fmt.Errorf("%w: path %q has a . or .. segment", ErrDocument, path)
		}
		if err := checkServers(item.Servers, base, "path "+path); err != nil {
			return nil, err
		}
		for method, op := range item.Operations() {
			if err := checkServers(deref(op.Servers), base, method+" "+path); err != nil {
				return nil, err
			}
			if len(d.ops) >= maxOperations {
				return nil, fmt.Errorf("%w: more than %d operations", ErrDocument, maxOperations)
			}
			d.ops = append(d.ops, newOperation(doc, path, item, method, op))
		}
	}
	slices.SortFunc(d.ops, func(a, b *operation) int { return strings.Compare(a.ID, b.ID) })
	return d, nil
}

func deref(s *openapi3.Servers) openapi3.Servers {
	if s == nil {
		return nil
	}
	return *s
}

func newOperation(doc *openapi3.T, path string, item *openapi3.PathItem, method string, op *openapi3.Operation) *operation {
	o := &operation{Method: strings.ToUpper(method), Path: path, Segments: strings.Split(path, "/")[1:], Op: op, OpID: op.OperationID}
	o.ID = o.Method + " " + path
	security := doc.Security
	if op.Security != nil {
		security = *op.Security
	}
	o.Public = len(security) == 0
	// An operation's parameters override the path item's of the same name
	// and place.
	seen := map[string]bool{}
	for _, refs := range []openapi3.Parameters{op.Parameters, item.Parameters} {
		for _, r := range refs {
			if r == nil || r.Value == nil || seen[r.Value.In+"\x00"+r.Value.Name] {
				continue
			}
			seen[r.Value.In+"\x00"+r.Value.Name] = true
			o.Params = append(o.Params, r.Value)
		}
	}
	return o
}

// checkServers refuses servers that name a host other than base's. A
// relative server URL ("/api") is fine, and so is another port or scheme
// on the same host (a document often names the default listen address):
// the base URL is where the probe sends requests, and it must already
// include any path prefix.
func checkServers(servers openapi3.Servers, base *url.URL, where string) error {
	for _, s := range servers {
		if s == nil {
			continue
		}
		raw := s.URL
		for name, v := range s.Variables {
			if v != nil {
				raw = strings.ReplaceAll(raw, "{"+name+"}", v.Default)
			}
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%w: %s lists server %q, which is not a URL", ErrDocument, where, s.URL)
		}
		if u.Host == "" && u.Scheme == "" {
			continue
		}
		if !strings.EqualFold(u.Hostname(), base.Hostname()) {
			return fmt.Errorf("%w: %s lists server %q, a host other than %s, the only one the probe talks to; "+
				"remove it from the document or probe that host instead", ErrDocument, where, s.URL, base.Hostname())
		}
	}
	return nil
}

// sameHost reports whether u is on base's scheme, host and port.
func sameHost(u, base *url.URL) bool {
	return strings.EqualFold(u.Scheme, base.Scheme) && strings.EqualFold(hostPort(u), hostPort(base))
}

// hostPort is u's host with its port made explicit.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return u.Host + ":443"
	default:
		return u.Host + ":80"
	}
}
