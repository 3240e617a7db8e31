package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
)

// Problem is an RFC 9457 problem detail with Bulkhead's extensions.
type Problem = httpx.Problem

// problemFor maps any error to the problem a client sees.
func problemFor(err error) Problem { return httpx.ProblemFor(err) }

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	p.RequestID = requestID(r.Context())
	if p.Status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "err", err, "path", r.URL.Path)
	}
	httpx.WriteProblem(w, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// MaxBodySize is the largest request body the API reads.
const MaxBodySize = 1 << 20

// decode reads a JSON object from r's body into v, refusing bodies over
// MaxBodySize, unknown fields, wrong types and trailing data, and naming the
// offending field.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errs.E(errs.Invalid, "unsupported_media_type", "send the body as application/json")
		}
	}
	tooLarge := &errs.Error{Kind: errs.TooLarge, Code: "body_too_large", Detail: fmt.Sprintf("the request body is over the %d-byte limit", MaxBodySize)}
	var maxErr *http.MaxBytesError
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodySize))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			if errors.As(err, &maxErr) {
				return tooLarge
			}
			return errs.E(errs.Invalid, "invalid_json", "the body must hold exactly one JSON object")
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var b64Err base64.CorruptInputError
	switch {
	case errors.As(err, &b64Err):
		return errs.E(errs.Invalid, "invalid_base64", "a binary field (plaintext, ciphertext, …) is not valid standard base64 (with padding)")
	case errors.As(err, &maxErr):
		return tooLarge
	case errors.Is(err, io.EOF):
		return errs.E(errs.Invalid, "invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return errs.E(errs.Invalid, "invalid_json", "the body must be a JSON object")
		}
		return errs.Field(field, "invalid_field_type", "field %q must be %s, not %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return errs.E(errs.Invalid, "invalid_json", "the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errs.Field(field, "unknown_field", "field %q is not part of this request", field)
	}
	return errs.E(errs.Invalid, "invalid_json", "the body could not be read as JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "float64", "uint", "uint64":
		return "a number"
	}
	return "of another type"
}
