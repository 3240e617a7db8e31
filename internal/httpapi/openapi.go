package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the API's OpenAPI 3 description; a test keeps it in
// step with the registered routes.
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDocument)
	return nil
}
