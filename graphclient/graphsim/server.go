// Package graphsim is a fake of Microsoft Graph and of the Entra token endpoint for tests, demos
// and benchmarks of the reclaim job. It serves, over HTTPS on 127.0.0.1:
//
//   - the OpenID discovery document and the client-credentials token endpoint of one tenant, as
//     MSAL for Go reaches them with instance discovery turned off;
//   - the beta action iosVppApp revokeDeviceLicense in its cast and uncast URL forms, against a
//     catalogue of apps, devices and licenses;
//   - two beta reads of that catalogue: GET mobileApps/{appId}, and the paged license holders at
//     GET mobileApps/{appId}/microsoft.graph.iosVppApp/assignedLicenses;
//   - GET /_graphsim/stats, the server's Stats as JSON, without a token.
//
// Graph responses follow Graph's shapes: error bodies, request-id and client-request-id headers,
// 401 for a missing or expired token, 429 with Retry-After from a per-client sliding window, one
// for writes and one for reads. Knobs in Options add latency, 5xx faults, dropped connections and
// outages, which apply to reads and writes alike. The knobs can change while the server runs
// through the Set methods, which are safe for concurrent use.
package graphsim

import (
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// StatsPath is the path of the stats endpoint.
const StatsPath = "/_graphsim/stats"

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	url     string
	certPEM []byte
	pool    *x509.CertPool
	client  *http.Client
	http    *http.Server
	start   time.Time
	logger  *slog.Logger

	mu sync.Mutex
	// opts contains the credentials, which never change, and the current knobs.
	opts             Options
	forcedOutage     bool
	rng              *rand.Rand
	tokens           map[string]issuedToken
	issued           []string // every access token, in order of issue
	writeWindow      slidingWindow
	readWindow       slidingWindow
	catalogue        *catalogue
	skiptokenNonce   [8]byte // random per server, so that a skiptoken of another server is invalid
	clientRequestIDs map[string]bool
	rotation         int // index into rotatedStyles of the next rotating Retry-After style
	inFlight         int
	stats            Stats
}

type issuedToken struct {
	clientID string
	expires  time.Time
}

// New starts a server on opts.Addr, or on a free port of 127.0.0.1, and returns once it accepts
// connections. Close it when done.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	addr, err := loopbackAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	catalogue, err := newCatalogue(opts)
	if err != nil {
		return nil, fmt.Errorf("graphsim: %w", err)
	}

	start := time.Now()
	cert, certPEM, err := newCertificate(start)
	if err != nil {
		return nil, fmt.Errorf("graphsim: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("graphsim: listen on %s: %w", addr, err)
	}

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		url:              "https://" + ln.Addr().String(),
		certPEM:          certPEM,
		pool:             pool,
		start:            start,
		logger:           logger,
		opts:             opts,
		rng:              rand.New(rand.NewPCG(opts.Seed, 0x67726170687369)),
		tokens:           map[string]issuedToken{},
		writeWindow:      slidingWindow{admitted: map[string][]time.Time{}},
		readWindow:       slidingWindow{admitted: map[string][]time.Time{}},
		catalogue:        catalogue,
		clientRequestIDs: map[string]bool{},
		stats:            newStats(),
	}
	cryptorand.Read(s.skiptokenNonce[:])
	s.client = &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		MaxIdleConns:      100,
		IdleConnTimeout:   90 * time.Second,
	}}
	s.http = &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// ServeTLS turns on HTTP/2 next to HTTP/1.1.
	go func() {
		if err := s.http.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("graphsim stopped serving", "error", err)
		}
	}()
	return s, nil
}

// loopbackAddr maps addr to a 127.0.0.1 listen address, or rejects it.
func loopbackAddr(addr string) (string, error) {
	if addr == "" {
		return "127.0.0.1:0", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("graphsim: invalid address %q: %w", addr, err)
	}
	if host != "127.0.0.1" && host != "localhost" {
		return "", fmt.Errorf("graphsim: address %q is not on 127.0.0.1: the simulator serves loopback only", addr)
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}

// URL returns the server's origin, https://127.0.0.1:PORT. The token scope is URL() + "/.default".
func (s *Server) URL() string { return s.url }

// GraphURL returns the root of the Graph API, URL() + "/beta".
func (s *Server) GraphURL() string { return s.url + "/beta" }

// AuthorityHost returns the Entra authority host, URL() + "/", the value for
// AZURE_AUTHORITY_HOST and azcore's cloud.Configuration.ActiveDirectoryAuthorityHost.
func (s *Server) AuthorityHost() string { return s.url + "/" }

// CertPEM returns the server's self-signed certificate in PEM, the content for SSL_CERT_FILE.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// CertPool returns a pool that contains only the server's certificate.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// Client returns an HTTP client that trusts the server's certificate and uses HTTP/2.
func (s *Server) Client() *http.Client { return s.client }

// TenantID returns the tenant the token endpoint accepts.
func (s *Server) TenantID() string { return s.opts.TenantID }

// ClientID returns the client id the token endpoint accepts.
func (s *Server) ClientID() string { return s.opts.ClientID }

// Close stops the server at once, dropping the connections in use.
func (s *Server) Close() error {
	s.client.CloseIdleConnections()
	return s.http.Close()
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// IssuedTokens returns every access token issued so far, so that tests can search logs and files
// for them.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// ServeHTTP routes a request to the Entra, Graph or stats handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/beta" || strings.HasPrefix(path, "/beta/"):
		s.serveGraph(w, r)
	case path == StatsPath:
		s.serveStats(w, r)
	default:
		s.serveEntra(w, r)
	}
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Stats())
}

// sleep waits for d or until ctx is done, and reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
