package httpapi

import (
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies are the types of package sdk/api. A service whose own
// type is a plain body aliases the api type; the conversions below are for
// the service types that are more than a body (they carry a tenant.ID, a
// named string type, or methods). Each keeps the JSON the service type
// would have written: TestWireConversions checks it field by field.

// each converts every element of in with f. A nil slice stays nil, so that
// it is still written as null and an empty one as [].
func each[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// ---- tenants ----

func wireTenant(t tenants.Tenant) api.Tenant {
	return api.Tenant{ID: string(t.ID), Name: t.Name, Tier: t.Tier, Isolation: string(t.Isolation), Status: string(t.Status),
		Domains: t.Domains, Config: t.Config, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		PriorIsolation: string(t.PriorIsolation), IsolationChangedAt: t.IsolationChangedAt}
}

func wireTenantPage(p tenants.Page) api.TenantPage {
	return api.TenantPage{Items: each(p.Items, wireTenant), NextCursor: p.NextCursor}
}

func wireTier(t tenants.Tier) api.Tier {
	return api.Tier{Name: t.Name, Isolation: string(t.Isolation), RateLimitRPS: t.RateLimitRPS, RateLimitBurst: t.RateLimitBurst,
		MaxFunctionEnvironments: t.MaxFunctionEnvironments, GatewayRPS: t.GatewayRPS, GatewayBurst: t.GatewayBurst,
		GatewayQuota: t.GatewayQuota, GatewayQuotaPeriod: t.GatewayQuotaPeriod,
		StreamMaxBytes: t.StreamMaxBytes, StreamMaxMsgs: t.StreamMaxMsgs, StreamMaxConsumers: t.StreamMaxConsumers,
		StreamPublishRPS: t.StreamPublishRPS, StreamPublishBurst: t.StreamPublishBurst}
}

func wireWorkflow(w tenants.Workflow) api.Workflow {
	return api.Workflow{ID: w.ID, TenantID: string(w.TenantID), Kind: string(w.Kind), Status: string(w.Status), Attempts: w.Attempts,
		LastError: w.LastError, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
		Steps: each(w.Steps, func(s tenants.StepRecord) api.WorkflowStep { return api.WorkflowStep(s) })}
}

// ---- audit ----

func wireEvent(e audit.Event) api.AuditEvent {
	return api.AuditEvent{ID: e.ID, Time: e.Time, TenantID: e.TenantID, Seq: e.Seq, Principal: e.Principal, Action: e.Action,
		Target: e.Target, Outcome: string(e.Outcome), RequestID: e.RequestID, SourceIP: e.SourceIP, Detail: e.Detail,
		PrevHash: e.PrevHash, Hash: e.Hash}
}

func wireAuditPage(p audit.Page) api.AuditPage {
	return api.AuditPage{Items: each(p.Items, wireEvent), NextCursor: p.NextCursor}
}

// ---- identity ----

func wireUser(u identity.User) api.User {
	return api.User{ID: u.ID, TenantID: string(u.TenantID), Email: u.Email, Status: string(u.Status), Attributes: u.Attributes,
		Groups: u.Groups, PasswordSet: u.PasswordSet, PasswordChangeRequired: u.PasswordChangeRequired,
		TOTPConfirmed: u.TOTPConfirmed, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func wireCreatedUser(c identity.CreatedUser) api.User {
	u := wireUser(c.User)
	u.TemporaryPassword = c.TemporaryPassword
	return u
}

func wireUserPage(p identity.UserPage) api.UserPage {
	return api.UserPage{Items: each(p.Items, wireUser), NextCursor: p.NextCursor}
}

func userPatch(p api.PatchUser) identity.UserPatch {
	return identity.UserPatch{Email: p.Email, Status: (*identity.UserStatus)(p.Status), Attributes: p.Attributes, Password: p.Password}
}

func wireGroup(g identity.Group) api.Group {
	return api.Group{ID: g.ID, TenantID: string(g.TenantID), Name: g.Name, Description: g.Description, Members: g.Members,
		CreatedAt: g.CreatedAt}
}

func wireClient(c identity.Client) api.Client {
	return api.Client{ClientID: c.ID, TenantID: string(c.TenantID), Name: c.Name, GrantTypes: c.GrantTypes,
		RedirectURIs: c.RedirectURIs, Scopes: c.Scopes, Public: c.Public, BackchannelLogoutURI: c.BackchannelLogoutURI, CreatedAt: c.CreatedAt}
}

func wireCreatedClient(c identity.CreatedClient) api.Client {
	out := wireClient(c.Client)
	out.ClientSecret = c.ClientSecret
	return out
}

func wireOperator(o identity.Operator) api.Operator {
	return api.Operator{ID: o.ID, Email: o.Email, Name: o.Name, Status: string(o.Status),
		PasswordChangeRequired: o.PasswordChangeRequired, TOTPConfirmed: o.TOTPConfirmed, CreatedAt: o.CreatedAt}
}

func wireCreatedOperator(c identity.CreatedOperator) api.CreatedOperator {
	return api.CreatedOperator{Operator: wireOperator(c.Operator), Password: c.Password, TOTP: c.TOTP}
}

// ---- authorization ----

func wirePolicyStore(s authz.Store) api.PolicyStore {
	return api.PolicyStore{TenantID: string(s.TenantID), HasSchema: s.HasSchema, LogAllows: s.LogAllows,
		PrincipalType: s.PrincipalType, GroupType: s.GroupType, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

func wirePolicy(p authz.Policy) api.Policy {
	return api.Policy{ID: p.ID, Type: p.Type, Statement: p.Statement, Description: p.Description, TemplateID: p.TemplateID,
		Principal: (*api.EntityRef)(p.Principal), Resource: (*api.EntityRef)(p.Resource), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func policyInput(in api.PolicyInput) authz.PolicyInput {
	return authz.PolicyInput{Statement: in.Statement, Description: in.Description, TemplateID: in.TemplateID,
		Principal: (*authz.EntityRef)(in.Principal), Resource: (*authz.EntityRef)(in.Resource)}
}

func wirePolicyPage(p authz.PolicyPage) api.PolicyPage {
	return api.PolicyPage{Items: each(p.Items, wirePolicy), NextCursor: p.NextCursor}
}

func wireTemplate(t authz.Template) api.PolicyTemplate {
	return api.PolicyTemplate{ID: t.ID, Statement: t.Statement, Description: t.Description, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		Slots: each(t.Slots, func(s authz.Slot) string { return string(s) })}
}

func wireTemplatePage(p authz.TemplatePage) api.PolicyTemplatePage {
	return api.PolicyTemplatePage{Items: each(p.Items, wireTemplate), NextCursor: p.NextCursor}
}

func authzRequest(in api.AuthorizationRequest) authz.Request {
	return authz.Request{Principal: (*authz.EntityRef)(in.Principal), Action: (*authz.EntityRef)(in.Action),
		Resource: (*authz.EntityRef)(in.Resource), Context: in.Context, Entities: in.Entities}
}

// ---- keys ----

func encryptRequest(in api.EncryptRequest) kms.EncryptRequest {
	return kms.EncryptRequest{KeyID: in.KeyID, Plaintext: in.Plaintext, EncryptionContext: kms.Context(in.EncryptionContext)}
}

func decryptRequest(in api.DecryptRequest) kms.DecryptRequest {
	return kms.DecryptRequest{Ciphertext: in.Ciphertext, EncryptionContext: kms.Context(in.EncryptionContext)}
}

func dataKeyRequest(in api.DataKeyRequest) kms.DataKeyRequest {
	return kms.DataKeyRequest{KeyID: in.KeyID, EncryptionContext: kms.Context(in.EncryptionContext), NumberOfBytes: in.NumberOfBytes}
}

func reEncryptRequest(in api.ReEncryptRequest) kms.ReEncryptRequest {
	return kms.ReEncryptRequest{Ciphertext: in.Ciphertext, SourceEncryptionContext: kms.Context(in.SourceEncryptionContext),
		DestinationKeyID: in.DestinationKeyID, DestinationEncryptionContext: kms.Context(in.DestinationEncryptionContext)}
}

func wireKey(k kms.Key) api.Key {
	return api.Key{ID: k.ID, TenantID: string(k.TenantID), Aliases: k.Aliases, Description: k.Description, State: k.State,
		Origin: k.Origin, PrimaryVersion: k.PrimaryVersion, RotationPeriod: k.RotationPeriod, NextRotationAt: k.NextRotationAt,
		DeletionAt: k.DeletionAt, Versions: k.Versions, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
}

func wireKeyPage(p kms.KeyPage) api.KeyPage {
	return api.KeyPage{Items: each(p.Items, wireKey), NextCursor: p.NextCursor}
}

// ---- functions ----

func wireFunctionConfig(c compute.Config) api.FunctionConfig {
	return api.FunctionConfig{Name: c.Name, TenancyMode: string(c.TenancyMode), MemoryMiB: c.MemoryMiB, Timeout: c.Timeout,
		Env: c.Env, MaxEnvsPerTenant: c.MaxEnvsPerTenant, IdleTTL: c.IdleTTL, TmpMiB: c.TmpMiB}
}

func wireFunction(f compute.Info) api.Function {
	return api.Function{FunctionConfig: wireFunctionConfig(f.Config), Version: f.Version, Digest: f.Digest,
		CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt}
}

// ---- connections ----

func wireConnection(c connect.Connection) api.Connection {
	return api.Connection{ID: c.ID, TenantID: string(c.TenantID), Name: c.Name, UpstreamURL: c.UpstreamURL,
		Placement: api.Placement(c.Placement), AllowedMethods: c.AllowedMethods, AllowedPaths: c.AllowedPaths, Alerts: c.Alerts,
		TokenVersion: c.TokenVersion, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func wireConnectionPage(p connect.Page) api.ConnectionPage {
	return api.ConnectionPage{Items: each(p.Items, wireConnection), NextCursor: p.NextCursor}
}

func wireConnectionCreated(c connect.Created) api.ConnectionCreated {
	return api.ConnectionCreated{Connection: wireConnection(c.Connection), Grant: c.Grant, WebhookSecret: c.WebhookSecret}
}

func wireConnectionUpdated(u connect.Updated) api.ConnectionUpdated {
	return api.ConnectionUpdated{Connection: wireConnection(u.Connection), Grants: u.Grants, WebhookSecret: u.WebhookSecret}
}

func connectionUpdate(in api.UpdateConnection) connect.UpdateRequest {
	return connect.UpdateRequest{Name: in.Name, UpstreamURL: in.UpstreamURL, Token: in.Token, Placement: (*connect.Placement)(in.Placement),
		AllowedMethods: in.AllowedMethods, AllowedPaths: in.AllowedPaths, Alerts: in.Alerts}
}

func wireAlert(a connect.Alert) api.Alert {
	return api.Alert{ID: a.ID, TenantID: string(a.TenantID), ConnectionID: a.ConnectionID, GrantID: a.GrantID, Kind: a.Kind,
		Detail: a.Detail, GrantSuspended: a.Suspended, CreatedAt: a.CreatedAt}
}

func wireAlertPage(p connect.AlertPage) api.AlertPage {
	return api.AlertPage{Items: each(p.Items, wireAlert), NextCursor: p.NextCursor}
}
