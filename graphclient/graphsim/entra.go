package graphsim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

const jwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// entraError is the body of an Entra token endpoint error.
type entraError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
}

// tokenFailure is one rejection of a token request: an HTTP status, an OAuth error and an
// AADSTS code with its description.
type tokenFailure struct {
	status      int
	oauthError  string
	code        int
	description string
}

// serveEntra serves the discovery document, the token endpoint and the signing keys of one
// tenant: paths of the form /{tenant}/...
func (s *Server) serveEntra(w http.ResponseWriter, r *http.Request) {
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")

	var serve func(http.ResponseWriter, *http.Request, string)
	method := http.MethodGet
	switch rest {
	case "v2.0/.well-known/openid-configuration":
		serve = s.serveDiscovery
	case "discovery/v2.0/keys":
		serve = s.serveKeys
	case "oauth2/v2.0/token":
		serve, method = s.serveToken, http.MethodPost
	default:
		http.NotFound(w, r)
		return
	}

	if r.Method != method {
		s.writeEntraError(w, r, tokenFailure{http.StatusMethodNotAllowed, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts %s requests.", method)})
		return
	}
	if !strings.EqualFold(tenant, s.opts.TenantID) {
		s.writeEntraError(w, r, tokenFailure{http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check the tenant ID and the authority host.", tenant)})
		return
	}
	serve(w, r, tenant)
}

func (s *Server) serveDiscovery(w http.ResponseWriter, _ *http.Request, tenant string) {
	base := s.url + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"request_uri_parameter_supported":       false,
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "graphsim.local",
	})
}

// serveKeys serves an empty key set, because the server issues opaque tokens, not JWTs.
func (s *Server) serveKeys(w http.ResponseWriter, _ *http.Request, _ string) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// serveToken serves the client-credentials grant.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, _ string) {
	s.mu.Lock()
	s.stats.TokenRequests++
	s.mu.Unlock()

	if err := r.ParseForm(); err != nil {
		s.writeEntraError(w, r, tokenFailure{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must be form-encoded: " + err.Error()})
		return
	}
	form := r.PostForm
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	// client_secret_basic: the credentials come in the Authorization header instead.
	if basicID, basicSecret, ok := r.BasicAuth(); ok && clientID == "" && secret == "" {
		clientID, secret = basicID, basicSecret
	}
	if failure := s.checkTokenRequest(clientID, form.Get("grant_type"), secret,
		form.Get("client_assertion_type"), form.Get("client_assertion"), form.Get("scope")); failure != nil {
		s.writeEntraError(w, r, *failure)
		return
	}

	token := randomString(32)
	s.mu.Lock()
	lifetime, expiresIn := s.opts.TokenLifetime, s.opts.TokenExpiresIn
	s.tokens[token] = issuedToken{clientID: s.opts.ClientID, expires: time.Now().Add(lifetime)}
	s.issued = append(s.issued, token)
	s.stats.TokensIssued++
	s.mu.Unlock()

	s.logger.Debug("graphsim issued a token", "client_id", clientID, "lifetime", lifetime, "expires_in", expiresIn)
	seconds := int64(math.Ceil(expiresIn.Seconds()))
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"access_token":   token,
		"expires_in":     seconds,
		"ext_expires_in": seconds,
	})
}

// checkTokenRequest returns the reason to reject a token request, or nil. It checks the grant
// type, the client id, the credential and the scope, in that order.
func (s *Server) checkTokenRequest(clientID, grantType, secret, assertionType, assertion, scope string) *tokenFailure {
	switch {
	case grantType == "":
		return &tokenFailure{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the parameter 'grant_type'."}
	case grantType != "client_credentials":
		return &tokenFailure{http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The grant type '%s' is not supported: only client_credentials is.", grantType)}
	case clientID == "":
		return &tokenFailure{http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the parameter 'client_id'."}
	case !strings.EqualFold(clientID, s.opts.ClientID):
		return &tokenFailure{http.StatusUnauthorized, "invalid_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in tenant '%s'.", clientID, s.opts.TenantID)}
	}

	switch {
	case assertion != "":
		if assertionType != jwtBearerAssertionType {
			return &tokenFailure{http.StatusBadRequest, "invalid_request", 900144,
				"The parameter 'client_assertion_type' must be '" + jwtBearerAssertionType + "'."}
		}
		if !equalSecret(assertion, s.opts.FederatedToken) {
			return &tokenFailure{http.StatusUnauthorized, "invalid_client", 70021,
				"No federated identity credential of the application matches the presented assertion."}
		}
	case secret == "":
		return &tokenFailure{http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the parameter 'client_assertion' or 'client_secret'."}
	case !equalSecret(secret, s.opts.ClientSecret):
		return &tokenFailure{http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided for application '%s'. Send the secret value, not its ID.", clientID)}
	}

	if !s.scopeAccepted(scope) {
		return &tokenFailure{http.StatusBadRequest, "invalid_scope", 70011,
			fmt.Sprintf("The provided scope '%s' is not valid. Request the single scope '%s/.default'.", scope, s.url)}
	}
	return nil
}

// equalSecret compares in constant time and never accepts an empty configured value.
func equalSecret(got, configured string) bool {
	return configured != "" && subtle.ConstantTimeCompare([]byte(got), []byte(configured)) == 1
}

// scopeAccepted reports whether scope requests exactly this server's "/.default" scope. MSAL
// appends the OpenID scopes openid, offline_access and profile, which are ignored.
func (s *Server) scopeAccepted(scope string) bool {
	resources := 0
	for _, item := range strings.Fields(scope) {
		switch item {
		case "openid", "offline_access", "profile":
			continue
		}
		if !strings.EqualFold(item, s.url+"/.default") {
			return false
		}
		resources++
	}
	return resources == 1
}

func (s *Server) writeEntraError(w http.ResponseWriter, r *http.Request, failure tokenFailure) {
	s.mu.Lock()
	s.stats.TokenErrors++
	s.mu.Unlock()

	now := time.Now().UTC()
	traceID := newGUID()
	correlationID := r.Header.Get("client-request-id")
	if correlationID == "" {
		correlationID = newGUID()
	}
	timestamp := now.Format("2006-01-02 15:04:05Z")
	s.logger.Debug("graphsim rejected a token request", "status", failure.status, "error", failure.oauthError,
		"code", failure.code)

	writeJSON(w, failure.status, entraError{
		Error: failure.oauthError,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			failure.code, failure.description, traceID, correlationID, timestamp),
		ErrorCodes:    []int{failure.code},
		Timestamp:     timestamp,
		TraceID:       traceID,
		CorrelationID: correlationID,
		ErrorURI:      fmt.Sprintf("%s/error?code=%d", s.url, failure.code),
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
