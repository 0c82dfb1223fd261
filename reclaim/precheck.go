package reclaim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"reclaim/graphclient"
	"reclaim/report"
)

// precheckParallel is how many apps the precheck reads at the same time.
const precheckParallel = 4

// maxLoggedApps is how many apps the precheck logs its result for, one line each.
const maxLoggedApps = 50

// readRateFactor is the ceiling of the read rate as a multiple of --rate: Graph gives reads a budget ten
// times larger than writes.
const readRateFactor = 10

// maxLicensePages bounds the pages of one app's license holders: at Graph's usual page sizes, far
// more than any tenant holds. A next link that never ends is a fault of the service.
const maxLicensePages = 100_000

// errPagingLoop is the failure of license paging that does not end.
var errPagingLoop = errors.New("the license holders' next links do not end")

// notVPPCode is the error_code of rows whose app is not an iosVppApp.
const notVPPCode = "not_vpp_app"

// notLicensedReason is the error_message of rows whose device held no license.
const notLicensedReason = "the device held no license for this app when reclaim read the app's license holders"

// precheck reads, for each app of the job, whether it exists, whether it is an iosVppApp and which of
// the job's devices hold one of its licenses, so that the run sends revoke requests only where they
// reclaim a license. Reads have their own throttle: Graph budgets them apart from writes.
//
// The results go into the wave index as one licensed bit per pair, so a license set costs no memory
// beyond the index; a page of license holders is dropped once its devices are marked.
type precheck struct {
	j        *job
	throttle *throttle
	slots    chan struct{}
	// running counts the goroutines of started prechecks.
	running sync.WaitGroup
	// appsLogged counts the apps whose precheck has begun, for appLogger.
	appsLogged atomic.Int64

	mu   sync.Mutex
	apps map[string]*appCheck
}

// appCheck is the precheck of one app. Its fields are set before done is closed and never after.
type appCheck struct {
	done chan struct{}
	// settle, when set, is the outcome of every pending row of the app: the app does not exist or is
	// not an iosVppApp, and no request is sent for it.
	settle *failure
	// sendAll is true when the license holders could not be read for a reason that a revoke request
	// may still get past: the rows are sent as without the precheck.
	sendAll bool
	// err ends the run: a stop, or a failure such as a missing permission.
	err error
}

func newPrecheck(j *job, t *throttle) *precheck {
	return &precheck{j: j, throttle: t, slots: make(chan struct{}, precheckParallel), apps: map[string]*appCheck{}}
}

// register returns the precheck of appID, and true when this call created it.
func (p *precheck) register(appID string) (*appCheck, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.apps[appID]; ok {
		return c, false
	}
	c := &appCheck{done: make(chan struct{})}
	p.apps[appID] = c
	return c, true
}

// start begins the precheck of appID unless it has begun, and returns it. The precheck waits for a
// free slot, so that at most precheckParallel apps are read at a time.
func (p *precheck) start(ctx context.Context, appID string) *appCheck {
	c, created := p.register(appID)
	if !created {
		return c
	}
	p.running.Go(func() {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			c.err = ctx.Err()
			close(c.done)
			return
		}
		p.run(ctx, appID, c)
	})
	return c
}

// run runs the precheck of appID in a slot it holds, then frees the slot.
func (p *precheck) run(ctx context.Context, appID string, c *appCheck) {
	defer func() { <-p.slots }()
	defer close(c.done)
	p.check(ctx, appID, c)
}

// wait waits for the goroutines of every started precheck to end; they end soon after their context.
func (p *precheck) wait() { p.running.Wait() }

// await returns the finished precheck of appID, starting it if needed.
func (p *precheck) await(ctx context.Context, appID string) (*appCheck, error) {
	c := p.start(ctx, appID)
	select {
	case <-c.done:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// appLogger returns the logger for the precheck of one more app: the run's logger for the first
// maxLoggedApps apps, and a logger that discards everything after that. The rows carry the outcome of
// every app in outcomes.csv.
func (p *precheck) appLogger(appID string) zerolog.Logger {
	switch n := p.appsLogged.Add(1); {
	case n <= maxLoggedApps:
		return p.j.log.With().Str(keyAppID, appID).Logger()
	case n == maxLoggedApps+1:
		p.j.log.Info().Msgf("precheck: more than %d apps; the results of the others are only in %s", maxLoggedApps, OutcomesFile)
	}
	return zerolog.Nop()
}

// check reads the app and its license holders and fills c.
func (p *precheck) check(ctx context.Context, appID string, c *appCheck) {
	log := p.appLogger(appID)
	started := time.Now()

	var app graphclient.App
	err := p.read(ctx, log, "app", func(ctx context.Context) (err error) {
		app, err = p.j.client.ReadApp(ctx, appID)
		return err
	})
	if done := p.readFailed(log, c, err, "reading the app"); done {
		return
	}
	if !app.IsVPP() {
		c.settle = &failure{status: report.Failed, code: notVPPCode, requestID: app.RequestID,
			message: fmt.Sprintf("app %s is a %s, not an iosVppApp: it has no VPP licenses to revoke; remove its rows from the wave", appID, app.ODataType)}
		log.Warn().Str("odata_type", app.ODataType).Msg("precheck: the app is not an iosVppApp; its rows fail without a request")
		return
	}

	pages, holders, marked := 0, 0, 0
	next := ""
	for {
		var page graphclient.LicensePage
		err := p.read(ctx, log, "license holders", func(ctx context.Context) (err error) {
			page, err = p.j.client.ReadLicenses(ctx, appID, next)
			return err
		})
		if done := p.readFailed(log, c, err, "reading the license holders"); done {
			return
		}
		pages++
		holders += len(page.DeviceIDs)
		marked += p.j.index.markLicensed(appID, page.DeviceIDs)
		if page.Next == "" {
			break
		}
		if page.Next == next || pages >= maxLicensePages {
			p.readFailed(log, c, fmt.Errorf("%w after %d pages, at %s", errPagingLoop, pages, page.Next), "reading the license holders")
			return
		}
		next = page.Next
	}
	log.Info().Int("pages", pages).Int("device_licenses", holders).Int("job_pairs_licensed", marked).
		Stringer("took", time.Since(started).Round(time.Millisecond)).
		Msg("precheck: read the app's license holders; rows of other devices get not_licensed without a request")
}

// readFailed records in c the end of a precheck whose read returned err, and reports whether the
// precheck ended. A missing app settles its rows as not_found. Another 4xx, or a response that
// reclaim cannot use, sends the app's rows as without the precheck, because a revoke may still succeed.
func (p *precheck) readFailed(log zerolog.Logger, c *appCheck, err error, doing string) bool {
	if err == nil {
		return false
	}
	var graphErr *graphclient.Error
	switch {
	case errors.As(err, &graphErr) && graphErr.Class() == graphclient.NotFound:
		c.settle = &failure{status: report.NotFound, http: graphErr.StatusCode, code: graphErr.Code,
			message: graphErr.Message, requestID: graphErr.RequestID}
		log.Warn().Int(keyHTTPStatus, graphErr.StatusCode).Str(keyErrorCode, graphErr.Code).
			Msg("precheck: the app does not exist; its rows get not_found without a request")
	case errors.As(err, &graphErr) && graphErr.Class() == graphclient.Permanent &&
		!errors.Is(err, graphclient.ErrForbidden):
		c.sendAll = true
		log.Warn().Int(keyHTTPStatus, graphErr.StatusCode).Str(keyErrorCode, graphErr.Code).Str("error", graphErr.Message).
			Msgf("precheck: Graph refused %s; the app's rows are sent without the precheck", doing)
	case errors.Is(err, graphclient.ErrInvalidResponse), errors.Is(err, graphclient.ErrUnsafeNextLink),
		errors.Is(err, errPagingLoop):
		c.sendAll = true
		log.Warn().Err(err).Msgf("precheck: invalid response when %s; the app's rows are sent without the precheck", doing)
	default:
		c.err = err
	}
	return true
}

// read sends one read request through send, retrying throttling and faults as revoke requests are
// retried. It returns nil, Graph's final error response, or the error that ends the run.
func (p *precheck) read(ctx context.Context, log zerolog.Logger, what string, send func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if err := p.throttle.wait(ctx); err != nil {
			return err
		}
		sentAt := time.Now()
		err := send(ctx)
		if err == nil {
			p.j.health.answered()
			p.throttle.succeeded()
			return nil
		}

		var graphErr *graphclient.Error
		var transportErr *graphclient.TransportError
		var wait time.Duration
		switch {
		case errors.Is(err, graphclient.ErrForbidden) || errors.Is(err, graphclient.ErrUntrustedAuthority):
			return err
		case errors.As(err, &graphErr) && graphErr.Class() == graphclient.Throttled:
			// The throttle pauses every read, and without Retry-After it picks the pause itself.
			wait = p.throttle.throttled(sentAt, graphErr.RetryAfter)
			p.j.readsThrottled.Add(1)
			log.Info().Str("read", what).Int(keyAttempt, attempt).Stringer(keyWait, wait.Round(time.Millisecond)).
				Msg("precheck: read throttled; retrying")
			continue
		case errors.As(err, &graphErr) && graphErr.Class() == graphclient.Transient,
			errors.As(err, &transportErr) && transportErr.Retryable():
			p.j.health.fault()
			if p.j.health.outage() {
				p.j.stop(errOutage)
				return context.Cause(ctx)
			}
			wait = backoff(attempt, p.j.cfg.BackoffBase, p.j.cfg.BackoffMax)
			if graphErr != nil && graphErr.RetryAfter > 0 {
				wait = graphErr.RetryAfter
			}
		case errors.As(err, &graphErr):
			p.j.health.answered()
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return err
		}
		event := log.Warn().Str("read", what).Int(keyAttempt, attempt).Err(err)
		if graphErr != nil && graphErr.StatusCode != 0 {
			event = event.Int(keyHTTPStatus, graphErr.StatusCode)
		}
		event.Stringer(keyWait, wait.Round(time.Millisecond)).Msg("precheck: read failed; retrying")
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// prefetch starts the prechecks of the apps that have a pending row, in the order of their first
// pending row, so that the feed seldom waits for one. One goroutine hands out the slots in that order,
// so that a job of many apps holds few goroutines.
func (p *precheck) prefetch(ctx context.Context) {
	type pending struct {
		appID string
		first int
	}
	var apps []pending
	for _, app := range p.j.index.appIDs() {
		lo, hi := p.j.index.appRange(app)
		first := 0
		for i := lo; i < hi; i++ {
			if row := p.j.index.firstRow(i); !p.j.ledger.isDone(row) && (first == 0 || row < first) {
				first = row
			}
		}
		if first > 0 {
			apps = append(apps, pending{appID: app.String(), first: first})
		}
	}
	slices.SortFunc(apps, func(a, b pending) int { return cmp.Compare(a.first, b.first) })

	p.running.Go(func() {
		for _, app := range apps {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			c, created := p.register(app.appID)
			if !created {
				<-p.slots // the feed started this app already
				continue
			}
			p.running.Go(func() { p.run(ctx, app.appID, c) })
		}
	})
}

// decide returns the precheck's result for a valid, new row whose pair is at position pair in the
// wave index: an outcome that settles it without a request, or send true. It returns neither when ctx ends first, and an error that ends the run when
// the app's precheck failed for good.
func (p *precheck) decide(ctx context.Context, row Row, pair int) (outcome *report.Outcome, send bool, err error) {
	c, err := p.await(ctx, row.AppID)
	switch {
	case err != nil:
		return nil, false, nil
	case c.err != nil && ctx.Err() != nil:
		return nil, false, nil
	case c.err != nil:
		return nil, false, c.err
	case c.settle != nil:
		o := rowOutcome(row, c.settle.status, c.settle.message)
		o.HTTPStatus, o.ErrorCode, o.RequestID = c.settle.http, c.settle.code, c.settle.requestID
		p.j.skipped.log(row, c.settle.status, c.settle.message)
		return &o, false, nil
	case c.sendAll:
		return nil, true, nil
	}
	if p.j.index.licensed(pair) {
		return nil, true, nil
	}
	p.j.skipped.log(row, report.NotLicensed, notLicensedReason)
	o := rowOutcome(row, report.NotLicensed, notLicensedReason)
	return &o, false, nil
}
