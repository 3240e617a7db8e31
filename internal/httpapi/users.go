package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var req api.CreateUser
	if err := decode(w, r, &req); err != nil {
		return err
	}
	u, err := s.Directory.CreateUser(r.Context(), tid, req, actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/tenants/"+string(tid)+"/users/"+u.ID)
	w.Header().Set("Cache-Control", "no-store") // it may hold a temporary password
	writeJSON(w, http.StatusCreated, wireCreatedUser(u))
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page, err := s.Directory.ListUsers(r.Context(), tid, identity.ListOptions{Limit: limit, Cursor: q.Get("cursor"), Email: q.Get("email")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireUserPage(page))
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	u, err := s.Directory.GetUser(r.Context(), tid, r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireUser(u))
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var p api.PatchUser
	if err := decode(w, r, &p); err != nil {
		return err
	}
	u, err := s.Directory.UpdateUser(r.Context(), tid, r.PathValue("user"), userPatch(p), actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireUser(u))
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	if err := s.Directory.DeleteUser(r.Context(), tid, r.PathValue("user"), actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var req api.CreateGroup
	if err := decode(w, r, &req); err != nil {
		return err
	}
	g, err := s.Directory.CreateGroup(r.Context(), tid, req, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wireGroup(g))
	return nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	gs, err := s.Directory.ListGroups(r.Context(), tid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Group]{Items: each(gs, wireGroup)})
	return nil
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) error {
	return s.setMember(w, r, true)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) error {
	return s.setMember(w, r, false)
}

func (s *Server) setMember(w http.ResponseWriter, r *http.Request, member bool) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	if err := s.Directory.SetMember(r.Context(), tid, r.PathValue("group"), r.PathValue("user"), member, actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) enrollTOTP(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	e, err := s.Directory.EnrollTOTP(r.Context(), tid, r.PathValue("user"), actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store") // the secret and recovery codes, shown once
	writeJSON(w, http.StatusCreated, e)
	return nil
}

func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var body api.TOTPConfirmation
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.Directory.ConfirmTOTP(r.Context(), tid, r.PathValue("user"), body.Code, actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) removeTOTP(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	if err := s.Directory.RemoveTOTP(r.Context(), tid, r.PathValue("user"), actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getIdentityConfig(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	c, err := s.Directory.Config(r.Context(), tid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) updateIdentityConfig(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var p api.IdentityConfigPatch
	if err := decode(w, r, &p); err != nil {
		return err
	}
	c, err := s.Directory.UpdateConfig(r.Context(), tid, p, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) getIdP(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	idp, _, ok, err := s.Directory.TenantIdP(r.Context(), tid)
	if err != nil {
		return err
	}
	if !ok {
		return errs.E(errs.NotFound, "idp_not_found", "the tenant has no identity provider")
	}
	writeJSON(w, http.StatusOK, idp)
	return nil
}

func (s *Server) setIdP(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var req api.IdPRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	idp, err := s.Directory.SetIdP(r.Context(), tid, req, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, idp)
	return nil
}

func (s *Server) deleteIdP(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	if err := s.Directory.DeleteIdP(r.Context(), tid, actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// me returns the tenant and user id of the user's own token.
func me(r *http.Request) (tenant.ID, string) {
	tc, _ := tenant.FromContext(r.Context())
	return tc.TenantID, strings.TrimPrefix(tc.Principal, "user:")
}

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) error {
	tid, uid := me(r)
	u, err := s.Directory.GetUser(r.Context(), tid, uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireUser(u))
	return nil
}

// enrollMyTOTP lets a signed-in user enroll their own second factor. One
// that is already confirmed is replaced only by an admin (or after
// removal), so a stolen session cannot swap the victim's factor.
func (s *Server) enrollMyTOTP(w http.ResponseWriter, r *http.Request) error {
	tid, uid := me(r)
	on, err := s.Directory.TOTPRequired(r.Context(), tid, uid)
	if err != nil {
		return err
	}
	if on {
		return errs.E(errs.Conflict, "totp_already_enabled", "a confirmed second factor exists; an admin can reset it")
	}
	e, err := s.Directory.EnrollTOTP(r.Context(), tid, uid, actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, e)
	return nil
}

func (s *Server) confirmMyTOTP(w http.ResponseWriter, r *http.Request) error {
	tid, uid := me(r)
	var body api.TOTPConfirmation
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.Directory.ConfirmTOTP(r.Context(), tid, uid, body.Code, actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getBranding(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	b, err := s.Directory.Branding(r.Context(), tid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) setBranding(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	var in api.Branding
	if err := decode(w, r, &in); err != nil {
		return err
	}
	b, err := s.Directory.SetBranding(r.Context(), tid, in, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) deleteBranding(w http.ResponseWriter, r *http.Request) error {
	tid, err := pathTenant(r)
	if err != nil {
		return err
	}
	if err := s.Directory.DeleteBranding(r.Context(), tid, actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Sessions are the users' browser sessions at the OpenID provider.
type Sessions interface {
	UserSessions(ctx context.Context, tid tenant.ID, userID string) ([]api.Session, error)
	EndUserSession(ctx context.Context, tid tenant.ID, userID, sid, by string) error
}

func (s *Server) listMySessions(w http.ResponseWriter, r *http.Request) error {
	tid, uid := me(r)
	ss, err := s.Sessions.UserSessions(r.Context(), tid, uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Session]{Items: ss})
	return nil
}

func (s *Server) endMySession(w http.ResponseWriter, r *http.Request) error {
	tid, uid := me(r)
	if err := s.Sessions.EndUserSession(r.Context(), tid, uid, r.PathValue("session"), "user:"+uid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// userOfTenant is the {user} of a tenant route, which must exist.
func (s *Server) userOfTenant(r *http.Request) (tenant.ID, string, error) {
	tid, err := s.existingTenant(r)
	if err != nil {
		return "", "", err
	}
	u, err := s.Directory.GetUser(r.Context(), tid, r.PathValue("user"))
	if err != nil {
		return "", "", err
	}
	return tid, u.ID, nil
}

func (s *Server) listUserSessions(w http.ResponseWriter, r *http.Request) error {
	tid, uid, err := s.userOfTenant(r)
	if err != nil {
		return err
	}
	ss, err := s.Sessions.UserSessions(r.Context(), tid, uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Session]{Items: ss})
	return nil
}

func (s *Server) endUserSession(w http.ResponseWriter, r *http.Request) error {
	tid, uid, err := s.userOfTenant(r)
	if err != nil {
		return err
	}
	if err := s.Sessions.EndUserSession(r.Context(), tid, uid, r.PathValue("session"), actor(r).Principal); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
