package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"reclaim/graphclient/graphsim"
)

// benchSecret is the client secret that the simulators of the benchmark accept.
const benchSecret = "bench-client-secret-4c1d9e"

// simulator is a graphsim server that logs the times of its Graph responses into this process.
type simulator struct {
	*graphsim.Server
	times *responseTimes
	// certFile is the PEM file of the server's certificate, for SSL_CERT_FILE.
	certFile string
}

// startSimulator starts graphsim with opts and benchSecret. Unless opts has a Logger, graphsim's
// Debug records of its responses go into the simulator's times. dir receives the certificate file.
func startSimulator(opts graphsim.Options, dir string) (*simulator, error) {
	opts.ClientSecret = benchSecret
	times := &responseTimes{}
	if opts.Logger == nil {
		opts.Logger = slog.New(timesHandler{times})
	}
	server, err := graphsim.New(opts)
	if err != nil {
		return nil, err
	}
	sim := &simulator{Server: server, times: times, certFile: filepath.Join(dir, "graphsim.pem")}
	if err := os.WriteFile(sim.certFile, server.CertPEM(), 0o644); err != nil {
		server.Close()
		return nil, err
	}
	return sim, nil
}

// env returns the whole environment of a reclaim process that talks to sim, with home as HOME. Nothing
// is inherited, so no AZURE_* or RECLAIM_* variable of this machine leaks in, and the credential chain
// is pinned to the environment credential, so it never falls through to managed identity and the
// cloud metadata address.
func (sim *simulator) env(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AZURE_TOKEN_CREDENTIALS=EnvironmentCredential",
		"AZURE_AUTHORITY_HOST=" + sim.AuthorityHost(),
		"AZURE_TENANT_ID=" + sim.TenantID(),
		"AZURE_CLIENT_ID=" + sim.ClientID(),
		"AZURE_CLIENT_SECRET=" + benchSecret,
		"SSL_CERT_FILE=" + sim.certFile,
	}
}

// credential returns a client secret credential that gets its tokens from sim only.
func (sim *simulator) credential() (azcore.TokenCredential, error) {
	return azidentity.NewClientSecretCredential(sim.TenantID(), sim.ClientID(), benchSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: sim.AuthorityHost()},
				Transport: sim.Client(),
			},
			DisableInstanceDiscovery: true,
		})
}

// httpClient returns a client with its own connections that trusts the server, configured as the
// reclaim binary's own: HTTP/2 when the server offers it, up to 64 idle connections.
func (sim *simulator) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: sim.CertPool()},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// responseTimes records the times of graphsim's responses to Graph requests, from its log. A write is a POST
// request, a read any other. A request that graphsim processed but whose client went away before the
// response counts too. It is safe for concurrent use.
type responseTimes struct {
	mu sync.Mutex
	// first and firstWrite are the times of the first response to any Graph request and to a write
	// since the last reset, and lastWrite of the latest response to a write. They are zero when there
	// was none.
	first      time.Time
	firstWrite time.Time
	lastWrite  time.Time
}

func (t *responseTimes) record(at time.Time, write bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first.IsZero() {
		t.first = at
	}
	if !write {
		return
	}
	if t.firstWrite.IsZero() {
		t.firstWrite = at
	}
	t.lastWrite = at
}

// get returns the first response, the first response to a write and the last one to a write.
func (t *responseTimes) get() (first, firstWrite, lastWrite time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first, t.firstWrite, t.lastWrite
}

// reset clears the times, so that the next response counts as the first.
func (t *responseTimes) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.first, t.firstWrite, t.lastWrite = time.Time{}, time.Time{}, time.Time{}
}

// writes returns the number of write requests that reached graphsim: every Graph request that is
// not a read.
func writes(stats graphsim.Stats) int { return stats.GraphRequests - stats.ReadRequests }

// timesHandler is a slog.Handler that records graphsim's records of Graph responses in a
// responseTimes. Those records carry the request's method and the response's status. Other records
// are dropped.
type timesHandler struct{ times *responseTimes }

func (h timesHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h timesHandler) Handle(_ context.Context, r slog.Record) error {
	method, hasStatus := "", false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "method":
			method = a.Value.String()
		case "status":
			hasStatus = true
		}
		return true
	})
	if method != "" && hasStatus {
		h.times.record(r.Time, method == http.MethodPost)
	}
	return nil
}

func (h timesHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h timesHandler) WithGroup(string) slog.Handler      { return h }
