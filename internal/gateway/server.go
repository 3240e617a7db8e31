package gateway

import (
	"log"
	"net/http"
	"time"
)

// Server limits of the gateway's listeners.
const (
	// ReadHeaderTimeout bounds a client's time to send its headers
	// (slowloris).
	ReadHeaderTimeout = 10 * time.Second
	// MaxHeaderBytes bounds a request's headers; past it the client gets
	// 431.
	MaxHeaderBytes = 64 << 10
)

// NewServer returns the HTTP server of a gateway listener serving h. It has
// no write timeout: answers stream for as long as the application sends
// them; each route bounds the wait for the application's headers.
func NewServer(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
	}
}
