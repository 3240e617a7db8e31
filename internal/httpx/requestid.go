package httpx

import "regexp"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// ValidRequestID reports whether id, a client's X-Request-Id, may be kept
// and logged as it is: 8 to 64 characters of a safe alphabet, so that a
// client cannot forge log lines or fill them. The API and the gateway
// both keep a valid one and make their own otherwise.
func ValidRequestID(id string) bool { return validRequestID.MatchString(id) }
