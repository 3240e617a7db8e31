package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// functionRoutes are the function registry and invocation routes.
func (s *Server) functionRoutes() []Route {
	return []Route{
		{"POST", "/v1/functions", "function.publish", Operator, s.publishFunction},
		{"GET", "/v1/functions", "function.list", Operator, s.listFunctions},
		{"DELETE", "/v1/functions/{function}", "function.delete", Operator, s.deleteFunction},
		{"GET", "/v1/functions/{function}/environments", "function.environments", Operator, s.functionEnvironments},
		{"POST", "/v1/functions/{function}/invoke", "function.invoke", Invoker, s.invokeFunction},
	}
}

// publishFunction takes multipart/form-data: a "config" part (JSON) and a
// "module" part (the wasm bytes).
func (s *Server) publishFunction(w http.ResponseWriter, r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return errs.E(errs.Invalid, "unsupported_media_type", "send multipart/form-data with a config part (JSON) and a module part (wasm)")
	}
	r.Body = http.MaxBytesReader(w, r.Body, compute.MaxModuleBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return errs.E(errs.Invalid, "invalid_multipart", "the body is not multipart/form-data")
	}
	var cfg *compute.Config
	var module []byte
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return &errs.Error{Kind: errs.TooLarge, Code: "invalid_module_size", Field: "module", Detail: "a module is at most 50 MiB"}
		}
		if err != nil {
			return errs.E(errs.Invalid, "invalid_multipart", "the multipart body could not be read")
		}
		switch part.FormName() {
		case "config":
			dec := json.NewDecoder(io.LimitReader(part, 64<<10))
			dec.DisallowUnknownFields()
			// compute.Config, the function's stored settings, and not
			// api.FunctionConfig: the problem's detail quotes the decoder,
			// which names the Go type. TestWireConversions checks that the
			// two have the same fields.
			cfg = &compute.Config{}
			if err := dec.Decode(cfg); err != nil {
				return errs.Field("config", "invalid_config", "the config part is not a function's JSON settings: %s", errs.Clip(err.Error(), 200))
			}
		case "module":
			module, err = io.ReadAll(io.LimitReader(part, compute.MaxModuleBytes+1))
			if errors.As(err, &maxErr) || len(module) > compute.MaxModuleBytes {
				return &errs.Error{Kind: errs.TooLarge, Code: "invalid_module_size", Field: "module", Detail: "a module is at most 50 MiB"}
			}
			if err != nil {
				return errs.E(errs.Invalid, "invalid_multipart", "the module part could not be read")
			}
		default:
			return errs.Field(part.FormName(), "unknown_field", "the parts are config and module")
		}
	}
	if cfg == nil {
		return errs.Field("config", "missing_config", "add a config part (JSON: name, tenancy_mode, limits)")
	}
	info, err := s.Functions.Publish(r.Context(), *cfg, module, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wireFunction(info))
	return nil
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request) error {
	fs, err := s.Functions.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Function]{Items: each(fs, wireFunction)})
	return nil
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request) error {
	if err := s.Functions.Delete(r.Context(), r.PathValue("function"), actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) functionEnvironments(w http.ResponseWriter, r *http.Request) error {
	envs, err := s.Functions.Engine().Environments(r.PathValue("function"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.FunctionEnvironment]{Items: envs})
	return nil
}

// invokeTenant is the tenant an invocation runs for: the caller's tenant
// token's, or for the operator the X-Tenant-Id header. A tenant token
// naming another tenant in the header gets 404.
func (s *Server) invokeTenant(r *http.Request) (tenant.ID, error) {
	header := r.Header.Get("X-Tenant-Id")
	if tc, ok := tenant.FromContext(r.Context()); ok {
		if header != "" && header != string(tc.TenantID) {
			return "", notFoundTenant(header)
		}
		return tc.TenantID, nil
	}
	if _, ok := authn.OperatorFrom(r.Context()); !ok || header == "" {
		return "", nil
	}
	return tenants.ParseID(header)
}

// invokeFunction runs a function with the request body as its event.
func (s *Server) invokeFunction(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.invokeTenant(r)
	if err != nil {
		return err
	}
	tier, caller := "", compute.Caller{Tenant: string(tid)}
	if tid != "" {
		t, err := s.Tenants.Get(r.Context(), tid)
		if err != nil {
			return err
		}
		if t.Status != tenants.Active {
			return errs.E(errs.Conflict, "tenant_not_active", "tenant %q is %s; its functions do not run", tid, t.Status)
		}
		tier = t.Tier
		caller.MaxEnvironments = s.Tenants.Tiers()[tier].MaxFunctionEnvironments
	}
	event, err := io.ReadAll(http.MaxBytesReader(w, r.Body, compute.MaxOutputBytes))
	if err != nil {
		return &errs.Error{Kind: errs.TooLarge, Code: "body_too_large", Detail: "an event is at most 6 MiB"}
	}
	res, err := s.Functions.Invoke(r.Context(), r.PathValue("function"), caller, requestID(r.Context()), event)
	if err != nil {
		return err
	}
	start := "warm"
	if res.Cold {
		start = "cold"
	}
	s.fnStarts.WithLabelValues(res.Function, tier, start).Inc()
	ct := "application/octet-stream"
	if json.Valid(res.Body) {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Bulkhead-Environment", res.EnvironmentID)
	w.Header().Set("X-Bulkhead-Cold-Start", strconv.FormatBool(res.Cold))
	w.WriteHeader(http.StatusOK)
	w.Write(res.Body)
	return nil
}
