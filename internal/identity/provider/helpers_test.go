package provider_test

import (
	"encoding/base64"

	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func signingIssuer(t tenant.ID) signing.Issuer { return signing.Issuer{Tenant: t} }
