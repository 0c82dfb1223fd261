package report

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// PushTimeout bounds one push. Kubernetes sends SIGKILL 30 s after SIGTERM unless the pod sets another
// grace period, and the run's drain (reclaim.DefaultDrain, 10 s) takes part of that, so the push must
// end well within the rest.
const PushTimeout = 5 * time.Second

// PushTarget is the group on a Pushgateway that a run's figures go to.
type PushTarget struct {
	// URL is the root of the Pushgateway, without /metrics/job/...: https, or http on a loopback host.
	// A user name and password in it are sent as HTTP basic authentication.
	URL string
	// Job is the value of the job label.
	Job string
	// Grouping holds the other labels of the group, such as input. Their values should be the same
	// on every run of one job, so that each run replaces the figures of the one before.
	Grouping map[string]string
}

// Validate returns an error when t cannot be pushed to: a URL that ParsePushgatewayURL rejects, or an
// empty job or grouping label name.
func (t PushTarget) Validate() error {
	if _, err := ParsePushgatewayURL(t.URL); err != nil {
		return err
	}
	if t.Job == "" {
		return errors.New("pushgateway job is empty; set a job label value such as reclaim")
	}
	for name := range t.Grouping {
		if name == "" || name == "job" {
			return fmt.Errorf("pushgateway grouping label name %q is invalid: use a name other than job", name)
		}
	}
	return nil
}

// ParsePushgatewayURL parses the root URL of a Pushgateway. It requires https unless the host is a
// loopback address, because the request carries the figures and any password in the URL.
func ParsePushgatewayURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// A *url.Error repeats the whole URL, password included, so only its cause is kept.
		var parseErr *url.Error
		if errors.As(err, &parseErr) {
			err = parseErr.Err
		}
		return nil, fmt.Errorf("pushgateway URL %q is not a URL: %w", redactRaw(raw), err)
	}
	redacted := u.Redacted()
	if u.Host == "" {
		return nil, fmt.Errorf("pushgateway URL %q has no host; use a value such as https://pushgateway.monitoring:9091", redacted)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("pushgateway URL %q uses http on a host other than loopback, which would send the figures and any password in clear; use https", redacted)
		}
	default:
		return nil, fmt.Errorf("pushgateway URL %q must start with https://", redacted)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pushgateway URL %q has a query or fragment; give only the root of the Pushgateway", redacted)
	}
	if strings.Contains(u.Path, "/metrics/") {
		return nil, fmt.Errorf("pushgateway URL %q contains /metrics/; give only the root of the Pushgateway, because reclaim adds the job and grouping labels", redacted)
	}
	return u, nil
}

// redactRaw returns raw with anything between "://" and the last "@" of its authority replaced, for
// messages about a URL that does not parse and so cannot be redacted by url.URL.Redacted.
func redactRaw(raw string) string {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		return raw
	}
	authority, path, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	redacted := scheme + "://xxxxx@" + authority[at+1:]
	if len(rest) > len(authority) {
		redacted += "/" + path
	}
	return redacted
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Figures holds what one run pushes.
type Figures struct {
	// Summary holds the job's figures over all the runs that worked on it.
	Summary Summary
	// SummaryRead is true when Summary was read from the job's state. When it is false, as after a bad
	// flag, only the run's gauges are pushed, so that the job's gauges from an earlier push stay.
	SummaryRead bool
	// Duration is the time this run took.
	Duration time.Duration
	// ExitCode is the exit code of this run.
	ExitCode int
	// Complete is true when this run ended with the job complete, which is exit code 0 or 1.
	Complete bool
	// EndedAt is when this run ended. It is pushed as the last complete time when Complete is true.
	EndedAt time.Time
}

// Push sends f to the group t names on a Pushgateway, as gauges:
//
//	reclaim_rows{status}                     rows by status, pending included
//	reclaim_requests                         revoke requests, retries included
//	reclaim_throttled                        responses with status 429 to revoke requests
//	reclaim_reads                            read requests of the license precheck
//	reclaim_reads_throttled                  responses with status 429 to read requests
//	reclaim_retries                          attempts after the first one of each row
//	reclaim_tokens_rejected                  access tokens Graph rejected with 401
//	reclaim_runs                             runs that worked on the job
//	reclaim_elapsed_seconds                  time all those runs took together
//	reclaim_complete                         1 when the job is complete, else 0
//	reclaim_run_duration_seconds             time this run took
//	reclaim_last_exit_code                   exit code of this run
//	reclaim_last_complete_timestamp_seconds  Unix time when this run ended, only when Complete
//
// The job figures come from f.Summary and so cover all the job's runs. They are left out when
// f.SummaryRead is false.
//
// Push uses POST, which replaces only the metrics of the same name in the group. A run that did not
// complete the job sends no reclaim_last_complete_timestamp_seconds, so the time that an earlier
// complete run pushed stays, and an alert on its age fires when runs keep failing. PUT would delete
// it instead.
//
// Push gives up after PushTimeout or when ctx ends, whichever is first. Its errors never contain the
// password of t.URL.
func Push(ctx context.Context, t PushTarget, f Figures) error {
	if err := t.Validate(); err != nil {
		return err
	}
	u, _ := ParsePushgatewayURL(t.URL)

	// The password goes in a header rather than the URL, because the push package puts its URL into
	// error messages.
	var username, password string
	hasUser := u.User != nil
	if hasUser {
		username = u.User.Username()
		password, _ = u.User.Password()
	}
	u.User = nil

	pusher := push.New(strings.TrimRight(u.String(), "/"), t.Job).Gatherer(figuresRegistry(f))
	for name, value := range t.Grouping {
		pusher = pusher.Grouping(name, value)
	}
	if hasUser {
		pusher = pusher.BasicAuth(username, password)
	}

	ctx, cancel := context.WithTimeout(ctx, PushTimeout)
	defer cancel()
	if err := pusher.AddContext(ctx); err != nil {
		return fmt.Errorf("push figures: %w", err)
	}
	return nil
}

// figuresRegistry returns a new registry that holds the gauges of f. A registry of its own keeps the
// push free of the process metrics that the default registry collects.
func figuresRegistry(f Figures) *prometheus.Registry {
	registry := prometheus.NewRegistry()
	gauge := func(name, help string, value float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		g.Set(value)
		registry.MustRegister(g)
	}
	gauge("reclaim_run_duration_seconds", "Time the last run took.", f.Duration.Seconds())
	gauge("reclaim_last_exit_code", "Exit code of the last run.", float64(f.ExitCode))
	if f.Complete {
		gauge("reclaim_last_complete_timestamp_seconds", "Unix time when the last run that found the job complete ended.",
			float64(f.EndedAt.UnixMilli())/1000)
	}
	if !f.SummaryRead {
		return registry
	}

	s := f.Summary
	rows := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reclaim_rows",
		Help: "Rows of the job's input by status; pending rows have no outcome yet.",
	}, []string{"status"})
	for _, status := range Statuses {
		rows.WithLabelValues(string(status)).Set(float64(s.Counts.Of(status)))
	}
	rows.WithLabelValues("pending").Set(float64(s.Pending()))
	registry.MustRegister(rows)

	gauge("reclaim_requests", "Revoke requests sent to Graph for the job, retries included.", float64(s.Requests))
	gauge("reclaim_throttled", "Responses with status 429 to the job's revoke requests.", float64(s.Throttled))
	gauge("reclaim_reads", "Read requests of the job's license precheck, retries included.", float64(s.Reads))
	gauge("reclaim_reads_throttled", "Responses with status 429 to the job's read requests.", float64(s.ReadsThrottled))
	gauge("reclaim_retries", "Attempts after the first one of each row of the job.", float64(s.Retries))
	gauge("reclaim_tokens_rejected", "Access tokens Graph rejected with 401 during the job.", float64(s.Rejected))
	gauge("reclaim_runs", "Runs that worked on the job.", float64(s.Runs))
	gauge("reclaim_elapsed_seconds", "Time the job's runs took together.", s.Elapsed.Seconds())
	gauge("reclaim_complete", "1 when the last run ended with every row of the job done, else 0.", boolValue(f.Complete))
	return registry
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
