package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"reclaim/graphclient/graphsim"
	"reclaim/reclaim"
)

func TestUnusableInputStopsBeforeSending(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	const app, device = "6513270e-269e-4d37-b2a7-4de452e6b438", "36f675cc-81e7-4ef5-a8e2-5d940ed90475"
	tests := []struct {
		name    string
		content *string // nil: the file does not exist
		want    []string
	}{
		{"missing file", nil, []string{"file not found"}},
		{"empty file", ptr(""), []string{"empty"}},
		{"only blank lines", ptr("\n\r\n\n"), []string{"no header"}},
		{"header without rows", ptr("appId,deviceId\n"), []string{"no data rows"}},
		{"no app column", ptr("deviceId,name\n" + device + ",x\n"), []string{"no app id column"}},
		{"no device column", ptr("appId,name\n" + app + ",x\n"), []string{"no device id column"}},
		{"only entra device id", ptr("appId,Azure AD Device ID\n" + app + "," + device + "\n"), []string{"Entra", "Intune"}},
		{"only microsoft entra device id", ptr("App ID;Microsoft Entra Device ID\n" + app + ";" + device + "\n"), []string{"Entra"}},
		{"unclosed quote", ptr("appId,deviceId\n" + app + "," + device + "\n\"" + app + "," + device + "\n" + app + "," + device + "\n"), []string{"line 3", "never closed"}},
		{"two app columns", ptr("appId,applicationId,deviceId\n" + app + "," + app + "," + device + "\n"), []string{"two app id columns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			input := filepath.Join(dir, "wave.csv")
			if tt.content != nil {
				if err := os.WriteFile(input, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(dir, "out")

			res := sim.run(t, "--input", input, "--out-dir", out)
			res.wantCode(t, reclaim.ExitUsage)
			for _, want := range append(tt.want, input) {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, tail(res.stderr, 3))
				}
			}
			if _, err := os.Stat(filepath.Join(out, reclaim.OutcomesFile)); !os.IsNotExist(err) {
				t.Errorf("outcomes.csv exists after an unusable input (%v)", err)
			}
		})
	}
	if stats := sim.Stats(); stats.GraphRequests != 0 || stats.TokenRequests != 0 {
		t.Errorf("Graph requests %d, token requests %d; want 0 and 0", stats.GraphRequests, stats.TokenRequests)
	}
}

func ptr(s string) *string { return &s }

func TestExcelExportWithSemicolonsAndBOM(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{})
	rows := validWave(40, 6)
	entra := rand.New(rand.NewPCG(40, 41))
	var b strings.Builder
	b.WriteString("\ufeffsep=;\r\nDevice name;Device ID;Microsoft Entra Device ID;Serial number;App ID;Notify\r\n")
	for i, r := range rows {
		notify := []string{"", "yes", "0"}[i%3]
		b.WriteString("iPad;" + strings.ToUpper(r.device) + ";" + guid(entra) + ";\"DMP;X\";" + r.app + ";" + notify + "\r\n\r\n")
	}
	input := filepath.Join(t.TempDir(), "export.csv")
	if err := os.WriteFile(input, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()

	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "50")
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	revokedOnce(t, sim.Stats(), rows)
}

func TestNoSecretInLogsOrFiles(t *testing.T) {
	t.Parallel()
	sim := startSim(t, graphsim.Options{TokenLifetime: 500 * time.Millisecond, TokenExpiresIn: time.Hour,
		WriteLimit: 5, WriteWindow: time.Second, FaultRate: 0.2, Seed: 9})
	rows := append(validWave(41, 30), row{cells: []string{"x", "y"}, want: "invalid"})
	input, out := writeWave(t, rows), t.TempDir()

	res := sim.run(t, "--input", input, "--out-dir", out, "--rate", "20", "--log-level", "debug")
	res.wantCode(t, reclaim.ExitRowsFailed)
	// A run that fails on authentication prints its error too.
	bad := sim.command(t, "--input", input, "--out-dir", t.TempDir(), "--log-level", "debug")
	for i, kv := range bad.Env {
		if strings.HasPrefix(kv, "AZURE_CLIENT_SECRET=") {
			bad.Env[i] = "AZURE_CLIENT_SECRET=wrong-" + testSecret
		}
	}
	badRes := runProcess(t, bad)
	badRes.wantCode(t, reclaim.ExitAuth)

	texts := map[string]string{"stdout": res.stdout, "stderr": res.stderr, "auth failure stderr": badRes.stderr}
	for _, name := range []string{reclaim.OutcomesFile, reclaim.SummaryFile, reclaim.CheckpointFile} {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		texts[name] = string(data)
	}
	tokens := sim.IssuedTokens()
	if len(tokens) < 2 {
		t.Fatalf("only %d tokens issued; the test needs a refresh", len(tokens))
	}
	for name, text := range texts {
		for _, secret := range append(tokens, testSecret, "Bearer ") {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret or token (%.12s…)", name, secret)
			}
		}
	}
}

func TestWorkloadIdentityCredential(t *testing.T) {
	t.Parallel()
	const federated = "federated-service-account-token"
	sim := startSim(t, graphsim.Options{FederatedToken: federated})
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}
	rows := validWave(42, 5)
	out := t.TempDir()

	// The variables the AKS workload identity webhook injects, and no client secret.
	cmd := sim.command(t, "--input", writeWave(t, rows), "--out-dir", out)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"AZURE_TOKEN_CREDENTIALS=WorkloadIdentityCredential",
		"AZURE_AUTHORITY_HOST=" + sim.AuthorityHost(),
		"AZURE_TENANT_ID=" + sim.TenantID(),
		"AZURE_CLIENT_ID=" + sim.ClientID(),
		"AZURE_FEDERATED_TOKEN_FILE=" + tokenFile,
		"SSL_CERT_FILE=" + sim.certFile,
	}
	res := runProcess(t, cmd)
	res.wantCode(t, reclaim.ExitOK)
	checkOutcomes(t, out, rows)
	if got := sim.Stats().TokensIssued; got != 1 {
		t.Errorf("tokens issued = %d, want 1", got)
	}
}
