package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Clients registered under a tenant get tokens carrying that tenant;
// platform clients (operator only) get tokens with no tenant.

func (s *Server) createClient(w http.ResponseWriter, r *http.Request, tid tenant.ID) error {
	var req api.CreateClient
	if err := decode(w, r, &req); err != nil {
		return err
	}
	c, err := s.Directory.CreateClient(r.Context(), tid, identity.CreateClientRequest(req), actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store") // it holds the client secret
	writeJSON(w, http.StatusCreated, wireCreatedClient(c))
	return nil
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request, tid tenant.ID) error {
	cs, err := s.Directory.ListClients(r.Context(), tid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Client]{Items: each(cs, wireClient)})
	return nil
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request, tid tenant.ID) error {
	if err := s.Directory.DeleteClient(r.Context(), tid, r.PathValue("client"), actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createTenantClient(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	return s.createClient(w, r, tid)
}

func (s *Server) listTenantClients(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	return s.listClients(w, r, tid)
}

func (s *Server) deleteTenantClient(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	return s.deleteClient(w, r, tid)
}

func (s *Server) createPlatformClient(w http.ResponseWriter, r *http.Request) error {
	return s.createClient(w, r, "")
}

func (s *Server) listPlatformClients(w http.ResponseWriter, r *http.Request) error {
	return s.listClients(w, r, "")
}

func (s *Server) deletePlatformClient(w http.ResponseWriter, r *http.Request) error {
	return s.deleteClient(w, r, "")
}
