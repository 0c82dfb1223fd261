package reclaim

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"unicode/utf8"
)

// countingReader counts and hashes the bytes read through it. The count may be read from another
// goroutine, the hash only from the goroutine that reads.
type countingReader struct {
	r    io.Reader
	n    atomic.Int64
	hash hash.Hash // SHA-256

	// opened is the information of the file that r reads, which was opened at path, or nil. When it is
	// set, Read checks the path with checkPathSize once per pathCheckBytes read.
	path      string
	opened    fs.FileInfo
	nextCheck int64 // count of bytes read at which the next check is due
}

// pathCheckBytes is how many bytes countingReader reads between two checks of the path. One stat per
// 64 KiB, about 880 rows of two GUIDs, is little next to the requests for those rows.
const pathCheckBytes = 64 << 10

func newCountingReader(r io.Reader) *countingReader {
	return &countingReader{r: r, hash: sha256.New()}
}

// watchPath makes Read check that path still names a file of the size in opened, the information of
// the file that was opened there.
func (c *countingReader) watchPath(path string, opened fs.FileInfo) {
	c.path, c.opened = path, opened
}

func (c *countingReader) Read(p []byte) (int, error) {
	if read := c.n.Load(); c.opened != nil && read >= c.nextCheck {
		c.nextCheck = read + pathCheckBytes
		if err := checkPathSize(c.path, c.opened); err != nil {
			return 0, err
		}
	}
	n, err := c.r.Read(p)
	c.hash.Write(p[:n])
	c.n.Add(int64(n))
	return n, err
}

// checkPathSize returns an *InputError when path no longer names a file, or names one whose size
// differs from opened, the file opened there. A file of the same size in place of the opened one
// passes, because only a read of its content can tell it apart.
func checkPathSize(path string, opened fs.FileInfo) *InputError {
	const problem = "changed while reclaim was reading it"
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return changedError(path, problem, "the file is no longer at that path")
	case err != nil:
		// NOTE: another failure, such as a network share that does not respond for a moment, is
		// ignored here. The open file may still be readable, and the end of the job checks the path.
		return nil
	case info.Size() == opened.Size():
		return nil
	}
	return changedError(path, problem, sizeChange(opened.Size(), info.Size(), !os.SameFile(opened, info)))
}

// maxLineBytes is the length limit of a physical line of the text, its line feed not counted, and
// maxRecordBytes the limit of a record that a quoted value spreads over several lines. A CSV file of
// ids and a few device details never comes near either. encoding/csv collects a whole record before
// it returns it, so the limits keep a file without line feeds, or with a quote that is never closed,
// from filling memory.
const (
	maxLineBytes   = 1 << 20
	maxRecordBytes = 1 << 20
)

// lineLimiter passes the decoded text through until a line is longer than maxLineBytes. It then
// returns that line up to the first byte over the limit, and an *InputError from then on.
type lineLimiter struct {
	r      io.Reader
	path   string
	line   int  // 1-based number of the line being read, counted by line feeds from the start of the text
	length int  // bytes of that line read so far
	loneCR bool // that line has a carriage return followed by a byte other than a line feed
	endsCR bool // the last byte read is a carriage return
	err    error
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for text := p[:n]; len(text) > 0; {
		end := bytes.IndexByte(text, '\n')
		line := text
		if end >= 0 {
			line = text[:end]
		}
		if l.length+len(line) > maxLineBytes {
			over := maxLineBytes - l.length + 1
			l.noteCRs(line[:over])
			l.err = l.tooLong()
			return n - len(text) + over, l.err
		}
		l.noteCRs(line)
		l.length += len(line)
		if end < 0 {
			break
		}

		l.line++
		l.length = 0
		l.loneCR = false
		l.endsCR = false
		text = text[end+1:]
	}
	return n, err
}

// noteCRs updates loneCR and endsCR with part, the next bytes of the line, which has no line feed.
func (l *lineLimiter) noteCRs(part []byte) {
	if len(part) == 0 {
		return
	}
	if i := bytes.IndexByte(part, '\r'); l.endsCR || i >= 0 && i < len(part)-1 {
		l.loneCR = true
	}
	l.endsCR = part[len(part)-1] == '\r'
}

func (l *lineLimiter) tooLong() *InputError {
	if l.loneCR {
		return &InputError{Path: l.path, Line: l.line,
			Problem: fmt.Sprintf("line %d is longer than 1 MiB and has carriage returns without a line feed, "+
				"so the file probably has classic Mac OS line endings", l.line),
			Fix: `save the file with CR LF or LF line endings, for example from Excel as "CSV UTF-8"`}
	}
	return &InputError{Path: l.path, Line: l.line,
		Problem: fmt.Sprintf("line %d is longer than 1 MiB, which a CSV file of app and device ids never needs", l.line),
		Fix:     "check that this is the exported CSV file, and shorten or delete the long value on that line"}
}

// lineTracker passes the CSV text through to encoding/csv and follows its quoting by the rules of
// encoding/csv. That lets it make the checks that depend on whether a byte is inside a quoted value:
//
//   - a carriage return that is not followed by a line feed outside a quoted value, which encoding/csv
//     keeps in the value, so that the lines on both sides of it become one record;
//   - a record that a quoted value spreads over several lines and that grows longer than
//     maxRecordBytes.
//
// When a check fails, Read passes on the text at most up to the byte that failed, and from then on
// returns an *InputError, which it keeps in err. It keeps a read error from below in err too.
// encoding/csv has read all the text passed on when it returns the record that reaches the end of it,
// so readRecord can tell that record by the reader's InputOffset and return err in its place.
//
// lineTracker also records where the text ends, in the line and column numbering of encoding/csv's
// ParseError. That numbering counts lines by LF and columns in 1-based bytes, in which CR LF is one
// byte and a CR that is the last byte of the text is dropped.
type lineTracker struct {
	r          io.Reader
	path       string
	lineOffset int    // lines of the file before the first line of the text, for messages
	delimiter  []byte // the UTF-8 encoding of the delimiter

	state       quoteState
	special     [256]bool // the bytes that can change the state: quote, CR, LF and the delimiter's first byte
	matched     int       // bytes of a multi-byte delimiter matched so far
	pendingCR   bool      // the last byte is a carriage return outside a quoted value
	recordLine  int       // line where the current record starts
	recordBytes int       // bytes of the current record so far
	delivered   int64
	err         error // the *InputError of a failed check, or the read error from below

	lines   int  // LFs seen
	lastLen int  // length of the line that ends at the last LF, the LF included
	partial int  // bytes after the last LF
	endsCR  bool // the last byte seen is CR
	eof     bool
}

// quoteState is the state of encoding/csv's parser, with LazyQuotes off, at a byte of the CSV text.
type quoteState uint8

const (
	atFieldStart quoteState = iota // before the first byte of a field
	inUnquoted                     // in a field that does not start with a quote
	inQuoted                       // in a quoted field
	afterQuote                     // after a quote in a quoted field, which either closes it or starts ""
	inDelimiter                    // after a closing quote, within a delimiter of several bytes
	inBadLine                      // after a quote error, which ends the record at the end of the line
)

func newLineTracker(r io.Reader, path string, delimiter rune, lineOffset int) *lineTracker {
	t := &lineTracker{r: r, path: path, lineOffset: lineOffset, delimiter: utf8.AppendRune(nil, delimiter), recordLine: 1}
	for _, c := range []byte{'"', '\r', '\n', t.delimiter[0]} {
		t.special[c] = true
	}
	return t
}

func (t *lineTracker) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(p)
	if checked := t.check(p[:n]); checked < n {
		n, err = checked, t.err
	}
	t.count(p[:n])
	t.delivered += int64(n)
	switch {
	case err == io.EOF:
		t.eof = true
	case err != nil:
		// The error may come from the line limit below, which stops its text in the same way.
		t.err = err
	}
	return n, err
}

// check follows the quoting of text and returns len(text). When a check fails, it sets t.err and
// returns the number of bytes to pass on: up to the carriage return that has no line feed, or up to the
// byte that makes the record too long, each included.
func (t *lineTracker) check(text []byte) int {
	line := t.lines + 1
	for i := 0; i < len(text); i++ {
		// Within a field, a run of bytes that are not special changes nothing but the length of the
		// record, so the run is skipped at once.
		if t.matched == 0 && !t.pendingCR && (t.state == inUnquoted || t.state == inQuoted || t.state == inBadLine) {
			run := 0
			for i+run < len(text) && !t.special[text[i+run]] {
				run++
			}
			if line > t.recordLine && t.recordBytes+run > maxRecordBytes {
				t.err = t.recordTooLong(line)
				return i + max(maxRecordBytes-t.recordBytes, 0) + 1
			}
			t.recordBytes += run
			i += run
			if i == len(text) {
				break
			}
		}

		c := text[i]
		if t.pendingCR {
			t.pendingCR = false
			if c != '\n' {
				// The carriage return is the byte before, which may have been passed on already.
				t.err = loneCRError(t.path, line+t.lineOffset, c == '\r' && t.nextIsLF(text[i+1:]))
				return i
			}
		}

		t.recordBytes++
		if line > t.recordLine && t.recordBytes > maxRecordBytes {
			t.err = t.recordTooLong(line)
			return i + 1
		}

		switch {
		case c == '\n' && t.state == inQuoted:
			line++
			continue
		case c == '\n':
			// A line feed outside a quoted value ends the record, also after a quote error.
			line++
			t.state = atFieldStart
			t.matched = 0
			t.recordLine = line
			t.recordBytes = 0
			continue
		case c == '\r' && t.state != inQuoted:
			t.pendingCR = true
			t.matched = 0
			continue
		}

		switch t.state {
		case atFieldStart:
			if c == '"' {
				t.state = inQuoted
				continue
			}
			t.state = inUnquoted
			t.matchDelimiter(c)
		case inUnquoted:
			if c == '"' {
				t.state = inBadLine // ErrBareQuote
				continue
			}
			t.matchDelimiter(c)
		case inQuoted:
			if c == '"' {
				t.state = afterQuote
			}
		case afterQuote:
			switch {
			case c == '"':
				t.state = inQuoted // "" stands for one quote
			case c == t.delimiter[0] && len(t.delimiter) == 1:
				t.state = atFieldStart
			case c == t.delimiter[0]:
				t.state = inDelimiter
				t.matched = 1
			default:
				t.state = inBadLine // ErrQuote
			}
		case inDelimiter:
			if c != t.delimiter[t.matched] {
				t.state = inBadLine // ErrQuote
				t.matched = 0
				continue
			}
			t.matched++
			if t.matched == len(t.delimiter) {
				t.state = atFieldStart
				t.matched = 0
			}
		}
	}
	return len(text)
}

// nextIsLF reports whether the byte after the one being checked is a line feed. rest is the text
// after that byte in the current read. When rest is empty, nextIsLF reads one byte from below, which
// the reader never passes on, so it may be called only after a check has failed.
func (t *lineTracker) nextIsLF(rest []byte) bool {
	if len(rest) > 0 {
		return rest[0] == '\n'
	}
	var next [1]byte
	n, _ := io.ReadFull(t.r, next[:])
	return n == 1 && next[0] == '\n'
}

// matchDelimiter moves from inUnquoted to atFieldStart when c completes the delimiter. The delimiter
// is valid UTF-8, so a match can only start at its first byte, which no other byte of it equals.
func (t *lineTracker) matchDelimiter(c byte) {
	switch {
	case c == t.delimiter[t.matched]:
		t.matched++
	case c == t.delimiter[0]:
		t.matched = 1
	default:
		t.matched = 0
		return
	}
	if t.matched == len(t.delimiter) {
		t.state = atFieldStart
		t.matched = 0
	}
}

func (t *lineTracker) recordTooLong(line int) *InputError {
	start := t.recordLine + t.lineOffset
	return &InputError{Path: t.path, Line: start,
		Problem: fmt.Sprintf("the record that starts on line %d is longer than 1 MiB at line %d because a quoted value runs over "+
			"several lines, so a closing quote is probably missing", start, line+t.lineOffset),
		Fix: `close the quote, or write a quote inside a quoted value as ""`}
}

// count updates the position of the end of the text with the bytes passed on.
func (t *lineTracker) count(text []byte) {
	for rest := text; len(rest) > 0; {
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
