package reclaim

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
)

// Row is one data record of the input file.
type Row struct {
	// Index is the 1-based number of the data record. The header and skipped blank records are not
	// counted, so Index is the same in every read of the same file.
	Index int
	// Line is the 1-based physical line of the file where the record starts.
	Line int
	// AppID and DeviceID are lower-case GUIDs without braces when the cell is a valid GUID. Otherwise
	// they are the cell as found, which may be empty, made fit for a report. Control characters (NUL,
	// tab and line breaks among them) and Unicode line separators become spaces, and invalid UTF-8
	// becomes U+FFFD. A cell of more than 100 characters is cut to 100 and ends with "…".
	AppID, DeviceID string
	// Notify is the row's notify value, or the default given to OpenInput when the file has no notify
	// column or the cell is empty.
	Notify bool
	// Invalid is empty when the row can be sent. Otherwise it is a one-line reason that a person can
	// act on, in valid UTF-8 without control characters: it quotes cells with Go escapes such as \x00.
	Invalid string
}

// InputError is an input file that cannot be used at all. OpenInput and ScanInput return it before a
// run sends anything. Next returns it during a run too, when the file changes during the run.
type InputError struct {
	Path    string
	Line    int    // 1-based line of the problem, or 0 when the problem is not about one line
	Problem string // description of what is wrong, naming the values involved
	Fix     string // action that the user can take to make the file usable
	Err     error  // underlying error, or nil
}

// Error returns "path[:line]: problem; fix".
func (e *InputError) Error() string {
	where := e.Path
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	return where + ": " + e.Problem + "; " + e.Fix
}

func (e *InputError) Unwrap() error { return e.Err }

// InputColumn is a header cell that OpenInput chose.
type InputColumn struct {
	Number int    // 1-based position in the header, or 0 when the file has no such column
	Name   string // the header cell as written in the file
}

// InputColumns are the header cells chosen for the app id, the device id and the optional notify value.
type InputColumns struct {
	AppID, DeviceID, Notify InputColumn
}

// InputFormat describes how OpenInput decoded the file.
type InputFormat struct {
	Encoding  string // "UTF-8", "UTF-8 with BOM", "UTF-16LE" or "UTF-16BE"
	Delimiter rune
	SepLine   bool // the delimiter comes from an Excel "sep=" first line, not from detection
}

// InputSummary is the size, hash and row count that a checkpoint stores to recognise an input file.
type InputSummary struct {
	Size    int64  // bytes read
	SHA256  string // lower-case hex SHA-256 of the raw bytes
	Rows    int    // data rows, valid and invalid: the last Row.Index
	Invalid int    // rows with a non-empty Row.Invalid
}

// Header cells are compared after normalizeHeader.
var (
	appIDHeaders    = []string{"appid", "mobileappid", "applicationid"}
	deviceIDHeaders = []string{"deviceid", "manageddeviceid", "intunedeviceid"}
	notifyHeaders   = []string{"notify", "notifymanageddevices"}
)

// Input is a reader of the rows of an input file, one at a time. Its memory does not grow with the
// number of rows. An Input is not safe for concurrent use, except for Offset and Size.
type Input struct {
	path          string
	file          *os.File    // nil in ScanInput, which closes the file itself
	opened        fs.FileInfo // information of the file that OpenInput opened; nil in ScanInput
	size          int64
	raw           *countingReader
	lines         *lineTracker // the CSV text as encoding/csv reads it, with the checks that need quote state
	records       *csv.Reader
	lineOffset    int // lines of the file before the CSV stream: a #TYPE line, a sep= line and blank lines
	headerFields  int // cells in the header
	fieldCount    int // cells in the header up to its last cell that is not blank: the named columns
	columns       InputColumns
	format        InputFormat
	defaultNotify bool
	index         int
	err           error // io.EOF or the *InputError that ended reading, which every later Next returns
}

// OpenInput opens the CSV file at path and reads its header. It returns an *InputError when the file
// is missing, unreadable, empty or has no usable header. defaultNotify is the Notify value of rows
// without a notify cell.
//
// While Next reads the file, it checks every 64 KiB that path still names a file of the size that the
// opened file had, and returns an *InputError when it does not. That notices a file renamed over the
// path or cut short or extended in place before the read reaches the end. A replacement of the same
// size is left to the check that a run makes before it marks the job complete.
func OpenInput(path string, defaultNotify bool) (*Input, error) {
	file, info, err := openInputFile(path)
	if err != nil {
		return nil, err
	}
	raw := newCountingReader(file)
	raw.watchPath(path, info)
	in, err := newInput(path, raw, defaultNotify)
	if err != nil {
		file.Close()
		return nil, err
	}
	in.file = file
	in.opened = info
	in.size = info.Size()
	return in, nil
}

// ScanInput reads the whole file at path once and returns its size, SHA-256 and number of rows. It
// reads through the same code as OpenInput, so the row count is the last Row.Index that Next returns,
// and it returns the same *InputError that OpenInput or Next would.
func ScanInput(path string) (InputSummary, error) {
	return scanInput(path, nil)
}

// scanInput is ScanInput that also passes every row to visit, unless visit is nil.
func scanInput(path string, visit func(Row)) (InputSummary, error) {
	file, _, err := openInputFile(path)
	if err != nil {
		return InputSummary{}, err
	}
	defer file.Close()

	in, err := newInput(path, newCountingReader(file), false)
	if err != nil {
		return InputSummary{}, err
	}

	var summary InputSummary
	for {
		row, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return InputSummary{}, err
		}
		summary.Rows++
		if row.Invalid != "" {
			summary.Invalid++
		}
		if visit != nil {
			visit(row)
		}
	}
	summary.Size = in.Offset()
	summary.SHA256 = in.SHA256()
	return summary, nil
}

// Next returns the next data row. A row with a problem of its own is returned with Invalid set. Next
// returns io.EOF after the last row, and an *InputError when the rest of the file cannot be read. After
// either, every later call returns the same error.
func (in *Input) Next() (Row, error) {
	if in.err != nil {
		return Row{}, in.err
	}
	for {
		record, err := in.readRecord()
		if err != nil {
			return in.endOrInvalidRow(err, record)
		}

		// Excel writes ";;;" for an empty row, so a record of empty cells is skipped like a blank line.
		if isBlankRecord(record) {
			continue
		}
		if fatal := in.checkSwallowedRows(record); fatal != nil {
			in.err = fatal
			return Row{}, fatal
		}
		return in.makeRow(record), nil
	}
}

// readRecord reads the next record from the CSV reader. The readers below it end the text just after
// the byte where a check failed, so the record that reaches that byte is cut short. readRecord returns
// the check's *InputError in place of that record or of its quote error.
func (in *Input) readRecord() ([]string, error) {
	record, err := in.records.Read()
	if in.lines.err != nil && in.records.InputOffset() == in.lines.delivered {
		return nil, in.lines.err
	}
	return record, err
}

// endOrInvalidRow handles an error from the CSV reader, which is the end of the file, a quote error,
// an *InputError from the checks below it or a read error. Only a quote error confined to one line
// yields a row.
func (in *Input) endOrInvalidRow(err error, record []string) (Row, error) {
	if err == io.EOF {
		// The CSV reader stops at the end of the text, so this normally reads nothing. It makes sure that
		// Offset and SHA256 cover every byte of the file whatever the decoders left unread.
		if _, err := io.Copy(io.Discard, in.raw); err != nil {
			in.err = readFailed(in.path, err)
			return Row{}, in.err
		}
		in.err = io.EOF
		return Row{}, io.EOF
	}

	// With FieldsPerRecord < 0 the CSV reader reports only quote errors as a ParseError.
	var parseErr *csv.ParseError
	if errors.As(err, &parseErr) {
		if fatal := in.checkQuoteError(parseErr); fatal != nil {
			in.err = fatal
			return Row{}, fatal
		}
		return in.quoteErrorRow(parseErr, record), nil
	}

	in.err = in.textError(err)
	return Row{}, in.err
}

// textError returns err when it is an *InputError from a check below the CSV reader, and otherwise
// the *InputError for a failed read.
func (in *Input) textError(err error) *InputError {
	var inputErr *InputError
	if errors.As(err, &inputErr) {
		return inputErr
	}
	return readFailed(in.path, err)
}

// Offset returns the number of bytes of the file read so far. It runs ahead of the rows returned by
// the read buffers, up to about 150 KiB, and equals the size of the file once Next has returned
// io.EOF. It is safe to call concurrently with Next.
func (in *Input) Offset() int64 { return in.raw.n.Load() }

// SHA256 returns the lower-case hex SHA-256 of the bytes of the file read so far. After Next has
// returned io.EOF it covers the whole file, so it equals the SHA256 of ScanInput exactly when the
// file has the same content as when ScanInput read it. Call it from the goroutine that calls Next.
func (in *Input) SHA256() string { return hex.EncodeToString(in.raw.hash.Sum(nil)) }

// Size returns the size of the file when it was opened.
func (in *Input) Size() int64 { return in.size }

// Columns returns the header cells chosen for the app id, the device id and the notify value.
func (in *Input) Columns() InputColumns { return in.columns }

// Format returns the encoding and delimiter that OpenInput found.
func (in *Input) Format() InputFormat { return in.format }

// Close closes the file.
func (in *Input) Close() error {
	if in.file == nil {
		return nil
	}
	return in.file.Close()
}

// checkFileAtPath reads the file at the input's path once more and returns an *InputError unless it
// has size bytes with the SHA-256 sha256Hex. The stream hashes the file it opened, so only a read by
// path notices a file of the same size renamed over the path, or an edit to a part that the stream had
// already read. A file with that content in place of the opened one passes, because a job is tied to
// the content.
func (in *Input) checkFileAtPath(size int64, sha256Hex string) *InputError {
	const problem = "changed during the run, so the job is not marked complete"
	file, info, err := openInputFile(in.path)
	if err != nil {
		var inputErr *InputError
		if errors.As(err, &inputErr) {
			return changedError(in.path, problem, "it cannot be opened any more: "+inputErr.Problem)
		}
		return changedError(in.path, problem, "it cannot be opened any more: "+err.Error())
	}
	defer file.Close()

	// os.SameFile compares device and inode where the system has them. Its result only chooses the
	// message, because the content decides.
	replaced := in.opened != nil && !os.SameFile(in.opened, info)
	if info.Size() != size {
		return changedError(in.path, problem, sizeChange(size, info.Size(), replaced))
	}
	read, sum, err := digest(file)
	if err != nil {
		return readFailed(in.path, err)
	}
	if read != size || sum != sha256Hex {
		if replaced {
			return changedError(in.path, problem, "the path now names another file, with other content")
		}
		return changedError(in.path, problem, "its content changed: the SHA-256 differs")
	}
	return nil
}

// fileDigest returns the size and the lower-case hex SHA-256 of the file at path.
func fileDigest(path string) (int64, string, error) {
	file, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer file.Close()
	return digest(file)
}

// digest returns the number of bytes r yields and their lower-case hex SHA-256.
func digest(r io.Reader) (int64, string, error) {
	hash := sha256.New()
	size, err := io.Copy(hash, r)
	if err != nil {
		return 0, "", err
	}
	return size, hex.EncodeToString(hash.Sum(nil)), nil
}

// openInputFile opens path for reading and returns its file information. It returns an *InputError when the path is
// missing or unreadable, or when it is not a regular file after following symbolic links. A run reads
// the file twice, which a pipe such as the one of --input <(command) cannot do, and opening a named
// pipe would wait for a writer.
func openInputFile(path string) (*os.File, fs.FileInfo, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, openFailed(path, err)
	}
	if problem := checkRegularFile(path, info); problem != nil {
		return nil, nil, problem
	}

	file, err := os.Open(path)
	if err != nil {
		return nil, nil, openFailed(path, err)
	}

	// The path may name another file by now, so the file that was opened is checked again.
	// NOTE: a named pipe put in place between Stat and Open still makes Open wait for a writer.
	info, err = file.Stat()
	if err != nil {
		file.Close()
		return nil, nil, readFailed(path, err)
	}
	if problem := checkRegularFile(path, info); problem != nil {
		file.Close()
		return nil, nil, problem
	}
	return file, info, nil
}

func openFailed(path string, err error) *InputError {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &InputError{Path: path, Problem: "file not found",
			Fix: "check the path, which is relative to the current directory unless it starts with /", Err: err}
	case errors.Is(err, fs.ErrPermission):
		return &InputError{Path: path, Problem: "permission denied",
			Fix: "make the file readable by the user that runs reclaim", Err: err}
	}
	return &InputError{Path: path, Problem: "cannot open the file: " + err.Error(),
		Fix: "check that the path names a readable file", Err: err}
}

// checkRegularFile returns an *InputError unless info describes a regular file.
func checkRegularFile(path string, info fs.FileInfo) *InputError {
	switch {
	case info.IsDir():
		return &InputError{Path: path, Problem: "is a directory, not a file", Fix: "give the path of the CSV file"}
	case !info.Mode().IsRegular():
		return &InputError{Path: path, Problem: "is not a regular file (a pipe, socket or device)",
			Fix: "save the rows to a file first"}
	}
	return nil
}

// changedError returns the *InputError for an input file that changed during a run, which stops the
// run. The rows sent before were read from the original file, so their outcomes stand.
func changedError(path, problem, change string) *InputError {
	return &InputError{Path: path, Problem: problem + ": " + change,
		Fix: "put the original file back and run the same command to resume the job, " +
			"or run with --restart to start a new job with the file as it is now, which sends every row again"}
}

// sizeChange describes a file at a path that had before bytes and now has after. replaced is true
// when the path names another file now.
func sizeChange(before, after int64, replaced bool) string {
	if replaced {
		return fmt.Sprintf("the path now names another file, of %d bytes instead of %d", after, before)
	}
	return fmt.Sprintf("its size changed from %d to %d bytes", before, after)
}

func readFailed(path string, err error) *InputError {
	return &InputError{Path: path, Problem: "read failed: " + err.Error(),
		Fix: "check that the file is complete and readable, for example by copying it to a local disk, then run again",
		Err: err}
}

// newInput decodes raw and reads up to the end of the header. path is used only in messages.
func newInput(path string, raw *countingReader, defaultNotify bool) (*Input, error) {
	in := &Input{path: path, raw: raw, defaultNotify: defaultNotify}

	decoded, err := in.decode(raw)
	if err != nil {
		return nil, err
	}
	// The line limit sits below every buffer that collects a whole line, so that a file without line
	// feeds cannot fill memory.
	text := bufio.NewReaderSize(&lineLimiter{r: decoded, path: path, line: 1}, 64<<10)
	headerLine, err := in.findHeaderLine(text)
	if err != nil {
		return nil, err
	}

	// The CSV reader starts at the header line, so its line numbers are off by lineOffset. The header
	// line, already read, is put back in front of the rest of the text.
	in.lines = newLineTracker(io.MultiReader(bytes.NewReader(headerLine), text), path, in.format.Delimiter, in.lineOffset)
	in.records = csv.NewReader(in.lines)
	in.records.Comma = in.format.Delimiter
	in.records.FieldsPerRecord = -1 // a wrong field count makes a row invalid, which makeRow decides
	in.records.ReuseRecord = true

	if err := in.readHeader(); err != nil {
		return nil, err
	}
	return in, nil
}
