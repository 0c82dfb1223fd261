package graphsim

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// clearAzureEnv unsets every inherited AZURE_* variable for the test, because some of them
// (AZURE_REGIONAL_AUTHORITY_NAME, AZURE_AUTHORITY_HOST) would send azidentity to another host.
func clearAzureEnv(t *testing.T) {
	for _, entry := range os.Environ() {
		name, _, _ := strings.Cut(entry, "=")
		if strings.HasPrefix(name, "AZURE_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// azureClientOptions points azidentity at s and trusts its certificate.
func azureClientOptions(s *Server) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.AuthorityHost()},
		Transport: s.Client(),
	}
}

// checkAzureToken gets a token through cred and uses it for a revoke.
func checkAzureToken(t *testing.T, s *Server, cred azcore.TokenCredential) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	token, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.URL() + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if !slices.Contains(s.IssuedTokens(), token.Token) {
		t.Errorf("GetToken returned a token the server did not issue")
	}
	if until := time.Until(token.ExpiresOn); until < 50*time.Minute {
		t.Errorf("token expires in %v, want about an hour", until)
	}
	wantStatus(t, "revoke with azidentity token", revoke(t, s, token.Token, FormCast, appVPP, deviceOne), http.StatusNoContent, "")
}

func TestAzidentityClientSecret(t *testing.T) {
	clearAzureEnv(t)
	s := newTestServer(t, Options{Open: true})

	cred, err := azidentity.NewClientSecretCredential(s.TenantID(), s.ClientID(), testSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azureClientOptions(s), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	checkAzureToken(t, s, cred)
}

func TestAzidentityWrongSecret(t *testing.T) {
	clearAzureEnv(t)
	s := newTestServer(t, Options{Open: true})

	cred, err := azidentity.NewClientSecretCredential(s.TenantID(), s.ClientID(), "wrong-secret",
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azureClientOptions(s), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.URL() + "/.default"}})

	var authErr *azidentity.AuthenticationFailedError
	if !errors.As(err, &authErr) {
		t.Fatalf("GetToken error = %v, want AuthenticationFailedError", err)
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("GetToken error = %v, want it to contain AADSTS7000215", err)
	}
}

func TestAzidentityWorkloadIdentity(t *testing.T) {
	clearAzureEnv(t)
	const federated = "federated-token-from-the-projected-volume"
	s := newTestServer(t, Options{Open: true, FederatedToken: federated})
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}

	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions:            azureClientOptions(s),
		ClientID:                 s.ClientID(),
		TenantID:                 s.TenantID(),
		TokenFilePath:            tokenFile,
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewWorkloadIdentityCredential: %v", err)
	}
	checkAzureToken(t, s, cred)
}
