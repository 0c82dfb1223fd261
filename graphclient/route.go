package graphclient

import (
	"fmt"
	"net/url"
	"sync"
)

// Form is one of the two URL forms of the revokeDeviceLicense action. The action is bound to the derived
// type microsoft.graph.iosVppApp, and services have been seen to accept only the type-cast form, while the
// reference page documents the other one.
type Form int

const (
	// FormCast is .../mobileApps/{id}/microsoft.graph.iosVppApp/revokeDeviceLicense.
	FormCast Form = iota
	// FormUncast is .../mobileApps/{id}/revokeDeviceLicense.
	FormUncast
)

func (f Form) String() string {
	if f == FormUncast {
		return "uncast"
	}
	return "cast"
}

// ParseForm reads the String form of a Form; the empty string is FormCast.
func ParseForm(s string) (Form, error) {
	switch s {
	case "", "cast":
		return FormCast, nil
	case "uncast":
		return FormUncast, nil
	}
	return 0, fmt.Errorf("unknown URL form %q; want cast or uncast", s)
}

func (f Form) other() Form { return 1 - f }

// path returns the path of the action for appID below the Graph root.
func (f Form) path(appID string) string {
	p := "/deviceAppManagement/mobileApps/" + url.PathEscape(appID)
	if f == FormCast {
		p += "/microsoft.graph.iosVppApp"
	}
	return p + "/revokeDeviceLicense"
}

// routeDecision is the next step after Graph returned its unknown-segment error for a form.
type routeDecision int

const (
	retryOtherForm routeDecision = iota // send the same request with route.current()
	rowRejected                         // the working form failed for this row only: a permanent error
	noFormWorks                         // both forms failed before either worked: stop the run
)

// route remembers which URL form the service accepts. A form is confirmed by any response that shows
// that the service parsed the path. Until then a segment error moves every worker to the other form, once.
// It is safe for concurrent use.
type route struct {
	mu        sync.Mutex
	form      Form
	confirmed bool
	rejected  [2]bool
}

func (r *route) current() Form {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.form
}

// confirm records that the service parsed the path of form f.
func (r *route) confirm(f Form) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f == r.form {
		r.confirmed = true
	}
}

// reject records a segment error for a request sent with form f.
func (r *route) reject(f Form) routeDecision {
	r.mu.Lock()
	defer r.mu.Unlock()

	switch {
	case f != r.form:
		// Another worker has already switched forms while this request was on its way.
		return retryOtherForm
	case r.confirmed:
		// NOTE: Graph does not document its response for an app that is not an iosVppApp. If it is this
		// segment error, the row fails here and the form stays in use for the other rows.
		return rowRejected
	}
	r.rejected[f] = true
	if r.rejected[f.other()] {
		return noFormWorks
	}
	r.form = f.other()
	return retryOtherForm
}
