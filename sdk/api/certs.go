package api

import "time"

// Certificate is a stored TLS certificate of a custom domain and the ACME
// CA that issued it.
type Certificate struct {
	Name     string    `json:"name"`
	CA       string    `json:"ca"` // the issuing CA's directory URL
	NotAfter time.Time `json:"not_after"`
	Serial   string    `json:"serial"` // hexadecimal
}

// ReissueCertificates moves certificates of a CA to the next CA in the
// node's list.
type ReissueCertificates struct {
	FromCA string `json:"from_ca"`
	// Max bounds how many are moved by this request (0: all). The CLI
	// moves one per request and prints each.
	Max int `json:"max,omitempty"`
}

// ReissuedCertificate is one certificate a reissue moved, or failed to.
type ReissuedCertificate struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
}

// CertificatesReissued is what a reissue did.
type CertificatesReissued struct {
	Items     []ReissuedCertificate `json:"items"`
	Moved     int                   `json:"moved"`
	Remaining int                   `json:"remaining"` // still from the CA, failed ones included
}
