package report

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/gocarina/gocsv"
)

// Counts holds the number of rows that ended with each Status.
type Counts struct {
	Revoked     int64 `json:"revoked"`
	NotLicensed int64 `json:"not_licensed"`
	NotFound    int64 `json:"not_found"`
	Failed      int64 `json:"failed"`
	Invalid     int64 `json:"invalid"`
	Duplicate   int64 `json:"duplicate"`
	Planned     int64 `json:"planned"`
}

// Add counts one row that ended with s.
func (c *Counts) Add(s Status) {
	*c.field(s)++
}

// Of returns the number of rows that ended with s.
func (c Counts) Of(s Status) int64 {
	return *c.field(s)
}

// Total returns the number of finished rows.
func (c Counts) Total() int64 {
	var total int64
	for _, s := range Statuses {
		total += c.Of(s)
	}
	return total
}

// AllSucceeded reports whether every counted row was revoked, held no license, was a duplicate or was
// planned: the rows that make a complete job exit with 0.
func (c Counts) AllSucceeded() bool {
	return c.NotFound == 0 && c.Failed == 0 && c.Invalid == 0
}

func (c *Counts) field(s Status) *int64 {
	switch s {
	case Revoked:
		return &c.Revoked
	case NotLicensed:
		return &c.NotLicensed
	case NotFound:
		return &c.NotFound
	case Failed:
		return &c.Failed
	case Invalid:
		return &c.Invalid
	case Duplicate:
		return &c.Duplicate
	case Planned:
		return &c.Planned
	}
	panic(fmt.Sprintf("report: unknown status %q", s))
}

// Summary holds the figures of a whole job, across all the runs that worked on it.
type Summary struct {
	// Rows is the number of data rows in the input.
	Rows   int64
	Counts Counts
	// Requests counts the revoke requests sent to Graph, retries included.
	Requests int64
	// Throttled counts the responses with status 429 to revoke requests.
	Throttled int64
	// Reads counts the read requests of the license precheck, retries included, and ReadsThrottled
	// the responses with status 429 to them.
	Reads          int64
	ReadsThrottled int64
	// Retries counts the attempts after the first one of each row.
	Retries int64
	// Rejected counts the access tokens Graph rejected with 401, each replaced by a fresh one.
	Rejected int64
	// Runs counts the runs that worked on the job.
	Runs    int
	Elapsed time.Duration
	// Complete is true when every row has its outcome.
	Complete bool
	// DryRun is true for the figures of a dry run, which sends nothing.
	DryRun bool
}

// Pending returns the number of rows that have no outcome yet.
func (s Summary) Pending() int64 { return s.Rows - s.Counts.Total() }

// Add adds the figures of another job to s, so that s sums the jobs of a folder of waves. Rows,
// counts, requests, retries and elapsed time add up. Runs becomes the larger of the two, because one
// run works on several jobs. Complete and DryRun stay true only when both summaries have them, so a
// sum starts from Summary{Complete: true}, or with DryRun set too for dry runs.
func (s *Summary) Add(other Summary) {
	s.Rows += other.Rows
	for _, status := range Statuses {
		*s.Counts.field(status) += other.Counts.Of(status)
	}
	s.Requests += other.Requests
	s.Throttled += other.Throttled
	s.Reads += other.Reads
	s.ReadsThrottled += other.ReadsThrottled
	s.Retries += other.Retries
	s.Rejected += other.Rejected
	s.Runs = max(s.Runs, other.Runs)
	s.Elapsed += other.Elapsed
	s.Complete = s.Complete && other.Complete
	s.DryRun = s.DryRun && other.DryRun
}

type metric struct {
	Name  string `csv:"metric"`
	Value string `csv:"value"`
}

// WriteCSV writes s as summary.csv: a header "metric,value" and one line per figure.
func (s Summary) WriteCSV(w io.Writer) error {
	metrics := []metric{{"rows", itoa(s.Rows)}}
	for _, status := range Statuses {
		metrics = append(metrics, metric{string(status), itoa(s.Counts.Of(status))})
	}
	metrics = append(metrics,
		metric{"pending", itoa(s.Pending())},
		metric{"requests", itoa(s.Requests)},
		metric{"throttled", itoa(s.Throttled)},
		metric{"reads", itoa(s.Reads)},
		metric{"reads_throttled", itoa(s.ReadsThrottled)},
		metric{"retries", itoa(s.Retries)},
		metric{"tokens_rejected", itoa(s.Rejected)},
		metric{"runs", strconv.Itoa(s.Runs)},
		metric{"elapsed_seconds", strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 1, 64)},
		metric{"complete", strconv.FormatBool(s.Complete)},
	)
	return gocsv.Marshal(metrics, w)
}

// WriteText writes s for a person reading a terminal.
func (s Summary) WriteText(w io.Writer) error {
	state := "complete"
	switch {
	case s.DryRun:
		state = "dry run complete, nothing was sent"
	case !s.Complete:
		state = fmt.Sprintf("not complete: %d rows pending", s.Pending())
	}
	_, err := fmt.Fprintf(w,
		"reclaim: %s\n"+
			"  rows          %d\n"+
			"  revoked       %d\n"+
			"  not_licensed  %d\n"+
			"  not_found     %d\n"+
			"  failed        %d\n"+
			"  invalid       %d\n"+
			"  duplicate     %d\n"+
			"  planned       %d\n"+
			"  requests      %d (throttled %d, retries %d)\n"+
			"  reads         %d (throttled %d)\n"+
			"  elapsed       %s over %d run(s)\n",
		state, s.Rows, s.Counts.Revoked, s.Counts.NotLicensed, s.Counts.NotFound, s.Counts.Failed,
		s.Counts.Invalid, s.Counts.Duplicate, s.Counts.Planned, s.Requests, s.Throttled, s.Retries,
		s.Reads, s.ReadsThrottled, s.Elapsed.Round(time.Second), s.Runs)
	return err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
