package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for functions (package sdk/api), under this package's
// names.
type (
	FunctionConfig = api.FunctionConfig
	Function       = api.Function
)

// Invocation is a function's answer.
type Invocation struct {
	Body        []byte
	ContentType string
	Environment string
	ColdStart   bool
}

// PublishFunction registers a function, or a new version of it (operator).
func (c *Client) PublishFunction(ctx context.Context, cfg FunctionConfig, module []byte) (Function, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	cj, _ := json.Marshal(cfg)
	if err := mw.WriteField("config", string(cj)); err != nil {
		return Function{}, err
	}
	fw, err := mw.CreateFormFile("module", cfg.Name+".wasm")
	if err != nil {
		return Function{}, err
	}
	fw.Write(module)
	mw.Close()
	var out Function
	b, err := c.raw(ctx, http.MethodPost, "/v1/functions", http.Header{"Content-Type": {mw.FormDataContentType()}}, body.Bytes())
	if err != nil {
		return Function{}, err
	}
	return out, json.Unmarshal(b.Body, &out)
}

// ListFunctions lists the registered functions (operator).
func (c *Client) ListFunctions(ctx context.Context) ([]Function, error) {
	var out api.List[Function]
	err := c.Do(ctx, http.MethodGet, "/v1/functions", nil, nil, &out)
	return out.Items, err
}

// DeleteFunction removes a function (operator).
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil, nil, nil)
}

// FunctionEnvironments lists a function's live execution environments
// (operator): the idle ones, and one entry without an id per busy one.
func (c *Client) FunctionEnvironments(ctx context.Context, name string) ([]api.FunctionEnvironment, error) {
	var out api.List[api.FunctionEnvironment]
	err := c.Do(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name)+"/environments", nil, nil, &out)
	return out.Items, err
}

// InvokeFunction runs a function with event. tenant is sent as X-Tenant-Id
// (the operator names the tenant that way; a tenant token runs for its own).
func (c *Client) InvokeFunction(ctx context.Context, name, tenant string, event []byte) (Invocation, error) {
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	if tenant != "" {
		hdr.Set("X-Tenant-Id", tenant)
	}
	r, err := c.raw(ctx, http.MethodPost, "/v1/functions/"+url.PathEscape(name)+"/invoke", hdr, event)
	if err != nil {
		return Invocation{}, err
	}
	return Invocation{Body: r.Body, ContentType: r.Header.Get("Content-Type"), Environment: r.Header.Get("X-Bulkhead-Environment"),
		ColdStart: r.Header.Get("X-Bulkhead-Cold-Start") == "true"}, nil
}

type rawResponse struct {
	Header http.Header
	Body   []byte
}

// raw sends a body that is not JSON and returns the answer's bytes.
func (c *Client) raw(ctx context.Context, method, path string, hdr http.Header, body []byte) (rawResponse, error) {
	resp, err := c.send(ctx, method, path, hdr, bytes.NewReader(body))
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return rawResponse{}, fmt.Errorf("client: read %s %s: %w", method, path, err)
	}
	return rawResponse{Header: resp.Header, Body: b}, nil
}
