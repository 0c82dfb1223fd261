package graphsim

import (
	"fmt"
	"time"
)

// SetTokenLifetime sets how long the server honours tokens and the expires_in it advertises, for
// tokens issued from now on. It rejects values that are not above zero.
func (s *Server) SetTokenLifetime(lifetime, expiresIn time.Duration) error {
	if err := validateTokenLifetime(lifetime, expiresIn); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.TokenLifetime, s.opts.TokenExpiresIn = lifetime, expiresIn
	return nil
}

// ExpireTokens makes every token issued so far expired, so its next use gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for token, issued := range s.tokens {
		issued.expires = now
		s.tokens[token] = issued
	}
}

// SetForms sets the accepted URL forms of the revoke action.
func (s *Server) SetForms(forms Form) error {
	if err := validateForms(forms); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Forms = forms
	return nil
}

// SetWriteLimit sets the writes that one client id may make per window. A limit of 0 turns
// write throttling off. Writes admitted before the call stay in the window, so lowering the limit
// below them throttles the next writes until enough of them have left it.
func (s *Server) SetWriteLimit(limit int, window time.Duration) error {
	if err := validateLimit("write", limit, window); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.WriteLimit, s.opts.WriteWindow = limit, window
	return nil
}

// SetReadLimit sets the reads that one client id may make per window, as SetWriteLimit does for
// writes. A limit of 0 turns read throttling off.
func (s *Server) SetReadLimit(limit int, window time.Duration) error {
	if err := validateLimit("read", limit, window); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.ReadLimit, s.opts.ReadWindow = limit, window
	return nil
}

// AddLicenses gives the license of the app appID to every device in deviceIDs, which become known
// devices, and creates the app in the explicit catalogue with the type that vpp selects if it does
// not exist yet. A device that held the license and lost it to a revoke holds it again. It fails
// without a change when an id is not a GUID, or when the app exists with the other type. In an open
// catalogue, an app created here is explicit from then on, so only the devices added hold its
// license.
//
// The catalogue stores a license in 16 bytes plus 1 bit, and each known device in 16 more bytes.
// The first call on a catalogue without devices saves the second 16 bytes, because the list of
// known devices then shares the app's keys. So 1,000,000 devices licensed for one app take 16 MB
// (BenchmarkCatalogueMemory). A later call merges the new devices into sorted slices. It costs
// O(n log n) for the n devices passed plus O(N) for the N licenses and devices stored, and for a
// moment twice the memory of the slices it grows, so pass large sets in few calls.
func (s *Server) AddLicenses(appID string, vpp bool, deviceIDs []string) error {
	appKey, ok := parseGUIDKey(appID)
	if !ok {
		return fmt.Errorf("graphsim: add licenses: invalid app id %q: want a GUID", appID)
	}
	devices, err := parseGUIDKeys(deviceIDs, "the devices of app "+appKey.String())
	if err != nil {
		return fmt.Errorf("graphsim: add licenses: %w", err)
	}
	devices = sortedUniqueKeys(devices)

	s.mu.Lock()
	defer s.mu.Unlock()
	app, err := s.catalogue.ensureApp(appKey, vpp)
	if err != nil {
		return fmt.Errorf("graphsim: add licenses: %w", err)
	}
	s.catalogue.addLicenses(app, devices)
	return nil
}

// SetRetryAfterStyle sets the style of the Retry-After header on 429 responses.
func (s *Server) SetRetryAfterStyle(style RetryAfterStyle) error {
	if err := validateStyle(style); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RetryAfter = style
	return nil
}

// SetFaultRate sets the share of Graph requests that get a 5xx response. It rejects a rate that,
// with the reset rate, falls outside [0, 1].
func (s *Server) SetFaultRate(rate float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := validateRates(rate, s.opts.ResetRate); err != nil {
		return err
	}
	s.opts.FaultRate = rate
	return nil
}

// SetResetRate sets the share of Graph requests whose connection is dropped. It rejects a rate
// that, with the fault rate, falls outside [0, 1].
func (s *Server) SetResetRate(rate float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := validateRates(s.opts.FaultRate, rate); err != nil {
		return err
	}
	s.opts.ResetRate = rate
	return nil
}

// SetLatency sets the range of the random delay before every Graph response.
func (s *Server) SetLatency(minimum, maximum time.Duration) error {
	if err := validateLatency(minimum, maximum); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.LatencyMin, s.opts.LatencyMax = minimum, maximum
	return nil
}

// SetProcessBeforeLatency turns Options.ProcessBeforeLatency on or off for requests received from now
// on.
func (s *Server) SetProcessBeforeLatency(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.ProcessBeforeLatency = on
}

// SetOutage starts (true) or stops (false) an outage now. Outage windows from Options still apply
// while it is stopped.
func (s *Server) SetOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forcedOutage = on
}

// SetForbidden turns on or off the 403 response to every authenticated request to a known
// endpoint, reads included.
func (s *Server) SetForbidden(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Forbidden = on
}
