// Package httpx holds the small HTTP helpers Bulkhead's handlers share.
package httpx

import "net/http"

// StatusWriter records the status code a handler answered with and the
// bytes of body it wrote.
type StatusWriter struct {
	http.ResponseWriter
	Status int   // 0 until the handler writes
	Bytes  int64 // body bytes written
}

// WriteHeader records code and passes it on.
func (w *StatusWriter) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and passes b on.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += int64(n)
	return n, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
