package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/outbox"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// webhookRoutes keep the operator's webhooks of Bulkhead's own events
// (package outbox) and show their delivery logs. A webhook's secret is in
// the create's answer only.
func (s *Server) webhookRoutes() []Route {
	o := s.Outbox
	create := jsonCall(http.StatusCreated, globalStore, func(r *http.Request, _ tenant.ID, in api.CreateWebhook) (api.WebhookCreated, error) {
		c, err := o.Create(r.Context(), in.URL, in.Events, actor(r))
		return api.WebhookCreated{Webhook: wireWebhook(c.Webhook), Secret: c.Secret}, err
	})
	list := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.WebhookPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.WebhookPage{}, err
		}
		p, err := o.List(r.Context(), limit, r.URL.Query().Get("cursor"))
		out := api.WebhookPage{Items: make([]api.Webhook, 0, len(p.Items)), NextCursor: p.NextCursor}
		for _, w := range p.Items {
			out.Items = append(out.Items, wireWebhook(w))
		}
		return out, err
	})
	get := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.Webhook, error) {
		w, err := o.Get(r.Context(), r.PathValue("webhook"))
		return wireWebhook(w), err
	})
	remove := jsonCall(http.StatusNoContent, globalStore, func(r *http.Request, _ tenant.ID, _ none) (none, error) {
		return none{}, o.Delete(r.Context(), r.PathValue("webhook"), actor(r))
	})
	deliveries := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.WebhookDeliveryPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.WebhookDeliveryPage{}, err
		}
		p, err := o.Deliveries(r.Context(), r.PathValue("webhook"), limit, r.URL.Query().Get("cursor"))
		out := api.WebhookDeliveryPage{Items: make([]api.WebhookDelivery, 0, len(p.Items)), NextCursor: p.NextCursor}
		for _, d := range p.Items {
			out.Items = append(out.Items, api.WebhookDelivery{ID: d.ID, EventID: d.EventID, Type: d.Type, Status: d.Status,
				Attempts: d.Attempts, LastStatusCode: d.LastStatus, LastError: d.LastError, NextAttemptAt: d.NextAttempt,
				DeliveredAt: d.DeliveredAt, CreatedAt: d.CreatedAt})
		}
		return out, err
	})
	return []Route{
		{"POST", "/v1/webhooks", "webhook.create", Operator, create},
		{"GET", "/v1/webhooks", "webhook.list", Operator, list},
		{"GET", "/v1/webhooks/{webhook}", "webhook.get", Operator, get},
		{"DELETE", "/v1/webhooks/{webhook}", "webhook.delete", Operator, remove},
		{"GET", "/v1/webhooks/{webhook}/deliveries", "webhook.deliveries", Operator, deliveries},
	}
}

func wireWebhook(w outbox.Webhook) api.Webhook {
	return api.Webhook{ID: w.ID, URL: w.URL, Events: w.Events, CreatedAt: w.CreatedAt}
}
