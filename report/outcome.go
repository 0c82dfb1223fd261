// Package report writes reclaim's output files: outcomes.csv, one line per input row, and summary.csv,
// the figures of the whole job. Both are written for people who open them in Excel, so every text cell
// is a single line and cannot start a formula.
package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gocarina/gocsv"
)

// Status is the result of one input row.
type Status string

const (
	Revoked     Status = "revoked"      // Graph accepted the revoke request
	NotLicensed Status = "not_licensed" // the device held no license for the app, so nothing was sent
	NotFound    Status = "not_found"    // Graph returned 404: the app or the device does not exist
	Failed      Status = "failed"       // Graph refused the request, or every attempt failed
	Invalid     Status = "invalid"      // the row cannot be sent, for the reason in error_message
	Duplicate   Status = "duplicate"    // an earlier row has the same app and device
	Planned     Status = "planned"      // a dry run would send this row
)

// Statuses lists every Status in the order the summary shows them.
var Statuses = []Status{Revoked, NotLicensed, NotFound, Failed, Invalid, Duplicate, Planned}

// ParseStatus returns the Status spelled s.
func ParseStatus(s string) (Status, error) {
	for _, status := range Statuses {
		if string(status) == s {
			return status, nil
		}
	}
	return "", fmt.Errorf("unknown status %q", s)
}

// Outcome is the result of one input row, as a line of outcomes.csv.
type Outcome struct {
	// Row is the 1-based index of the data record in the input; the header is not counted.
	Row      int
	AppID    string
	DeviceID string
	Status   Status
	// HTTPStatus is the status of Graph's last response, or 0 when none arrived or nothing was sent.
	HTTPStatus int
	// Attempts counts the requests sent for the row, retries included.
	Attempts     int
	ErrorCode    string
	ErrorMessage string
	// RequestID is the request-id of Graph's last response. Microsoft support requests it.
	RequestID  string
	FinishedAt time.Time
}

// OutcomesHeader is the first line of outcomes.csv.
const OutcomesHeader = "row,app_id,device_id,status,http_status,attempts,error_code,error_message,request_id,finished_at\n"

// outcomeRecord is the CSV shape of an Outcome; gocsv reads its tags.
type outcomeRecord struct {
	Row          int    `csv:"row"`
	AppID        cell   `csv:"app_id"`
	DeviceID     cell   `csv:"device_id"`
	Status       cell   `csv:"status"`
	HTTPStatus   string `csv:"http_status"`
	Attempts     int    `csv:"attempts"`
	ErrorCode    cell   `csv:"error_code"`
	ErrorMessage cell   `csv:"error_message"`
	RequestID    cell   `csv:"request_id"`
	FinishedAt   string `csv:"finished_at"`
}

// cell is a text cell that is written on one line and that a spreadsheet will not run as a formula.
type cell string

// MarshalCSV replaces line breaks and other control characters with spaces, and puts a ' before a value
// that starts with =, +, -, @, tab or carriage return, so that a spreadsheet shows it as text instead of
// running it as a formula (OWASP's advice on CSV injection).
func (c cell) MarshalCSV() (string, error) {
	raw := string(c)
	s := strings.ToValidUTF8(raw, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if raw != "" && strings.ContainsRune("=+-@\t\r", rune(raw[0])) {
		s = "'" + s
	}
	return s, nil
}

// OutcomeWriter appends outcome lines to w, one Write call per line, so that a crash leaves whole
// lines behind it, apart from at most a torn last one. It is not safe for concurrent use.
type OutcomeWriter struct {
	w   io.Writer
	buf bytes.Buffer
	csv *csv.Writer
}

// NewOutcomeWriter returns a writer that appends to w. It writes no header: see OutcomesHeader.
func NewOutcomeWriter(w io.Writer) *OutcomeWriter {
	ow := &OutcomeWriter{w: w}
	ow.csv = csv.NewWriter(&ow.buf)
	return ow
}

// Write appends the line for o and returns the number of bytes written.
func (ow *OutcomeWriter) Write(o Outcome) (int, error) {
	record := outcomeRecord{
		Row:          o.Row,
		AppID:        cell(o.AppID),
		DeviceID:     cell(o.DeviceID),
		Status:       cell(o.Status),
		Attempts:     o.Attempts,
		ErrorCode:    cell(o.ErrorCode),
		ErrorMessage: cell(o.ErrorMessage),
		RequestID:    cell(o.RequestID),
	}
	if o.HTTPStatus != 0 {
		record.HTTPStatus = strconv.Itoa(o.HTTPStatus)
	}
	if !o.FinishedAt.IsZero() {
		record.FinishedAt = o.FinishedAt.UTC().Format(time.RFC3339)
	}

	ow.buf.Reset()
	if err := gocsv.MarshalCSVWithoutHeaders([]outcomeRecord{record}, ow.csv); err != nil {
		return 0, fmt.Errorf("format outcome of row %d: %w", o.Row, err)
	}
	return ow.w.Write(ow.buf.Bytes())
}

// ErrBadOutcomeLine is wrapped by ScanOutcomes for a line it cannot read.
var ErrBadOutcomeLine = errors.New("unreadable outcome line")

// ScanOutcomes reads outcome lines (without the header) from r and calls fn with the row and status of
// each, in file order. It stops at the first error of fn, or at a line that is not an outcome line.
func ScanOutcomes(r io.Reader, fn func(row int, status Status) error) error {
	reader := csv.NewReader(bufio.NewReader(r))
	reader.FieldsPerRecord = strings.Count(OutcomesHeader, ",") + 1
	reader.ReuseRecord = true
	for {
		record, err := reader.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadOutcomeLine, err)
		}
		line, _ := reader.FieldPos(0)
		row, err := strconv.Atoi(record[0])
		if err != nil || row < 1 {
			return fmt.Errorf("%w: line %d: row %q is not a row number", ErrBadOutcomeLine, line, record[0])
		}
		status, err := ParseStatus(record[3])
		if err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrBadOutcomeLine, line, err)
		}
		if err := fn(row, status); err != nil {
			return err
		}
	}
}
