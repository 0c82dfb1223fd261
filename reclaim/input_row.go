package reclaim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// makeRow numbers a record that parsed and checks its cells.
func (in *Input) makeRow(record []string) Row {
	in.index++
	line, _ := in.records.FieldPos(0)
	row := Row{Index: in.index, Line: line + in.lineOffset, Notify: in.defaultNotify}

	// Excel and scripts can end a row with empty cells that the header does not name, as in "A,D," under
	// "appId,deviceId" or "A,D" under "appId,deviceId,". Such cells hold no value, so they do not shift
	// the columns.
	if len(record) > in.fieldCount && isBlankRecord(record[in.fieldCount:]) {
		record = record[:in.fieldCount]
	}

	// A wrong field count shifts the columns, so the other cells cannot be trusted.
	if len(record) != in.fieldCount {
		row.AppID, _ = checkID("app id", cellAt(record, in.columns.AppID.Number))
		row.DeviceID, _ = checkID("device id", cellAt(record, in.columns.DeviceID.Number))
		fields := "fields"
		if len(record) == 1 {
			fields = "field"
		}
		header := fmt.Sprintf("the header has %d", in.fieldCount)
		if in.headerFields > in.fieldCount {
			header = fmt.Sprintf("the header names %d columns (the empty cells at its end do not count)", in.fieldCount)
		}
		row.Invalid = fmt.Sprintf("has %d %s, but %s", len(record), fields, header)
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
	// Lines that look like rows of their own have already stopped the reading in checkSwallowedRows.
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

// checkSwallowedRows returns an *InputError when a cell of record spans several lines and one of those
// lines has a GUID at the position of the app id or the device id column. Split at the delimiter, the
// first line of the cell starts at the cell's own column, and each later line starts at column 1. A GUID
// at an id position means that a quote left open has probably read a row of its own into the cell.
// Without the error, the record could pair ids of different rows, which sends a pair that is not in the
// file, and the rows up to the quote that closes the cell would be lost without a message.
func (in *Input) checkSwallowedRows(record []string) *InputError {
	for i, cell := range record {
		if strings.IndexByte(cell, '\n') < 0 {
			continue
		}
		start, _ := in.records.FieldPos(i)
		start += in.lineOffset

		number, column := start, i+1
		for line := range strings.SplitSeq(cell, "\n") {
			app := in.guidColumn(line, column, in.columns.AppID.Number)
			device := in.guidColumn(line, column, in.columns.DeviceID.Number)
			if app > 0 || device > 0 {
				return in.swallowedRowsError(start, start+strings.Count(cell, "\n"), number, number == start, app, device)
			}
			number++
			column = 1
		}
	}
	return nil
}

// guidColumn returns column when line, split at the delimiter with its first piece in the 1-based
// column first, has a GUID in that column, and 0 otherwise.
func (in *Input) guidColumn(line string, first, column int) int {
	if column < first {
		return 0
	}
	delimiter := string(in.format.Delimiter)
	piece := line
	for range column - first {
		_, rest, found := strings.Cut(piece, delimiter)
		if !found {
			return 0
		}
		piece = rest
	}
	piece, _, _ = strings.Cut(piece, delimiter)
	if _, ok := parseGUID(piece); !ok {
		return 0
	}
	return column
}

// swallowedRowsError returns the *InputError of checkSwallowedRows for a quoted value on lines
// start-end whose line number has a GUID in the app id column app or the device id column device,
// each 0 when it has none. firstLine is true when number is the line where the value starts.
func (in *Input) swallowedRowsError(start, end, number int, firstLine bool, app, device int) *InputError {
	where := fmt.Sprintf("line %d inside it", number)
	if firstLine {
		where = fmt.Sprintf("the part of line %d after the opening quote", number)
	}
	var found string
	switch {
	case app > 0 && device > 0:
		found = fmt.Sprintf("GUIDs at the positions of the app id and device id columns (%d and %d)", app, device)
	case app > 0:
		found = fmt.Sprintf("a GUID at the position of the app id column (%d)", app)
	default:
		found = fmt.Sprintf("a GUID at the position of the device id column (%d)", device)
	}
	return &InputError{Path: in.path, Line: start,
		Problem: fmt.Sprintf("a quoted value starts on line %d and ends on line %d, and %s has %s, so a stray quote has "+
			"probably merged lines %d-%d into one record, whose ids may come from different rows",
			start, end, where, found, start, end),
		Fix: fmt.Sprintf(`close the quote on line %d, and write a quote that is part of a value as "" inside a quoted value; `+
			"if the value really contains such ids, as a note may, remove them from it, because reclaim cannot tell them from a row of its own",
			start)}
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

// checkID returns the normalised id when cell is a GUID, and otherwise the cell made fit for a report
// by reportCell and the problem, which starts with label.
func checkID(label, cell string) (id, problem string) {
	if g, ok := parseGUID(cell); ok {
		return g.String(), ""
	}
	if strings.TrimSpace(cell) == "" {
		return reportCell(cell), label + " is empty"
	}
	return reportCell(cell), fmt.Sprintf("%s %s is not a GUID (8-4-4-4-12 hex digits)", label, quoteValue(cell))
}

// maxReportCellChars is the number of characters of a cell that an invalid row keeps.
const maxReportCellChars = 100

// reportCell returns a copy of cell that fits on one line of a report. Each control character, NUL,
// tab and line break included, and each Unicode line or paragraph separator becomes a space, and each
// byte that is not UTF-8 becomes U+FFFD. A cell of more than maxReportCellChars characters is cut to
// that many, followed by "…". The copy keeps the row from holding on to the CSV reader's memory for
// the whole record.
func reportCell(cell string) string {
	var b strings.Builder
	chars := 0
	for _, r := range cell {
		if chars == maxReportCellChars {
			b.WriteString("…")
			break
		}
		chars++
		// Ranging over a string yields utf8.RuneError for each byte that is not UTF-8.
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
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
