// Package logging builds Bulkhead's structured JSON logger. Every line
// written with a context that carries a tenant (a tenant.Context from
// authentication, or a tenant id attached with WithTenant) has "tenant_id".
package logging

import (
	"context"
	"io"
	"log/slog"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// New returns a JSON logger writing to w at level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(&handler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

type attrsKey struct{}

// With returns ctx carrying attrs that every log line written with it will have.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(attrsKey{}).([]slog.Attr)
	all := make([]slog.Attr, 0, len(prev)+len(attrs))
	all = append(append(all, prev...), attrs...)
	return context.WithValue(ctx, attrsKey{}, all)
}

type handler struct{ slog.Handler }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(attrsKey{}).([]slog.Attr); ok {
		r.AddAttrs(attrs...)
	}
	if id, ok := tenant.IDFrom(ctx); ok {
		r.AddAttrs(slog.String("tenant_id", string(id)))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler { return &handler{h.Handler.WithAttrs(as)} }
func (h *handler) WithGroup(name string) slog.Handler    { return &handler{h.Handler.WithGroup(name)} }
