package httpapi

import (
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// gatewayRoutes are the operator's routes of the edge gateway.
func (s *Server) gatewayRoutes() []Route {
	g := s.GatewayRoutes
	list := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.GatewayRouteList, error) {
		out := api.GatewayRouteList{Routes: []api.GatewayRoute{}}
		for _, rt := range g.List() {
			out.Routes = append(out.Routes, wireRoute(rt))
		}
		return out, nil
	})
	get := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.GatewayRoute, error) {
		rt, err := g.Get(r.PathValue("route"))
		return wireRoute(rt), err
	})
	put := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, in api.PutGatewayRoute) (api.GatewayRoute, error) {
		rt := gateway.Route{ID: r.PathValue("route"), Host: in.Host, PathPrefix: in.PathPrefix, Upstream: in.Upstream}
		if in.Timeout != "" {
			d, err := time.ParseDuration(in.Timeout)
			if err != nil {
				return api.GatewayRoute{}, errs.Field("timeout", "invalid_route", "the timeout is a duration like \"30s\"")
			}
			rt.Timeout = gateway.Duration(d)
		}
		if len(in.Silo) > 0 {
			rt.Silo = make(map[tenant.ID]string, len(in.Silo))
			for id, u := range in.Silo {
				rt.Silo[tenant.ID(id)] = u
			}
		}
		if _, err := g.Put(r.Context(), rt, actor(r)); err != nil {
			return api.GatewayRoute{}, err
		}
		return wireRoute(gateway.StoredRoute{Route: rt, Source: gateway.SourceAPI}), nil
	})
	remove := jsonCall(http.StatusNoContent, globalStore, func(r *http.Request, _ tenant.ID, _ none) (none, error) {
		return none{}, g.Delete(r.Context(), r.PathValue("route"), actor(r))
	})
	return []Route{
		{"GET", "/v1/gateway/routes", "gateway.route_list", Operator, list},
		{"GET", "/v1/gateway/routes/{route}", "gateway.route_get", Operator, get},
		{"PUT", "/v1/gateway/routes/{route}", "gateway.route_put", Operator, put},
		{"DELETE", "/v1/gateway/routes/{route}", "gateway.route_delete", Operator, remove},
	}
}

func wireRoute(r gateway.StoredRoute) api.GatewayRoute {
	out := api.GatewayRoute{ID: r.ID, Host: r.Host, PathPrefix: r.PathPrefix, Upstream: r.Upstream, Source: r.Source}
	if r.Timeout > 0 {
		out.Timeout = time.Duration(r.Timeout).String()
	}
	if len(r.Silo) > 0 {
		out.Silo = make(map[string]string, len(r.Silo))
		for id, u := range r.Silo {
			out.Silo[string(id)] = u
		}
	}
	return out
}
