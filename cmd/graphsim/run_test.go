package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
)

const testSecret = "cmd-test-secret-41c9"

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func environment(values map[string]string) func(string) string {
	return func(name string) string { return values[name] }
}

func TestRunRequiresSecret(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--addr", "127.0.0.1:0"}, environment(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), secretVariable) {
		t.Errorf("run without %s = %v, want an error that names it", secretVariable, err)
	}
}

func TestRunRejectsFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"unknown flag", []string{"--no-such-flag"}, errUsage},
		{"unknown Retry-After style", []string{"--retry-after", "minutes"}, errUsage},
		{"unknown form", []string{"--forms", "cast-only"}, errUsage},
		{"extra argument", []string{"serve"}, errUsage},
		{"help", []string{"--help"}, flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, environment(map[string]string{secretVariable: testSecret}), &stdout, &stderr)
			if !errors.Is(err, tt.want) {
				t.Errorf("run(%q) = %v, want %v", tt.args, err, tt.want)
			}
		})
	}
}

func TestParseFlagsProcessBeforeLatency(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{args: nil, want: false},
		{args: []string{"--process-before-latency"}, want: true},
		{args: []string{"-process-before-latency=false"}, want: false},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		opts, _, err := parseFlags(tt.args, &stderr)
		if err != nil {
			t.Fatalf("parseFlags(%q): %v; output %s", tt.args, err, stderr.String())
		}
		if opts.ProcessBeforeLatency != tt.want {
			t.Errorf("parseFlags(%q).ProcessBeforeLatency = %v, want %v", tt.args, opts.ProcessBeforeLatency, tt.want)
		}
	}
}

func TestParseFlagsReadOptions(t *testing.T) {
	tests := []struct {
		args           []string
		wantReadLimit  int
		wantReadWindow time.Duration
		wantPageSize   int
		wantFixedSize  bool
	}{
		{nil, 1000, 20 * time.Second, graphsim.DefaultLicensePageSize, false},
		{[]string{"--read-limit", "50", "--read-window", "5s", "--license-page-size", "7", "--fixed-size-stats"}, 50, 5 * time.Second, 7, true},
		{[]string{"--read-limit", "0"}, 0, 20 * time.Second, graphsim.DefaultLicensePageSize, false},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		opts, _, err := parseFlags(tt.args, &stderr)
		if err != nil {
			t.Fatalf("parseFlags(%q): %v; output %s", tt.args, err, stderr.String())
		}
		if opts.ReadLimit != tt.wantReadLimit || opts.ReadWindow != tt.wantReadWindow {
			t.Errorf("parseFlags(%q) read limit = %d per %v, want %d per %v", tt.args, opts.ReadLimit, opts.ReadWindow, tt.wantReadLimit, tt.wantReadWindow)
		}
		if opts.LicensePageSize != tt.wantPageSize {
			t.Errorf("parseFlags(%q).LicensePageSize = %d, want %d", tt.args, opts.LicensePageSize, tt.wantPageSize)
		}
		if opts.FixedSizeStats != tt.wantFixedSize {
			t.Errorf("parseFlags(%q).FixedSizeStats = %v, want %v", tt.args, opts.FixedSizeStats, tt.wantFixedSize)
		}
	}
}

func TestHelpListsReadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, environment(nil), &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run(--help) = %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"-read-limit", "-read-window", "-license-page-size", "-fixed-size-stats"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("help does not list %s:\n%s", name, stderr.String())
		}
	}
}

func TestRunRejectsInvalidReadOptions(t *testing.T) {
	tests := [][]string{
		{"--license-page-size", "-1"},
		{"--read-limit", "-5"},
		{"--read-window", "-1s"},
	}
	// The context is done already, so that run returns at once instead of serving if it accepts
	// the flags.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range tests {
		var stdout, stderr bytes.Buffer
		args = append([]string{"--addr", "127.0.0.1:0"}, args...)
		if err := run(ctx, args, environment(map[string]string{secretVariable: testSecret}), &stdout, &stderr); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}

func TestRunRejectsPublicAddress(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--addr", "0.0.0.0:8443"}, environment(map[string]string{secretVariable: testSecret}), &stdout, &stderr)
	if err == nil {
		t.Errorf("run on 0.0.0.0 succeeded, want an error")
	}
}

// TestRunServes starts the command, reads its connection details, gets a token with the secret
// from the environment and the certificate from --cert-out, and stops it.
func TestRunServes(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "graphsim.pem")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stdoutReader, stdoutWriter := io.Pipe()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		args := []string{"--addr", "127.0.0.1:0", "--cert-out", certFile, "--latency-min", "0", "--latency-max", "0", "--fault-rate", "0",
			"--process-before-latency"}
		done <- run(ctx, args, environment(map[string]string{secretVariable: testSecret}), stdoutWriter, &stderr)
		stdoutWriter.Close()
	}()

	printed := map[string]string{}
	scanner := bufio.NewScanner(stdoutReader)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if name, value, ok := strings.Cut(line, "="); ok {
			printed[name] = value
		}
		if strings.HasPrefix(line, "SSL_CERT_FILE=") {
			break
		}
	}
	go io.Copy(io.Discard, stdoutReader)

	if printed["SSL_CERT_FILE"] != certFile {
		t.Errorf("SSL_CERT_FILE = %q, want %q", printed["SSL_CERT_FILE"], certFile)
	}
	if want := "<the value of " + secretVariable + ">"; printed["AZURE_CLIENT_SECRET"] != want {
		t.Errorf("AZURE_CLIENT_SECRET = %q, want %q", printed["AZURE_CLIENT_SECRET"], want)
	}
	if printed["AZURE_TENANT_ID"] != graphsim.DefaultTenantID || printed["AZURE_CLIENT_ID"] != graphsim.DefaultClientID {
		t.Errorf("tenant, client = %q, %q, want the defaults", printed["AZURE_TENANT_ID"], printed["AZURE_CLIENT_ID"])
	}
	authority := printed["AZURE_AUTHORITY_HOST"]
	if !strings.HasPrefix(authority, "https://127.0.0.1:") {
		t.Fatalf("AZURE_AUTHORITY_HOST = %q, want https://127.0.0.1:PORT/", authority)
	}

	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("read certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("certificate file holds no PEM certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	origin := strings.TrimSuffix(authority, "/")
	resp, err := client.PostForm(authority+printed["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {printed["AZURE_CLIENT_ID"]},
		"client_secret": {testSecret},
		"scope":         {origin + "/.default"},
	})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token status = %d, want 200", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil after the context ends", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the context ended")
	}
	if strings.Contains(stderr.String(), testSecret) {
		t.Errorf("log contains the client secret")
	}
	if !strings.Contains(stderr.String(), "process_before_latency=true") {
		t.Errorf("log = %q, want the start record to show process_before_latency=true", stderr.String())
	}
	if !strings.Contains(stderr.String(), "read_limit=1000") || !strings.Contains(stderr.String(), "license_page_size=100") {
		t.Errorf("log = %q, want the start record to show the read limit and the page size", stderr.String())
	}
	if !strings.Contains(stderr.String(), "graphsim stopped") {
		t.Errorf("log = %q, want a stop record", stderr.String())
	}
}

func TestPrintConnectionPrecheckHint(t *testing.T) {
	server, err := graphsim.New(graphsim.Options{ClientSecret: testSecret})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	defer server.Close()

	tests := []struct {
		open bool
		want bool
	}{
		{open: true, want: true},
		{open: false, want: false},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		printConnection(&out, server, "", tt.open)
		if got := strings.Contains(out.String(), "--precheck=false"); got != tt.want {
			t.Errorf("printConnection(open %v) mentions --precheck=false = %v, want %v; output:\n%s", tt.open, got, tt.want, out.String())
		}
	}
}
