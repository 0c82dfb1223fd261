package graphclient

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// DefaultGraphURL is the Graph root the job talks to unless told otherwise. revokeDeviceLicense exists
// only in the beta version.
const DefaultGraphURL = "https://graph.microsoft.com/beta"

// publicAuthorities are the Entra hosts of the public Azure clouds, which serve instance discovery.
var publicAuthorities = []string{
	cloud.AzurePublic.ActiveDirectoryAuthorityHost,
	cloud.AzureGovernment.ActiveDirectoryAuthorityHost,
	cloud.AzureChina.ActiveDirectoryAuthorityHost,
}

// NewCredential returns the credential chain that azidentity's DefaultAzureCredential reads from the
// environment: client secret or certificate (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or
// AZURE_CLIENT_CERTIFICATE_PATH), Kubernetes workload identity (AZURE_FEDERATED_TOKEN_FILE), managed
// identity, then the Azure CLI. AZURE_TOKEN_CREDENTIALS narrows the chain and AZURE_AUTHORITY_HOST picks
// the authority. For an authority outside the public clouds, instance discovery is turned off, because
// it would ask login.microsoftonline.com about a host that it does not know.
func NewCredential() (azcore.TokenCredential, error) {
	options := &azidentity.DefaultAzureCredentialOptions{
		DisableInstanceDiscovery: !isPublicAuthority(os.Getenv("AZURE_AUTHORITY_HOST")),
	}
	credential, err := azidentity.NewDefaultAzureCredential(options)
	if err != nil {
		return nil, fmt.Errorf("set up credentials: %w", err)
	}
	return credential, nil
}

// isPublicAuthority reports whether host, a value of AZURE_AUTHORITY_HOST, is empty (azidentity then uses
// the public cloud) or one of the public clouds' Entra hosts.
func isPublicAuthority(host string) bool {
	if host == "" {
		return true
	}
	authority, err := url.Parse(host)
	if err != nil {
		return false
	}
	for _, public := range publicAuthorities {
		known, _ := url.Parse(public)
		if strings.EqualFold(authority.Host, known.Host) {
			return true
		}
	}
	return false
}

// ParseGraphURL checks a --graph-url value and returns it without a trailing slash. It must use https,
// unless it is on a loopback address, and must end in the beta version, the only one with
// revokeDeviceLicense.
func ParseGraphURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("graph URL %q is not a URL: %w", raw, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("graph URL %q has no host; use a value such as %s", raw, DefaultGraphURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("graph URL %q uses http, which would send the access token in clear; use https", raw)
		}
	default:
		return nil, fmt.Errorf("graph URL %q must start with https://", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("graph URL %q has a query or fragment; give only the root, such as %s", raw, DefaultGraphURL)
	}
	if !strings.HasSuffix(u.Path, "/beta") {
		return nil, fmt.Errorf("graph URL %q does not end in /beta: revokeDeviceLicense exists only in Graph beta; use a value such as %s", raw, DefaultGraphURL)
	}
	return u, nil
}

// Scope returns the token scope for a Graph root: its scheme and host followed by /.default.
func Scope(graphURL *url.URL) string {
	return graphURL.Scheme + "://" + graphURL.Host + "/.default"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
