// Package clientaddr carries the address of the client behind a request, decided once at the
// edge of the HTTP server: X-Forwarded-For and X-Real-IP are believed only from proxies the
// operator configured (trusted_proxies), so a client on the plant segment cannot write an
// address of its choosing into the audit log or the logs of the boot, agent and registry
// handlers.
package clientaddr

import (
	"context"
	"net"
	"net/http"
)

type key struct{}

// Extractor decides a request's client address (echo.IPExtractor has this shape).
type Extractor func(*http.Request) string

// Handler stores the extractor's answer in each request's context for next.
func Handler(extract Extractor, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, extract(r))))
	})
}

// From returns the client address Handler decided, or the TCP peer when the request did not
// pass through Handler (never a header: those are the client's to choose).
func From(r *http.Request) string {
	if a, ok := r.Context().Value(key{}).(string); ok && a != "" {
		return a
	}
	return Peer(r)
}

// FromContext is From for code that only has the request's context ("" when unknown).
func FromContext(ctx context.Context) string {
	a, _ := ctx.Value(key{}).(string)
	return a
}

// Peer is the TCP peer's address without the port.
func Peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
