package reclaim

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	textunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// decode returns the text of raw as UTF-8. It strips a UTF-8 byte-order mark and decodes UTF-16 that
// starts with a byte-order mark, which is what Excel saves as "Unicode Text". It returns an
// *InputError for an empty file and for an Excel workbook.
func (in *Input) decode(raw io.Reader) (io.Reader, error) {
	// The buffer only needs to hold the bytes that Peek looks at, because the text is buffered again
	// above the decoder.
	buffered := bufio.NewReaderSize(raw, 4<<10)
	start, err := buffered.Peek(4)
	if err != nil && err != io.EOF {
		return nil, readFailed(in.path, err)
	}

	switch {
	case len(start) == 0:
		return nil, &InputError{Path: in.path, Problem: "the file is empty",
			Fix: "export the rows again, with a header such as appId,deviceId"}
	case isZIPSignature(start):
		// An .xlsx workbook, an .ods sheet and a report that Intune offers for download are ZIP archives.
		return nil, &InputError{Path: in.path,
			Problem: "is a ZIP archive (an Excel workbook, an OpenDocument sheet, or a downloaded report that needs unzipping), not a CSV file",
			Fix:     "unzip it or in Excel use File > Save As > CSV UTF-8"}
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

// isZIPSignature reports whether start, the first 4 bytes of a file, is the signature of a ZIP local
// file header, of an empty archive's end record, or of a spanned archive.
func isZIPSignature(start []byte) bool {
	for _, signature := range []string{"PK\x03\x04", "PK\x05\x06", "PK\x07\x08"} {
		if string(start) == signature {
			return true
		}
	}
	return false
}

func decodeUTF16(r io.Reader, order textunicode.Endianness) io.Reader {
	// The decoder consumes the byte-order mark, and it writes U+FFFD for bytes that are not UTF-16.
	decoder := textunicode.UTF16(order, textunicode.ExpectBOM).NewDecoder()
	return transform.NewReader(r, decoder)
}

// findHeaderLine reads the lines before the header and returns the first line with content. Those
// lines are an optional PowerShell "#TYPE" first line, an optional Excel "sep=" line after it or in
// its place, and blank lines. It detects the delimiter from the header line unless a sep= line named it.
func (in *Input) findHeaderLine(text *bufio.Reader) ([]byte, error) {
	typeLine := false
	for number := 1; ; number++ {
		line, err := text.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, in.textError(err)
		}
		if len(line) == 0 {
			return nil, &InputError{Path: in.path, Problem: "no header row: the file contains only blank lines",
				Fix: "add a header row such as appId,deviceId above the data"}
		}

		// A file whose lines end with CR alone reads as one line, which must not be mistaken for a
		// #TYPE or sep= line that has more text after it.
		isTypeLine := number == 1 && bytes.HasPrefix(line, []byte("#TYPE "))
		isSepLine := (number == 1 || number == 2 && typeLine) && hasSepPrefix(line)
		if cr := loneCRIndex(line); (isTypeLine || isSepLine) && cr >= 0 {
			return nil, loneCRError(in.path, number, bytes.HasPrefix(line[cr:], []byte("\r\r\n")))
		}

		switch {
		case isTypeLine:
			// PowerShell 5 Export-Csv writes "#TYPE" and the .NET type of the objects first, unless it
			// is given -NoTypeInformation.
			typeLine = true
			in.lineOffset++
			continue
		case isSepLine:
			delimiter, ok := parseSepLine(line)
			if !ok {
				position := "the first line"
				if typeLine {
					position = "the line after the #TYPE line"
				}
				return nil, &InputError{Path: in.path, Line: number,
					Problem: fmt.Sprintf("%s %s starts like an Excel sep= line but does not name one delimiter", position, quoteValue(string(line))),
					Fix:     "write it as sep=; (or another single delimiter character), or delete it"}
			}
			in.format.Delimiter = delimiter
			in.format.SepLine = true
			in.lineOffset++
			continue
		case isBlankLine(line, in.format.Delimiter):
			in.lineOffset++
			continue
		}

		// This check comes before any check of line endings, because CR LF in UTF-16 is the bytes
		// CR NUL LF NUL, in which the CR looks like one that ends a line alone.
		if looksLikeUTF16(line) {
			return nil, utf16WithoutBOMError(in.path)
		}
		if in.format.Delimiter == 0 {
			in.format.Delimiter = detectDelimiter(line)
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

// loneCRIndex returns the index of the first carriage return in line that is followed by a byte other
// than a line feed, or -1. A carriage return at the very end is the last byte of the file, which
// encoding/csv drops.
func loneCRIndex(line []byte) int {
	for i, c := range line {
		if c == '\r' && i+1 < len(line) && line[i+1] != '\n' {
			return i
		}
	}
	return -1
}

// looksLikeUTF16 reports whether NUL bytes make up a quarter or more of line. In UTF-16 text, every
// character of the ASCII range has one NUL byte.
func looksLikeUTF16(line []byte) bool {
	nuls := bytes.Count(line, []byte{0})
	return nuls > 0 && nuls*4 >= len(line)
}

func utf16WithoutBOMError(path string) *InputError {
	return &InputError{Path: path,
		Problem: "the header contains NUL bytes, so the file is probably UTF-16 without a byte-order mark",
		Fix:     `save it from Excel as "CSV UTF-8"`}
}

// loneCRError returns the *InputError for a carriage return on line that is neither followed by a
// line feed nor inside a quoted value. beforeCRLF is true when CR LF follows it, so that the line ends
// with CR CR LF.
func loneCRError(path string, line int, beforeCRLF bool) *InputError {
	if beforeCRLF {
		// encoding/csv would read CR CR LF as a line break after a carriage return, which it keeps at the
		// end of the last value.
		return &InputError{Path: path, Line: line,
			Problem: fmt.Sprintf("line %d ends with CR CR LF, the line ending that Python's csv module writes on Windows "+
				"to a file opened without newline='', so the last value of every row would end with a stray carriage return", line),
			Fix: `save the file with CR LF or LF line endings, for example from Excel as "CSV UTF-8", ` +
				`or in Python by opening the output file with newline='' before csv.writer writes to it`}
	}
	return &InputError{Path: path, Line: line,
		Problem: fmt.Sprintf("line %d has a carriage return without a line feed (a classic Mac OS line ending) "+
			"outside a quoted value, so the lines on both sides of it would be read as one row", line),
		Fix: `save the file with CR LF or LF line endings, for example from Excel as "CSV UTF-8"`}
}

// readHeader reads the header record and chooses the columns.
func (in *Input) readHeader() error {
	for {
		header, err := in.readRecord()
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
			return in.textError(err)
		}
		if isBlankRecord(header) {
			continue
		}

		// A header that ends with a delimiter, such as "appId,deviceId,", has empty cells at the end that
		// name no column, so a record may omit them.
		in.headerFields = len(header)
		in.fieldCount = len(header)
		for strings.TrimSpace(header[in.fieldCount-1]) == "" {
			in.fieldCount--
		}
		if err := in.chooseColumns(header); err != nil {
			return err
		}
		// A quote opened in the header can take in data rows as well, which only the chosen columns show.
		if fatal := in.checkSwallowedRows(header); fatal != nil {
			return fatal
		}
		return nil
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
		return utf16WithoutBOMError(in.path)
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

func (in *Input) duplicateColumns(kind string, header []string, columns []int) error {
	first, second := columns[0], columns[1]
	return &InputError{Path: in.path,
		Problem: fmt.Sprintf("two %s columns: %s (column %d) and %s (column %d)",
			kind, quoteValue(header[first]), first+1, quoteValue(header[second]), second+1),
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
