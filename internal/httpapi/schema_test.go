package httpapi

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// schemaBody pairs a schema of openapi.json with the sdk/api type of the
// body it describes.
type schemaBody struct {
	// schema is a component's name, or a JSON pointer to an operation's
	// inline schema.
	schema string
	typ    reflect.Type
	// request marks a body the server reads: a field the client always
	// sends (not omitempty) must be required, unless optional names it.
	request  bool
	optional map[string]string // field path → why the client sends it anyway
	// except are fields of typ the schema leaves out, with the schema that
	// has them (the create-only fields are in the created variants).
	except map[string]string
}

func body[T any](schema string) schemaBody {
	return schemaBody{schema: schema, typ: reflect.TypeFor[T]()}
}

func request[T any](schema string) schemaBody {
	return schemaBody{schema: schema, typ: reflect.TypeFor[T](), request: true}
}

func (b schemaBody) without(field, why string) schemaBody {
	b.except = map[string]string{field: why}
	return b
}

// inline is the JSON pointer to the schema of an operation's request body
// (status "") or of its answer with status.
func inline(method, path, status string) string {
	p := "#/paths/" + strings.ReplaceAll(path, "/", "~1") + "/" + strings.ToLower(method)
	if status == "" {
		return p + "/requestBody/content/application~1json/schema"
	}
	return p + "/responses/" + status + "/content/application~1json/schema"
}

// schemaBodies are the API's bodies and where openapi.json describes them.
var schemaBodies = []schemaBody{
	body[api.Problem]("Problem"),
	body[api.Domain]("Domain"),
	body[api.Certificate]("Certificate"),
	body[api.List[api.Certificate]](inline("GET", "/v1/certs", "200")),
	request[api.ReissueCertificates]("ReissueCertificates"),
	body[api.CertificatesReissued]("CertificatesReissued"),
	request[api.CreateDomain]("CreateDomain"),
	body[api.List[api.Domain]](inline("GET", "/v1/tenants/{tenant}/domains", "200")),
	body[api.Tier]("Tier"),
	body[api.List[api.Tier]](inline("GET", "/v1/tiers", "200")),
	body[api.Tenant]("Tenant").without("initial_admin", "in the create's answer"),
	body[api.Tenant](inline("POST", "/v1/tenants", "201")),
	body[api.Tenant](inline("POST", "/v1/tenants", "202")),
	request[api.CreateTenant]("CreateTenant"),
	request[api.PatchTenant]("PatchTenant"),
	body[api.TenantPage]("TenantPage").without("items[].initial_admin", "in the create's answer"),
	body[api.Workflow]("Workflow"),
	body[api.List[api.Workflow]](inline("GET", "/v1/tenants/{tenant}/workflows", "200")),
	request[api.StartTenantMigration]("StartTenantMigration"),
	body[api.TenantMigration]("TenantMigration"),
	body[api.DataMoveProgress]("DataMoveProgress"),
	body[api.DataTableSum]("DataTableSum"),
	body[api.StreamPublished]("StreamPublished"),
	request[api.StreamPull]("StreamPull"),
	body[api.StreamMessage]("StreamMessage"),
	body[api.List[api.StreamMessage]](inline("POST", "/v1/streams/{stream}/pull", "200")),
	request[api.StreamAck]("StreamAck"),
	body[api.StreamAckResult]("StreamAckResult"),
	body[api.StreamConsumer]("StreamConsumer"),
	body[api.List[api.TenantMigration]](inline("GET", "/v1/tenants/{tenant}/migrations", "200")),
	body[api.AuditEvent]("AuditEvent"),
	request[api.CreateWebhook]("CreateWebhook"),
	body[api.Webhook]("Webhook"),
	body[api.WebhookCreated]("WebhookCreated"),
	body[api.WebhookPage]("WebhookPage"),
	body[api.WebhookDelivery]("WebhookDelivery"),
	body[api.WebhookDeliveryPage]("WebhookDeliveryPage"),
	request[api.CreatePartner]("CreatePartner"),
	body[api.Partner]("Partner"),
	body[api.PartnerCreated]("PartnerCreated"),
	body[api.PartnerPage]("PartnerPage"),
	request[api.CreateTrust]("CreateTrust"),
	request[api.PatchTrust]("PatchTrust"),
	body[api.Trust]("Trust"),
	body[api.TrustCreated]("TrustCreated"),
	body[api.TrustPage]("TrustPage"),
	body[api.PostureFinding]("PostureFinding"),
	body[api.PosturePage]("PosturePage"),
	body[api.PostureScan]("PostureScan"),
	body[api.Event]("Event"),
	body[api.AuditPage]("AuditPage"),
	body[api.VerifyReport]("VerifyReport"),
	body[api.User]("User").without("temporary_password", "in CreatedUser"),
	body[api.User]("CreatedUser"),
	request[api.CreateUser]("CreateUser"),
	request[api.PatchUser]("PatchUser"),
	body[api.UserPage]("UserPage").without("items[].temporary_password", "in CreatedUser"),
	body[api.Group]("Group"),
	request[api.CreateGroup]("CreateGroup"),
	body[api.List[api.Group]](inline("GET", "/v1/tenants/{tenant}/groups", "200")),
	body[api.Client]("Client").without("client_secret", "in CreatedClient"),
	body[api.Client]("CreatedClient"),
	request[api.CreateClient]("CreateClient"),
	body[api.Operator]("Operator"),
	body[api.CreatedOperator]("CreatedOperator"),
	request[api.CreateOperator]("CreateOperator"),
	body[api.List[api.Operator]](inline("GET", "/v1/operators", "200")),
	body[api.List[api.Client]](inline("GET", "/v1/tenants/{tenant}/clients", "200")).without("items[].client_secret", "in CreatedClient"),
	body[api.List[api.Client]](inline("GET", "/v1/clients", "200")).without("items[].client_secret", "in CreatedClient"),
	body[api.IdentityConfig]("IdentityConfig"),
	request[api.IdentityConfigPatch]("IdentityConfigPatch"),
	body[api.IdP](inline("GET", "/v1/tenants/{tenant}/idp", "200")),
	body[api.IdP](inline("PUT", "/v1/tenants/{tenant}/idp", "200")),
	{schema: inline("PUT", "/v1/tenants/{tenant}/idp", ""), typ: reflect.TypeFor[api.IdPRequest](), request: true,
		optional: map[string]string{
			"link_existing_by_email":  "a setting left out is off; the client sends it either way",
			"upstream_mfa_sufficient": "a setting left out is off; the client sends it either way",
		}},
	body[api.TOTPEnrollment](inline("POST", "/v1/tenants/{tenant}/users/{user}/totp", "201")),
	request[api.TOTPConfirmation](inline("POST", "/v1/tenants/{tenant}/users/{user}/totp/confirm", "")),
	request[api.TOTPConfirmation](inline("POST", "/v1/me/totp/confirm", "")),
	body[api.PolicyStore]("PolicyStore"),
	request[api.PatchPolicyStore]("PatchPolicyStore"),
	request[api.PolicySchema]("PolicySchema"),
	request[api.EntityRef]("EntityRef"),
	body[api.Policy]("Policy"),
	request[api.PolicyInput]("PolicyInput"),
	body[api.PolicyPage]("PolicyPage"),
	body[api.PolicyValidation]("PolicyValidation"),
	body[api.Branding]("Branding"),
	body[api.Session]("Session"),
	body[api.List[api.Session]](inline("GET", "/v1/me/sessions", "200")),
	body[api.List[api.Session]](inline("GET", "/v1/tenants/{tenant}/users/{user}/sessions", "200")),
	body[api.PolicyTemplate]("PolicyTemplate"),
	request[api.PolicyTemplateInput]("PolicyTemplateInput"),
	body[api.PolicyTemplatePage]("PolicyTemplatePage"),
	request[api.AuthorizationRequest]("AuthorizationRequest"),
	request[api.AuthorizationBatch]("AuthorizationBatch"),
	body[api.Decision]("Decision"),
	body[api.DecisionError]("DecisionError"),
	body[api.AuthorizationBatchResult]("AuthorizationBatchResult"),
	request[map[string]string]("EncryptionContext"),
	request[api.EncryptRequest]("EncryptRequest"),
	body[api.EncryptResponse]("EncryptResponse"),
	request[api.DecryptRequest]("DecryptRequest"),
	body[api.DecryptResponse]("DecryptResponse"),
	request[api.DataKeyRequest]("DataKeyRequest"),
	body[api.DataKeyResponse]("DataKeyResponse"),
	body[api.DataKeyResponse]("DataKeyWithoutPlaintextResponse").without("plaintext", "asked without it"),
	request[api.ReEncryptRequest]("ReEncryptRequest"),
	body[api.ReEncryptResponse]("ReEncryptResponse"),
	body[api.Key]("Key"),
	body[api.KeyVersion]("KeyVersion"),
	body[api.KeyPage]("KeyPage"),
	request[api.CreateKey]("CreateKey"),
	request[api.ScheduleKeyDeletion]("ScheduleKeyDeletion"),
	request[api.ImportParamsRequest]("ImportParamsRequest"),
	body[api.ImportParams]("ImportParams"),
	request[api.ImportRequest]("ImportRequest"),
	request[api.FunctionConfig]("FunctionConfig"),
	body[api.Function]("Function"),
	body[api.List[api.Function]](inline("GET", "/v1/functions", "200")),
	body[api.FunctionEnvironment]("FunctionEnvironment"),
	body[api.List[api.FunctionEnvironment]](inline("GET", "/v1/functions/{function}/environments", "200")),
	request[api.Placement]("Placement"),
	body[api.ConnectionAlerts]("ConnectionAlerts"),
	body[api.Connection]("Connection"),
	body[api.ConnectionPage]("ConnectionPage"),
	body[api.Grant]("Grant"),
	body[api.IssuedGrant]("IssuedGrant"),
	body[api.List[api.Grant]]("GrantList"),
	request[api.CreateGrant]("CreateGrant"),
	request[api.TokenSource]("TokenSource"),
	request[api.SuspendGrant]("SuspendGrant"),
	request[api.CreateConnection]("CreateConnection"),
	request[api.UpdateConnection]("UpdateConnection"),
	body[api.ConnectionCreated]("ConnectionCreated"),
	body[api.ConnectionUpdated]("ConnectionUpdated"),
	body[api.Alert]("Alert"),
	body[api.AlertPage]("AlertPage"),
	body[api.DataCluster]("DataCluster"),
	request[api.CreateDataCluster]("CreateDataCluster"),
	body[api.DataClusterList]("DataClusterList"),
	body[api.DataPlacement]("DataPlacement"),
	body[api.GatewayRoute]("GatewayRoute"),
	request[api.PutGatewayRoute]("PutGatewayRoute"),
	body[api.GatewayRouteList]("GatewayRouteList"),
	request[api.DataMigrationFile]("DataMigrationFile"),
	request[api.RegisterDataMigrations]("RegisterDataMigrations"),
	body[api.DataMigration]("DataMigration"),
	body[api.DataMigrationPlace]("DataMigrationPlace"),
	body[api.DataMigrationStatus]("DataMigrationStatus"),
	body[api.UsagePlan]("UsagePlan"),
	request[api.UsagePlan]("UsagePlan"),
	body[api.UsageStatus]("UsageStatus"),
	body[api.UsageRecord]("UsageRecord"),
	body[api.UsageList]("UsageList"),
}

// notBodies are the components that describe no body of their own.
var notBodies = map[string]string{
	"Status": "a tenant's status, an enum of strings; checked where Tenant uses it",
}

// schemaKinds are the JSON kinds of the api types that encode themselves.
var schemaKinds = map[reflect.Type]string{
	reflect.TypeFor[api.Duration](): "string",
}

// TestOpenAPISchemasMatchBodies holds openapi.json to the sdk/api types:
// each schema has exactly the fields of its type (JSON names), with their
// JSON types, nested schemas and array items alike, and only fields the
// client always sends are required. Every component schema and every
// struct of sdk/api must be covered.
func TestOpenAPISchemasMatchBodies(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	c := &schemaCheck{doc: doc, seen: map[string]bool{}}
	mapped := map[string]bool{}
	for _, b := range schemaBodies {
		ref := b.schema
		if !strings.HasPrefix(ref, "#/") {
			ref = "#/components/schemas/" + ref
			mapped[b.schema] = true
		}
		s, ok := c.pointer(ref).(map[string]any)
		if !ok {
			t.Errorf("openapi.json has no schema at %s (for %s)", ref, b.typ)
			continue
		}
		c.body = b
		c.compare("", s, b.typ)
	}
	for _, e := range c.errs {
		t.Error(e)
	}
	components, _ := c.pointer("#/components/schemas").(map[string]any)
	for name := range components {
		if !mapped[name] && notBodies[name] == "" {
			t.Errorf("components.schemas.%s is not paired with an sdk/api type in schemaBodies", name)
		}
	}
	for _, name := range apiStructs(t) {
		if !c.seen[name] {
			t.Errorf("api.%s is in no schema of openapi.json that schemaBodies checks", name)
		}
	}
}

type schemaCheck struct {
	doc  map[string]any
	body schemaBody      // the body being checked
	seen map[string]bool // the api structs checked, by name
	errs []string
}

func (c *schemaCheck) errorf(at, format string, args ...any) {
	if at == "" {
		at = "(the body)"
	}
	c.errs = append(c.errs, fmt.Sprintf("%s %s, %s: %s", c.body.typ, c.body.schema, at, fmt.Sprintf(format, args...)))
}

// pointer resolves a local JSON pointer ("#/a/b").
func (c *schemaCheck) pointer(ref string) any {
	var cur any = c.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

// resolve follows $ref and merges allOf into one schema.
func (c *schemaCheck) resolve(s map[string]any) map[string]any {
	for s["$ref"] != nil {
		next, ok := c.pointer(s["$ref"].(string)).(map[string]any)
		if !ok {
			return map[string]any{}
		}
		s = next
	}
	parts, ok := s["allOf"].([]any)
	if !ok {
		return s
	}
	props, required := map[string]any{}, []any{}
	for _, p := range parts {
		ps, _ := p.(map[string]any)
		ps = c.resolve(ps)
		if pp, ok := ps["properties"].(map[string]any); ok {
			for k, v := range pp {
				props[k] = v
			}
		}
		if r, ok := ps["required"].([]any); ok {
			required = append(required, r...)
		}
	}
	return map[string]any{"type": "object", "properties": props, "required": required}
}

func (c *schemaCheck) compare(at string, s map[string]any, t reflect.Type) {
	s = c.resolve(s)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want, ok := schemaKinds[t]
	if !ok {
		want = kindOf(t)
	}
	if want == "any" {
		return // json.RawMessage: the schema says what it may hold
	}
	switch types := s["type"].(type) {
	case string:
		if types != want {
			c.errorf(at, "the schema says %s; %s is written as %s", types, t, want)
		}
	case []any:
		if !slices.Contains(types, any(want)) {
			c.errorf(at, "the schema says one of %v; %s is written as %s", types, t, want)
		}
	default:
		if s["properties"] == nil {
			c.errorf(at, "the schema has no type (%s is %s)", t, want)
		}
	}
	switch {
	case want == "array":
		if items, ok := s["items"].(map[string]any); ok {
			c.compare(at+"[]", items, t.Elem())
		}
	case want == "object" && t.Kind() == reflect.Map:
		if values, ok := s["additionalProperties"].(map[string]any); ok {
			c.compare(at+"{}", values, t.Elem())
		}
	case want == "object":
		c.compareStruct(at, s, t)
	}
}

func (c *schemaCheck) compareStruct(at string, s map[string]any, t reflect.Type) {
	c.markSeen(t)
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		c.errorf(at, "the schema lists no properties; %s has fields", t)
		return
	}
	required := map[string]bool{}
	if r, ok := s["required"].([]any); ok {
		for _, name := range r {
			required[name.(string)] = true
		}
	}
	fields := map[string]jsonField{}
	for _, f := range jsonFields(t) {
		fields[f.Name] = f
	}
	for _, name := range sortedKeys(fields) {
		f, path := fields[name], join(at, name)
		if _, except := c.body.except[path]; except {
			continue
		}
		ps, ok := props[name].(map[string]any)
		if !ok {
			c.errorf(path, "%s has the field, the schema does not", t)
			continue
		}
		c.compare(path, ps, f.Type)
		switch {
		case required[name] && f.OmitEmpty:
			c.errorf(path, "required, but the client leaves it out when empty (omitempty)")
		case c.body.request && !required[name] && !f.OmitEmpty && !isStruct(f.Type) && c.body.optional[path] == "":
			c.errorf(path, "the client always sends it, but the schema does not require it")
		}
	}
	for _, name := range sortedKeys(props) {
		if _, ok := fields[name]; !ok {
			c.errorf(join(at, name), "the schema has the property, %s does not", t)
		}
	}
	for name := range required {
		if _, ok := fields[name]; !ok {
			c.errorf(join(at, name), "required by the schema, not a field of %s", t)
		}
	}
}

// markSeen records t and the structs embedded in it as checked.
func (c *schemaCheck) markSeen(t reflect.Type) {
	if t.PkgPath() == reflect.TypeFor[api.Problem]().PkgPath() {
		c.seen[t.Name()] = true
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.Anonymous && f.Type.Kind() == reflect.Struct {
			c.markSeen(f.Type)
		}
	}
}

func isStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != timeType
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// apiStructs lists the struct types declared in package sdk/api (generic
// ones aside: they are checked through their instances).
func apiStructs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../sdk/api/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("sdk/api sources not found: %v", err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, spec := range g.Specs {
				ts := spec.(*ast.TypeSpec)
				if _, isStruct := ts.Type.(*ast.StructType); isStruct && ts.TypeParams == nil && ts.Name.IsExported() {
					names = append(names, ts.Name.Name)
				}
			}
		}
	}
	return names
}
