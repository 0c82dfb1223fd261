package graphsim

import "time"

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
// throttling off. Requests admitted before the call stay in the window.
func (s *Server) SetWriteLimit(limit int, window time.Duration) error {
	if err := validateWriteLimit(limit, window); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.WriteLimit, s.opts.WriteWindow = limit, window
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

// SetForbidden turns on or off the 403 response to every authenticated revoke request.
func (s *Server) SetForbidden(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Forbidden = on
}
