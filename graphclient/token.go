package graphclient

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// refreshMargin is how long before expiry a token is replaced, as azcore's bearer policy does.
// Tokens that live less than four margins are replaced after three quarters of their life instead.
const refreshMargin = 5 * time.Minute

// tokenSource caches one access token for every worker and replaces it before it expires.
// It is safe for concurrent use; callers wait while one of them fetches a token.
type tokenSource struct {
	scope string
	now   func() time.Time

	mu sync.Mutex
	// newCredential builds the credential again after Graph rejected a token that the credential's
	// own cache still returns; nil when the credential cannot be rebuilt.
	newCredential func() (azcore.TokenCredential, error)
	credential    azcore.TokenCredential
	token         azcore.AccessToken
	refreshAt     time.Time
}

// get returns a token that is not near its expiry.
func (s *tokenSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.token.Token != "" && s.now().Before(s.refreshAt) {
		return s.token.Token, nil
	}
	return s.fetch(ctx)
}

// replace returns a token other than rejected, the one Graph rejected with 401. When another worker
// has already replaced it, that token is returned without asking the credential again.
func (s *tokenSource) replace(ctx context.Context, rejected string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.token.Token != rejected && s.token.Token != "" && s.now().Before(s.refreshAt) {
		return s.token.Token, nil
	}
	token, err := s.fetch(ctx)
	if err != nil || token != rejected || s.newCredential == nil {
		return token, err
	}

	// The credential's cache (MSAL keeps tokens until five minutes before expiry) handed back the
	// rejected token. A new credential starts with an empty cache.
	credential, err := s.newCredential()
	if err != nil {
		return "", err
	}
	s.credential = credential
	return s.fetch(ctx)
}

// fetch requests a token from the credential. The caller holds s.mu.
func (s *tokenSource) fetch(ctx context.Context) (string, error) {
	token, err := s.credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return "", err
	}

	now := s.now()
	refreshAt := token.ExpiresOn.Add(-refreshMargin)
	if life := token.ExpiresOn.Sub(now); life < 4*refreshMargin {
		refreshAt = now.Add(life * 3 / 4)
	}
	if !token.RefreshOn.IsZero() && token.RefreshOn.Before(refreshAt) {
		refreshAt = token.RefreshOn
	}
	s.token = token
	s.refreshAt = refreshAt
	return token.Token, nil
}
