// Package hooksig signs the webhooks Bulkhead sends (connections' alerts,
// Bulkhead's own lifecycle events) and checks such a signature, the way
// a receiver does. There is one scheme for every webhook:
//
//	Bulkhead-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// under the endpoint's secret (whsec_…, shown once when the endpoint is
// made). The time is inside the MAC, so a receiver that refuses old
// timestamps refuses replays too.
package hooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header carries a webhook's signature.
const Header = "Bulkhead-Signature"

// Sign returns the Header value of body sent at t under secret.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// ErrSignature is Verify's answer to a missing, malformed, wrong or stale
// signature; it says no more, as a receiver's answer should not.
var ErrSignature = errors.New("hooksig: bad signature")

// Verify checks a Header value of body under secret, in constant time,
// and that its time is within tolerance of now (0: any time).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	got, herr := hex.DecodeString(sig)
	if err != nil || herr != nil || !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); tolerance > 0 && (d > tolerance || d < -tolerance) {
		return ErrSignature
	}
	return nil
}
