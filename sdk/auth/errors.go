package auth

import "net/http"

// Error is a refusal of Validate or of the middleware. Code is stable and is
// what a program should compare (with errors.Is against the Err… values);
// Description is a fixed, human sentence. Neither ever holds token material:
// no token, segment, signature or claim value. The middleware sends Code and
// Description, never Err.
type Error struct {
	Code        string
	Description string
	Err         error // cause of a key-fetch failure, or nil: it may name the issuer's URL, never the token or a part of it
}

func (e *Error) Error() string {
	s := "auth: " + e.Code + ": " + e.Description
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, auth.ErrTokenExpired) holds for every expired token.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// The refusals. Each has a stable Code, sent as the problem+json "code".
var (
	ErrTokenMissing     = &Error{Code: "token_missing", Description: "the request has no bearer token"}
	ErrInvalidRequest   = &Error{Code: "invalid_request", Description: "the Authorization header is malformed"}
	ErrTokenTooLarge    = &Error{Code: "token_too_large", Description: "the token is larger than 8 KiB"}
	ErrTokenMalformed   = &Error{Code: "token_malformed", Description: "the token is not a compact JWS"}
	ErrAlgorithm        = &Error{Code: "token_algorithm_not_allowed", Description: "the token is not signed with ES256 or EdDSA"}
	ErrUnknownKey       = &Error{Code: "token_unknown_key", Description: "the token's key is not in its issuer's key set"}
	ErrSignature        = &Error{Code: "token_signature_invalid", Description: "the token's signature does not verify"}
	ErrIssuer           = &Error{Code: "token_issuer_invalid", Description: "the token's issuer is not accepted"}
	ErrTenantMismatch   = &Error{Code: "token_tenant_mismatch", Description: "the token's tenant does not match its issuer"}
	ErrAudience         = &Error{Code: "token_audience_invalid", Description: "the token is not meant for this audience"}
	ErrTokenExpired     = &Error{Code: "token_expired", Description: "the token has expired"}
	ErrTokenNotYetValid = &Error{Code: "token_not_yet_valid", Description: "the token is not valid yet"}
	ErrClaims           = &Error{Code: "token_claims_invalid", Description: "the token's claims are missing or malformed"}
	ErrTokenType        = &Error{Code: "token_type_invalid", Description: "the token is not an access token (JOSE header typ at+jwt)"}
	ErrKeysUnavailable  = &Error{Code: "keys_unavailable", Description: "the issuer's signing keys could not be fetched; retry later"}
)

// refuse returns base with a more precise description (a fixed string).
func refuse(base *Error, description string) *Error {
	return &Error{Code: base.Code, Description: description}
}

// status is the HTTP status the middleware answers err with.
func status(e *Error) int {
	switch e.Code {
	case ErrInvalidRequest.Code:
		return http.StatusBadRequest
	case ErrKeysUnavailable.Code:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}
