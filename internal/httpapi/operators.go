package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Operators are the people who operate the platform (identity.Operator),
// managed by an operator credential only.

func (s *Server) createOperator(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateOperator
	if err := decode(w, r, &req); err != nil {
		return err
	}
	o, err := s.Directory.CreateOperator(r.Context(), req.Email, req.Name, actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/operators/"+o.ID)
	w.Header().Set("Cache-Control", "no-store") // it holds the password and the TOTP secret
	writeJSON(w, http.StatusCreated, wireCreatedOperator(o))
	return nil
}

func (s *Server) listOperators(w http.ResponseWriter, r *http.Request) error {
	ops, err := s.Directory.ListOperators(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Operator]{Items: each(ops, wireOperator)})
	return nil
}

func (s *Server) getOperator(w http.ResponseWriter, r *http.Request) error {
	o, err := s.Directory.GetOperator(r.Context(), r.PathValue("operator"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireOperator(o))
	return nil
}

func (s *Server) disableOperator(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("operator")
	if err := s.Directory.DisableOperator(r.Context(), id, actor(r)); err != nil {
		return err
	}
	return s.getOperator(w, r)
}

func (s *Server) deleteOperator(w http.ResponseWriter, r *http.Request) error {
	if err := s.Directory.DeleteOperator(r.Context(), r.PathValue("operator"), actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
