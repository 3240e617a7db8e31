package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// conversion runs f on a value of S filled as mode says and returns both
// sides.
func conversion[S, W any](f func(S) W) func(mode int) (any, any) {
	return func(mode int) (any, any) {
		var s S
		n := 0
		fill(reflect.ValueOf(&s).Elem(), mode, &n)
		return s, f(s)
	}
}

// TestWireConversions checks that each conversion between a service's type
// and the API's body keeps every byte: the service type, encoded with its
// own tags, and the converted body encode the same, whether the value is
// zero, empty (slices and maps without elements, which must not turn into
// null) or full. A field added to one side and not the other fails it.
func TestWireConversions(t *testing.T) {
	t.Parallel()
	cases := map[string]func(mode int) (any, any){
		// What the server writes.
		"tenant":             conversion(wireTenant),
		"tenant page":        conversion(wireTenantPage),
		"tier":               conversion(wireTier),
		"workflow":           conversion(wireWorkflow),
		"audit event":        conversion(wireEvent),
		"audit page":         conversion(wireAuditPage),
		"user":               conversion(wireUser),
		"created user":       conversion(wireCreatedUser),
		"user page":          conversion(wireUserPage),
		"group":              conversion(wireGroup),
		"client":             conversion(wireClient),
		"created client":     conversion(wireCreatedClient),
		"operator":           conversion(wireOperator),
		"created operator":   conversion(wireCreatedOperator),
		"policy store":       conversion(wirePolicyStore),
		"policy schema":      conversion(func(s authz.Schema) api.PolicySchema { return api.PolicySchema(s) }),
		"policy":             conversion(wirePolicy),
		"policy page":        conversion(wirePolicyPage),
		"template":           conversion(wireTemplate),
		"template page":      conversion(wireTemplatePage),
		"key":                conversion(wireKey),
		"key page":           conversion(wireKeyPage),
		"function config":    conversion(wireFunctionConfig),
		"function":           conversion(wireFunction),
		"connection":         conversion(wireConnection),
		"connection page":    conversion(wireConnectionPage),
		"connection created": conversion(wireConnectionCreated),
		"connection updated": conversion(wireConnectionUpdated),
		"alert":              conversion(wireAlert),
		"alert page":         conversion(wireAlertPage),
		// What the server reads: every field reaches the service.
		"tenant patch":      conversion(func(p api.PatchTenant) tenants.Patch { return tenants.Patch(p) }),
		"user patch":        conversion(userPatch),
		"create client":     conversion(func(c api.CreateClient) identity.CreateClientRequest { return identity.CreateClientRequest(c) }),
		"put schema":        conversion(func(s api.PolicySchema) authz.Schema { return authz.Schema(s) }),
		"policy input":      conversion(policyInput),
		"authorization":     conversion(authzRequest),
		"encrypt":           conversion(encryptRequest),
		"decrypt":           conversion(decryptRequest),
		"data key":          conversion(dataKeyRequest),
		"re-encrypt":        conversion(reEncryptRequest),
		"create key":        conversion(func(c api.CreateKey) kms.CreateKeyRequest { return kms.CreateKeyRequest(c) }),
		"update connection": conversion(connectionUpdate),
		"create grant":      conversion(func(g api.CreateGrant) connect.CreateGrantRequest { return connect.CreateGrantRequest(g) }),
	}
	for name, run := range cases {
		for mode, what := range []string{"zero", "empty", "full"} {
			from, to := run(mode)
			a, err := json.Marshal(from)
			if err != nil {
				t.Fatalf("%s (%s): %v", name, what, err)
			}
			b, err := json.Marshal(to)
			if err != nil {
				t.Fatalf("%s (%s): %v", name, what, err)
			}
			if string(a) != string(b) {
				t.Errorf("%s (%s value): %T encodes\n  %s\nbut the converted %T encodes\n  %s", name, what, from, a, to, b)
			}
		}
	}
}

// TestServerReadsLikeClientsWrite checks the bodies the server still
// decodes into a service's type, not the api type that clients encode:
// the two must agree on every field, its JSON kind and the path a decode
// error names it by.
func TestServerReadsLikeClientsWrite(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		server, client reflect.Type
		// except are fields the server reads that the client never
		// sends (a create reads its grant as a whole grant request).
		except map[string]bool
	}{
		{reflect.TypeFor[compute.Config](), reflect.TypeFor[api.FunctionConfig](), nil},
		{reflect.TypeFor[connect.CreateRequest](), reflect.TypeFor[api.CreateConnection](), map[string]bool{"grant.token": true, "grant.part_a": true}},
	} {
		for _, d := range decodeDiff("", c.server, c.client, c.except) {
			t.Errorf("%s read as %s: %s", c.client, c.server, d)
		}
	}
	// And the bodies httpapi converts: a decode error names the same field.
	for _, c := range [][2]reflect.Type{
		{reflect.TypeFor[tenants.Patch](), reflect.TypeFor[api.PatchTenant]()},
		{reflect.TypeFor[identity.UserPatch](), reflect.TypeFor[api.PatchUser]()},
		{reflect.TypeFor[identity.CreateClientRequest](), reflect.TypeFor[api.CreateClient]()},
		{reflect.TypeFor[authz.Schema](), reflect.TypeFor[api.PolicySchema]()},
		{reflect.TypeFor[authz.PolicyInput](), reflect.TypeFor[api.PolicyInput]()},
		{reflect.TypeFor[authz.Request](), reflect.TypeFor[api.AuthorizationRequest]()},
		{reflect.TypeFor[kms.EncryptRequest](), reflect.TypeFor[api.EncryptRequest]()},
		{reflect.TypeFor[kms.DecryptRequest](), reflect.TypeFor[api.DecryptRequest]()},
		{reflect.TypeFor[kms.DataKeyRequest](), reflect.TypeFor[api.DataKeyRequest]()},
		{reflect.TypeFor[kms.ReEncryptRequest](), reflect.TypeFor[api.ReEncryptRequest]()},
		{reflect.TypeFor[kms.CreateKeyRequest](), reflect.TypeFor[api.CreateKey]()},
		{reflect.TypeFor[connect.UpdateRequest](), reflect.TypeFor[api.UpdateConnection]()},
		{reflect.TypeFor[connect.CreateGrantRequest](), reflect.TypeFor[api.CreateGrant]()},
	} {
		for _, d := range decodeDiff("", c[0], c[1], nil) {
			t.Errorf("%s and %s: %s", c[0], c[1], d)
		}
	}
}
