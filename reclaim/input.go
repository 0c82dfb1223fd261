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
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	textunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Row is one data record of the input file.
type Row struct {
	// Index is the 1-based number of the data record. The header and skipped blank records are not
	// counted, so Index is the same in every read of the same file.
	Index int
	// Line is the 1-based physical line of the file where the record starts.
	Line int
	// AppID and DeviceID are lower-case GUIDs without braces when the cell is a valid GUID. Otherwise
	// they are the cell as found, which may be empty.
	AppID, DeviceID string
	// Notify is the row's notify value, or the default given to OpenInput when the file has no notify
	// column or the cell is empty.
	Notify bool
	// Invalid is empty when the row can be sent. Otherwise it is a one-line reason that a person can
	// act on, in valid UTF-8.
	Invalid string
}

// InputError is an input file that cannot be used at all. The run stops before sending anything.
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
	file          *os.File // nil in ScanInput, which closes the file itself
	size          int64
	raw           *countingReader
	lines         *lineTracker
	records       *csv.Reader
	lineOffset    int // lines of the file before the CSV stream: a sep= line and blank lines
	fieldCount    int // fields in the header
	columns       InputColumns
	format        InputFormat
	defaultNotify bool
	index         int
	err           error // io.EOF or the *InputError that ended reading, which every later Next returns
}

// OpenInput opens the CSV file at path and reads its header. It returns an *InputError when the file
// is missing, unreadable, empty or has no usable header. defaultNotify is the Notify value of rows
// without a notify cell.
func OpenInput(path string, defaultNotify bool) (*Input, error) {
	file, size, err := openInputFile(path)
	if err != nil {
		return nil, err
	}
	in, err := newInput(path, &countingReader{r: file}, defaultNotify)
	if err != nil {
		file.Close()
		return nil, err
	}
	in.file = file
	in.size = size
	return in, nil
}

// ScanInput reads the whole file at path once and returns its size, SHA-256 and number of rows. It
// reads through the same code as OpenInput, so the row count is the last Row.Index that Next returns,
// and it returns the same *InputError that OpenInput or Next would.
func ScanInput(path string) (InputSummary, error) {
	file, _, err := openInputFile(path)
	if err != nil {
		return InputSummary{}, err
	}
	defer file.Close()

	hash := sha256.New()
	raw := &countingReader{r: io.TeeReader(file, hash)}
	in, err := newInput(path, raw, false)
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
	}

	// The CSV reader stops at the end of the file, so this normally hashes nothing. It makes sure that
	// the hash covers every byte whatever the decoders left unread.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return InputSummary{}, readFailed(path, err)
	}
	summary.Size = raw.n.Load()
	summary.SHA256 = hex.EncodeToString(hash.Sum(nil))
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
		record, err := in.records.Read()
		if err != nil {
			return in.endOrInvalidRow(err, record)
		}

		// Excel writes ";;;" for an empty row, so a record of empty cells is skipped like a blank line.
		if isBlankRecord(record) {
			continue
		}
		return in.makeRow(record), nil
	}
}

// endOrInvalidRow handles an error from the CSV reader, which is the end of the file, a quote error
// or a read error. Only a quote error confined to one line yields a row.
func (in *Input) endOrInvalidRow(err error, record []string) (Row, error) {
	if err == io.EOF {
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

	in.err = readFailed(in.path, err)
	return Row{}, in.err
}

// Offset returns the number of bytes of the file read so far. It runs ahead of the rows returned by
// the read buffers, up to about 140 KiB, and equals the size of the file once Next has returned
// io.EOF. It is safe to call concurrently with Next.
func (in *Input) Offset() int64 { return in.raw.n.Load() }

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

// openInputFile opens path for reading and returns its size. It returns an *InputError when the path is
// missing, unreadable or a directory.
func openInputFile(path string) (*os.File, int64, error) {
	file, err := os.Open(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, 0, &InputError{Path: path, Problem: "file not found",
				Fix: "check the path, which is relative to the current directory unless it starts with /", Err: err}
		case errors.Is(err, fs.ErrPermission):
			return nil, 0, &InputError{Path: path, Problem: "permission denied",
				Fix: "make the file readable by the user that runs reclaim", Err: err}
		}
		return nil, 0, &InputError{Path: path, Problem: "cannot open the file: " + err.Error(),
			Fix: "check that the path names a readable file", Err: err}
	}

	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, 0, readFailed(path, err)
	}
	if info.IsDir() {
		file.Close()
		return nil, 0, &InputError{Path: path, Problem: "is a directory, not a file",
			Fix: "give the path of the CSV file"}
	}
	return file, info.Size(), nil
}

func readFailed(path string, err error) *InputError {
	return &InputError{Path: path, Problem: "read failed: " + err.Error(),
		Fix: "check that the file is complete and readable, for example by copying it to a local disk, then run again",
		Err: err}
}

// newInput decodes raw and reads up to the end of the header. path is used only in messages.
func newInput(path string, raw *countingReader, defaultNotify bool) (*Input, error) {
	in := &Input{path: path, raw: raw, defaultNotify: defaultNotify}

	text, err := in.decode(raw)
	if err != nil {
		return nil, err
	}
	headerLine, err := in.findHeaderLine(text)
	if err != nil {
		return nil, err
	}

	// The CSV reader starts at the header line, so its line numbers are off by lineOffset. The header
	// line, already read, is put back in front of the rest of the text.
	in.lines = &lineTracker{r: io.MultiReader(bytes.NewReader(headerLine), text)}
	in.records = csv.NewReader(in.lines)
	in.records.Comma = in.format.Delimiter
	in.records.FieldsPerRecord = -1 // a wrong field count makes a row invalid, which makeRow decides
	in.records.ReuseRecord = true

	if err := in.readHeader(); err != nil {
		return nil, err
	}
	return in, nil
}

// decode returns the text of raw as UTF-8. It strips a UTF-8 byte-order mark and decodes UTF-16 that
// starts with a byte-order mark, which is what Excel saves as "Unicode Text".
func (in *Input) decode(raw io.Reader) (*bufio.Reader, error) {
	buffered := bufio.NewReaderSize(raw, 64<<10)
	start, err := buffered.Peek(3)
	if err != nil && err != io.EOF {
		return nil, readFailed(in.path, err)
	}

	switch {
	case len(start) == 0:
		return nil, &InputError{Path: in.path, Problem: "the file is empty",
			Fix: "export the rows again, with a header such as appId,deviceId"}
	case bytes.HasPrefix(start, []byte{0xEF, 0xBB, 0xBF}):
		in.format.Encoding = "UTF-8 with BOM"
		buffered.Discard(3)
		return buffered, nil
	case bytes.HasPrefix(start, []byte{0xFF, 0xFE}):
		in.format.Encoding = "UTF-16LE"
		return decodeUTF16(buffered, textunicode.LittleEndian), nil
	case bytes.HasPrefix(start, []byte{0xFE, 0xFF}):
		in.format.Encoding = "UTF-16BE"
		return decodeUTF16(buffered, textunicode.BigEndian), nil
	}
	in.format.Encoding = "UTF-8"
	return buffered, nil
}

func decodeUTF16(r io.Reader, order textunicode.Endianness) *bufio.Reader {
	// The decoder consumes the byte-order mark, and it writes U+FFFD for bytes that are not UTF-16.
	decoder := textunicode.UTF16(order, textunicode.ExpectBOM).NewDecoder()
	return bufio.NewReaderSize(transform.NewReader(r, decoder), 64<<10)
}

// findHeaderLine reads the optional Excel sep= line and the blank lines before the header, and returns
// the first line with content. It detects the delimiter from that line unless a sep= line named it.
func (in *Input) findHeaderLine(text *bufio.Reader) ([]byte, error) {
	for first := true; ; first = false {
		line, err := text.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, readFailed(in.path, err)
		}
		if len(line) == 0 {
			return nil, &InputError{Path: in.path, Problem: "no header row: the file contains only blank lines",
				Fix: "add a header row such as appId,deviceId above the data"}
		}

		if first && hasSepPrefix(line) {
			delimiter, ok := parseSepLine(line)
			if !ok {
				return nil, &InputError{Path: in.path, Line: 1,
					Problem: fmt.Sprintf("the first line %s starts like an Excel sep= line but does not name one delimiter", quoteValue(string(line))),
					Fix:     "write it as sep=; (or another single delimiter character), or delete it"}
			}
			in.format.Delimiter = delimiter
			in.format.SepLine = true
			in.lineOffset++
			continue
		}
		if isBlankLine(line, in.format.Delimiter) {
			in.lineOffset++
			continue
		}

		if in.format.Delimiter == 0 {
			in.format.Delimiter = detectDelimiter(line)
		}
		if hasLoneCR(line) {
			return nil, &InputError{Path: in.path, Line: in.lineOffset + 1,
				Problem: "lines end with a carriage return alone (classic Mac OS line endings), so the file reads as one line",
				Fix:     `save the file from Excel as "CSV UTF-8", which ends lines with CR LF`}
		}
		return line, nil
	}
}

// hasSepPrefix reports whether line starts with "sep=", in any case.
func hasSepPrefix(line []byte) bool {
	return len(line) >= 4 && strings.EqualFold(string(line[:4]), "sep=")
}

// parseSepLine returns the delimiter that an Excel "sep=X" line names.
func parseSepLine(line []byte) (delimiter rune, ok bool) {
	rest := bytes.TrimSuffix(line[4:], []byte("\n"))
	rest = bytes.TrimSuffix(rest, []byte("\r"))
	delimiter, size := utf8.DecodeRune(rest)
	if size == 0 || size != len(rest) || !isValidDelimiter(delimiter) {
		return 0, false
	}
	return delimiter, true
}

// isValidDelimiter reports whether encoding/csv accepts r as Reader.Comma.
func isValidDelimiter(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
}

// isBlankLine reports whether line holds only white space and delimiters. While the delimiter is not
// known yet (delimiter 0), each of the candidates ',', ';' and tab counts as one.
func isBlankLine(line []byte, delimiter rune) bool {
	for _, r := range string(line) {
		switch {
		case unicode.IsSpace(r):
		case delimiter == 0 && (r == ',' || r == ';'):
		case r == delimiter:
		default:
			return false
		}
	}
	return true
}

// detectDelimiter returns the most frequent of ',', ';' and tab outside quotes in the header line.
// A tie goes to ',' and then to ';'.
func detectDelimiter(line []byte) rune {
	var commas, semicolons, tabs int
	quoted := false
	for _, c := range line {
		switch {
		case c == '"':
			// A doubled quote inside a quoted cell flips the state twice, so it stays quoted.
			quoted = !quoted
		case quoted:
		case c == ',':
			commas++
		case c == ';':
			semicolons++
		case c == '\t':
			tabs++
		}
	}
	switch {
	case commas >= semicolons && commas >= tabs:
		return ','
	case semicolons >= tabs:
		return ';'
	}
	return '\t'
}

// hasLoneCR reports whether line has a carriage return outside quotes that is not followed by a line
// feed. A carriage return at the very end is the last byte of the file, which encoding/csv drops.
func hasLoneCR(line []byte) bool {
	quoted := false
	for i, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\r' && !quoted && i+1 < len(line) && line[i+1] != '\n':
			return true
		}
	}
	return false
}

// readHeader reads the header record and chooses the columns.
func (in *Input) readHeader() error {
	for {
		header, err := in.records.Read()
		if err == io.EOF {
			return &InputError{Path: in.path, Problem: "no header row: the file contains only blank lines",
				Fix: "add a header row such as appId,deviceId above the data"}
		}
		var parseErr *csv.ParseError
		if errors.As(err, &parseErr) {
			if fatal := in.checkQuoteError(parseErr); fatal != nil {
				return fatal
			}
			return &InputError{Path: in.path, Line: parseErr.StartLine + in.lineOffset,
				Problem: "the header row has a stray quote",
				Fix:     `put a header cell that contains a quote in quotes and write the quote as ""`}
		}
		if err != nil {
			return readFailed(in.path, err)
		}
		if isBlankRecord(header) {
			continue
		}

		in.fieldCount = len(header)
		return in.chooseColumns(header)
	}
}

// chooseColumns finds the app id, device id and notify columns of the header.
func (in *Input) chooseColumns(header []string) error {
	var apps, devices, notifies, entraDevices []int
	for i, cell := range header {
		name := normalizeHeader(cell)
		switch {
		case slices.Contains(appIDHeaders, name):
			apps = append(apps, i)
		case slices.Contains(deviceIDHeaders, name):
			devices = append(devices, i)
		case slices.Contains(notifyHeaders, name):
			notifies = append(notifies, i)
		case isEntraDeviceHeader(name):
			entraDevices = append(entraDevices, i)
		}
	}

	if (len(apps) == 0 || len(devices) == 0) && strings.Contains(strings.Join(header, ""), "\x00") {
		return &InputError{Path: in.path,
			Problem: "the header contains NUL bytes, so the file is probably UTF-16 without a byte-order mark",
			Fix:     `save it from Excel as "CSV UTF-8"`}
	}
	switch {
	case len(apps) == 0:
		return &InputError{Path: in.path,
			Problem: "no app id column: the header has " + listCells(header),
			Fix:     "name the column of app ids appId (also accepted: mobileAppId, applicationId, app id)" + in.delimiterHint(header)}
	case len(apps) > 1:
		return in.duplicateColumns("app id", header, apps)
	case len(devices) == 0 && len(entraDevices) > 0:
		return &InputError{Path: in.path,
			Problem: fmt.Sprintf("no device id column: the header has %s, which is the Entra device id, not the Intune managed device id",
				quoteValue(header[entraDevices[0]])),
			Fix: `export "Device ID" from the Intune admin center (Devices > All devices > Export) and use that column`}
	case len(devices) == 0:
		return &InputError{Path: in.path,
			Problem: "no device id column: the header has " + listCells(header),
			Fix: "name the column of Intune managed device ids deviceId (also accepted: managedDeviceId, device id, intune device id)" +
				in.delimiterHint(header)}
	case len(devices) > 1:
		return in.duplicateColumns("device id", header, devices)
	case len(notifies) > 1:
		return in.duplicateColumns("notify", header, notifies)
	}

	in.columns.AppID = InputColumn{Number: apps[0] + 1, Name: header[apps[0]]}
	in.columns.DeviceID = InputColumn{Number: devices[0] + 1, Name: header[devices[0]]}
	if len(notifies) == 1 {
		in.columns.Notify = InputColumn{Number: notifies[0] + 1, Name: header[notifies[0]]}
	}
	return nil
}

func (in *Input) duplicateColumns(what string, header []string, columns []int) error {
	first, second := columns[0], columns[1]
	return &InputError{Path: in.path,
		Problem: fmt.Sprintf("two %s columns: %s (column %d) and %s (column %d)",
			what, quoteValue(header[first]), first+1, quoteValue(header[second]), second+1),
		Fix: "delete or rename one of them"}
}

// delimiterHint returns advice for a header that was read as a single cell, which usually means that
// the file uses a delimiter other than the one detected.
func (in *Input) delimiterHint(header []string) string {
	if len(header) != 1 {
		return ""
	}
	return fmt.Sprintf(`; the header was read as one cell with the delimiter %s, so if the file uses another delimiter, add a first line "sep=" followed by it`,
		strconv.QuoteRune(in.format.Delimiter))
}

// normalizeHeader lower-cases a header cell and drops spaces, '_', '-' and byte-order marks.
func normalizeHeader(cell string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '_' || r == '-' || r == '\uFEFF' {
			return -1
		}
		return r
	}, cell))
}

// isEntraDeviceHeader reports whether a normalised header cell names the Entra (Azure AD) device id,
// such as "Azure AD Device ID", "Microsoft Entra Device ID" or "azureADDeviceId".
func isEntraDeviceHeader(name string) bool {
	if !strings.Contains(name, "deviceid") {
		return false
	}
	return strings.Contains(name, "azure") || strings.Contains(name, "aad") || strings.Contains(name, "entra")
}

// makeRow numbers a record that parsed and checks its cells.
func (in *Input) makeRow(record []string) Row {
	in.index++
	line, _ := in.records.FieldPos(0)
	row := Row{Index: in.index, Line: line + in.lineOffset, Notify: in.defaultNotify}

	// A wrong field count shifts the columns, so the other cells cannot be trusted.
	if len(record) != in.fieldCount {
		row.AppID, _ = checkID("app id", cellAt(record, in.columns.AppID.Number))
		row.DeviceID, _ = checkID("device id", cellAt(record, in.columns.DeviceID.Number))
		fields := "fields"
		if len(record) == 1 {
			fields = "field"
		}
		row.Invalid = fmt.Sprintf("has %d %s, but the header has %d", len(record), fields, in.fieldCount)
		if len(record) > in.fieldCount {
			row.Invalid += fmt.Sprintf("; put a value that contains %s in quotes", strconv.QuoteRune(in.format.Delimiter))
		}
	} else {
		var problems []string
		var problem string
		row.AppID, problem = checkID("app id", record[in.columns.AppID.Number-1])
		if problem != "" {
			problems = append(problems, problem)
		}
		row.DeviceID, problem = checkID("device id", record[in.columns.DeviceID.Number-1])
		if problem != "" {
			problems = append(problems, problem)
		}
		if n := in.columns.Notify.Number; n > 0 && strings.TrimSpace(record[n-1]) != "" {
			notify, ok := parseNotify(record[n-1])
			if ok {
				row.Notify = notify
			} else {
				problems = append(problems, fmt.Sprintf("notify value %s is not one of true, false, yes, no, 1, 0", quoteValue(record[n-1])))
			}
		}
		row.Invalid = strings.Join(problems, "; ")
	}

	// A quote left open can pull the following lines into one cell, so the reason names the lines read.
	// NOTE: when a later quote closes that cell properly and the ids are valid, the row is valid and the
	// lines in between are lost without a message.
	if row.Invalid != "" {
		if last := row.Line + countNewlines(record); last > row.Line {
			row.Invalid += fmt.Sprintf(" (the record spans lines %d-%d, so a quote may be unbalanced)", row.Line, last)
		}
	}
	return row
}

// quoteErrorRow makes the invalid row for a record with a quote error confined to its line.
func (in *Input) quoteErrorRow(parseErr *csv.ParseError, record []string) Row {
	in.index++
	row := Row{Index: in.index, Line: parseErr.StartLine + in.lineOffset, Notify: in.defaultNotify}

	// The record holds the cells before the quote error, which help to find the row in a report.
	row.AppID, _ = checkID("app id", cellAt(record, in.columns.AppID.Number))
	row.DeviceID, _ = checkID("device id", cellAt(record, in.columns.DeviceID.Number))

	if errors.Is(parseErr, csv.ErrBareQuote) {
		row.Invalid = `a value that does not start with a quote contains one; put the value in quotes and write the quote as ""`
	} else {
		row.Invalid = `a quote inside a quoted value is not written as "", or a closing quote is followed by more text`
	}
	return row
}

// checkQuoteError returns the *InputError for a quote error that makes the rest of the file unreliable,
// or nil when the error is confined to one line. A quoted value that is never closed reaches the end of
// the file. A quote error in a record of several lines is fatal too, because the lines after a stray
// opening quote are read into one value until a later quote, and those rows would be lost.
func (in *Input) checkQuoteError(parseErr *csv.ParseError) *InputError {
	start := parseErr.StartLine + in.lineOffset
	end := parseErr.Line + in.lineOffset
	const fix = `close the quote, or write a quote inside a quoted value as ""`

	// encoding/csv reports an unclosed quote as ErrQuote at the position just past the end of the text.
	if errors.Is(parseErr, csv.ErrQuote) && in.lines.isPastEnd(parseErr.Line, parseErr.Column) {
		return &InputError{Path: in.path, Line: start,
			Problem: fmt.Sprintf("a quoted value in the record that starts on line %d is never closed, so every later line would be read into that value", start),
			Fix:     fix}
	}
	if start != end {
		return &InputError{Path: in.path, Line: start,
			Problem: fmt.Sprintf("the record that starts on line %d runs to line %d inside a quoted value and has a stray quote on line %d, so lines %d-%d were probably read as one value", start, end, end, start, end),
			Fix:     fix}
	}
	return nil
}

// checkID returns the normalised id when cell is a GUID, and otherwise a copy of cell and the problem,
// which starts with label. The copy keeps the row from holding on to the CSV reader's memory for the
// whole record.
func checkID(label, cell string) (id, problem string) {
	if g, ok := parseGUID(cell); ok {
		return g.String(), ""
	}
	if strings.TrimSpace(cell) == "" {
		return strings.Clone(cell), label + " is empty"
	}
	return strings.Clone(cell), fmt.Sprintf("%s %s is not a GUID (8-4-4-4-12 hex digits)", label, quoteValue(cell))
}

// cellAt returns the cell in the 1-based column, or "" when the record is too short.
func cellAt(record []string, column int) string {
	if column < 1 || column > len(record) {
		return ""
	}
	return record[column-1]
}

// parseNotify parses a notify cell: true, false, yes, no, 1 or 0 in any case, with white space around.
func parseNotify(cell string) (notify, ok bool) {
	switch strings.ToLower(strings.TrimSpace(cell)) {
	case "true", "yes", "1":
		return true, true
	case "false", "no", "0":
		return false, true
	}
	return false, false
}

// isBlankRecord reports whether every cell of record is empty or white space.
func isBlankRecord(record []string) bool {
	for _, cell := range record {
		if strings.TrimSpace(cell) != "" {
			return false
		}
	}
	return true
}

// countNewlines returns the number of line breaks inside the cells of record, which is the number of
// lines the record spans after its first. encoding/csv turns CR LF into LF inside quoted cells.
func countNewlines(record []string) int {
	n := 0
	for _, cell := range record {
		n += strings.Count(cell, "\n")
	}
	return n
}

// quoteValue quotes a cell for a message as a Go string literal, so that it is valid UTF-8 on one
// line. A long cell is cut to its first 60 bytes, followed by its length.
func quoteValue(s string) string {
	const maxBytes = 60
	if len(s) <= maxBytes {
		return strconv.Quote(s)
	}
	cut := maxBytes
	for i := 0; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// listCells quotes the first cells of a header for a message.
func listCells(header []string) string {
	const maxCells = 12
	quoted := make([]string, 0, min(len(header), maxCells))
	for _, cell := range header[:min(len(header), maxCells)] {
		quoted = append(quoted, quoteValue(cell))
	}
	list := strings.Join(quoted, ", ")
	if len(header) > maxCells {
		list += fmt.Sprintf(" and %d more", len(header)-maxCells)
	}
	return list
}

// countingReader counts the bytes read through it. The count may be read from another goroutine.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// lineTracker passes the CSV text through and records where the text ends, in the line and column
// numbering of encoding/csv's ParseError. That numbering counts lines by LF and columns in 1-based
// bytes, in which CR LF is one byte and a CR that is the last byte of the text is dropped.
type lineTracker struct {
	r       io.Reader
	lines   int  // LFs seen
	lastLen int  // length of the line that ends at the last LF, the LF included
	partial int  // bytes after the last LF
	endsCR  bool // the last byte seen is CR
	eof     bool
}

func (t *lineTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	for rest := p[:n]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.partial += len(rest)
			t.endsCR = rest[len(rest)-1] == '\r'
			break
		}
		crlf := (i > 0 && rest[i-1] == '\r') || (i == 0 && t.endsCR)
		t.lines++
		t.lastLen = t.partial + i + 1
		if crlf {
			t.lastLen--
		}
		t.partial = 0
		t.endsCR = false
		rest = rest[i+1:]
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

// isPastEnd reports whether a ParseError position lies past the last byte of the text, which is where
// encoding/csv reports a quoted value that the end of the text left open.
func (t *lineTracker) isPastEnd(line, column int) bool {
	if !t.eof {
		return false
	}
	if t.partial > 0 {
		length := t.partial
		if t.endsCR {
			length--
		}
		return line == t.lines+1 && column > length
	}
	return line == t.lines && column > t.lastLen
}
