package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

type claimsKey struct{}

// FromContext returns the Claims that the middleware put in ctx.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware calls next with the request's verified Claims in its context
// (see FromContext). A request without a valid bearer token gets 401 with an
// RFC 6750 challenge, WWW-Authenticate: Bearer realm="…", error="invalid_token",
// error_description="…" (no error when it had no token at all), and an RFC 9457
// application/problem+json body whose "code" is the Error's Code; a malformed
// Authorization header gets 400 (invalid_request), and a token whose issuer's
// keys cannot be fetched gets 503 with Retry-After.
func (v *Validator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearerToken(r)
		if err == nil {
			var c *Claims
			if c, err = v.Validate(r.Context(), token); err == nil {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
				return
			}
		}
		v.writeError(w, err)
	})
}

// bearerToken returns the token of the request's Authorization header.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return "", ErrTokenMissing
	}
	if len(h) > 1 {
		return "", refuse(ErrInvalidRequest, "the request has more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(h[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrTokenMissing // another scheme: no bearer token
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", refuse(ErrInvalidRequest, "the Authorization header's bearer token is malformed")
	}
	return token, nil
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func (v *Validator) writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: "internal", Description: "the token could not be validated"}
	}
	st := status(e)
	switch {
	case st == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "10")
	case e.Code == ErrTokenMissing.Code:
		w.Header().Set("WWW-Authenticate", `Bearer realm=`+quote(v.realm))
	case e.Code == ErrInvalidRequest.Code:
		w.Header().Set("WWW-Authenticate", `Bearer realm=`+quote(v.realm)+`, error="invalid_request", error_description=`+quote(e.Description))
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm=`+quote(v.realm)+`, error="invalid_token", error_description=`+quote(e.Description))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(st)
	json.NewEncoder(w).Encode(problem{
		Type:   "urn:bulkhead:problem:" + e.Code,
		Title:  http.StatusText(st),
		Status: st,
		Detail: e.Description,
		Code:   e.Code,
	})
}

// quote makes s an RFC 9110 quoted-string of printable ASCII.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
