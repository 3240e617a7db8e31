package client

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for the gateway's certificates (package sdk/api), under
// this package's names.
type (
	Certificate          = api.Certificate
	ReissueCertificates  = api.ReissueCertificates
	CertificatesReissued = api.CertificatesReissued
	ReissuedCertificate  = api.ReissuedCertificate
)

// ListCertificates lists the gateway's certificates and the CA of each.
func (c *Client) ListCertificates(ctx context.Context) ([]Certificate, error) {
	var out api.List[Certificate]
	err := c.Do(ctx, http.MethodGet, "/v1/certs", nil, nil, &out)
	return out.Items, err
}

// ReissueCertificates moves certificates of a CA to the next CA in the
// node's list (at most in.Max of them; 0: all).
func (c *Client) ReissueCertificates(ctx context.Context, in ReissueCertificates) (CertificatesReissued, error) {
	var out CertificatesReissued
	err := c.Do(ctx, http.MethodPost, "/v1/certs/reissue", nil, in, &out)
	return out, err
}
