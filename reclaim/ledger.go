package reclaim

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"reclaim/report"
)

// ledgerWindow bounds how far the reader may run ahead of the oldest unfinished row, and so the number
// of finished rows a checkpoint lists one by one.
const ledgerWindow = 10_000

// ledger records finished rows: it appends each outcome line to outcomes.csv and remembers which rows
// are finished, so that a checkpoint vouches for exactly the lines on disk. It is safe for concurrent use.
type ledger struct {
	mu     sync.Mutex
	log    *outcomeLog
	writer *report.OutcomeWriter
	// bytes is the length of outcomes.csv.
	bytes int64
	// err is the first write error; after it the ledger takes no more outcomes, because a torn line
	// would merge with the next one. A failed fence check is kept here too.
	err error
	// fence, unless nil, returns an error when the run may no longer write to outcomes.csv, because
	// its lease may have passed to another run. finish calls it before each line.
	fence func() error

	rows        int
	doneThrough int
	doneAfter   map[int]struct{}
	counts      report.Counts
	// room is closed and replaced whenever doneThrough moves, to wake a reader waiting in waitRoom.
	room chan struct{}
}

// newLedger returns a ledger for a job of rows rows, in the state cp records.
func newLedger(rows int, cp *Checkpoint) *ledger {
	l := &ledger{
		rows:        rows,
		doneThrough: cp.DoneThrough,
		doneAfter:   make(map[int]struct{}, len(cp.DoneAfter)),
		counts:      cp.Counts,
		bytes:       cp.OutcomesBytes,
		room:        make(chan struct{}),
	}
	for _, row := range cp.DoneAfter {
		l.doneAfter[row] = struct{}{}
	}
	return l
}

// attach makes the ledger append to log, whose complete lines after the checkpoint were replayed.
func (l *ledger) attach(log *outcomeLog) {
	l.log = log
	l.writer = report.NewOutcomeWriter(log.file)
	l.bytes = log.size
}

// replay marks the rows of outcome lines read from r as finished. A line for a row that is already
// finished or that the input does not have means the files do not belong together.
func (l *ledger) replay(r io.Reader) error {
	return report.ScanOutcomes(r, func(row int, status report.Status) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if row > l.rows || l.isDoneLocked(row) {
			return fmt.Errorf("%w: row %d is finished twice or is not in the input", report.ErrBadOutcomeLine, row)
		}
		l.markLocked(row, status)
		return nil
	})
}

// finish writes the outcome line of a row and marks the row finished. It writes nothing, from then
// on, once the fence check fails or a write has failed.
func (l *ledger) finish(o report.Outcome) error {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.err != nil {
		return l.err
	}
	if l.isDoneLocked(o.Row) {
		// A second line would break the promise of one line per row.
		return fmt.Errorf("internal error: row %d finished twice", o.Row)
	}
	if l.fence != nil {
		if err := l.fence(); err != nil {
			// The row stays pending for the run that holds the lease now.
			l.err = err
			return err
		}
	}
	n, err := l.writer.Write(o)
	if err != nil {
		// l.bytes stays at the end of the last whole line, where a resume cuts the torn one off.
		l.err = fmt.Errorf("write %s: %w", OutcomesFile, err)
		return l.err
	}
	l.bytes += int64(n)
	l.markLocked(o.Row, o.Status)
	return nil
}

func (l *ledger) markLocked(row int, status report.Status) {
	l.counts.Add(status)
	l.doneAfter[row] = struct{}{}
	moved := false
	for {
		if _, ok := l.doneAfter[l.doneThrough+1]; !ok {
			break
		}
		delete(l.doneAfter, l.doneThrough+1)
		l.doneThrough++
		moved = true
	}
	if moved {
		close(l.room)
		l.room = make(chan struct{})
	}
}

// isDone reports whether row is finished.
func (l *ledger) isDone(row int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isDoneLocked(row)
}

func (l *ledger) isDoneLocked(row int) bool {
	if row <= l.doneThrough {
		return true
	}
	_, ok := l.doneAfter[row]
	return ok
}

// waitRoom blocks until row lies within ledgerWindow of the oldest unfinished row, or ctx ends.
func (l *ledger) waitRoom(ctx context.Context, row int) error {
	for {
		l.mu.Lock()
		room := l.room
		fits := row-l.doneThrough <= ledgerWindow
		l.mu.Unlock()
		if fits {
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finished returns the number of finished rows.
func (l *ledger) finished() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts.Total()
}

// countsNow returns the counts of finished rows by status.
func (l *ledger) countsNow() report.Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

// snapshot copies the progress into cp.
func (l *ledger) snapshot(cp *Checkpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cp.DoneThrough = l.doneThrough
	cp.DoneAfter = make([]int, 0, len(l.doneAfter))
	for row := range l.doneAfter {
		cp.DoneAfter = append(cp.DoneAfter, row)
	}
	slices.Sort(cp.DoneAfter)
	cp.OutcomesBytes = l.bytes
	cp.Counts = l.counts
}

// sync flushes outcomes.csv to disk, so that a checkpoint saved afterwards vouches only for lines that
// survive a power loss.
func (l *ledger) sync() error {
	if l.log == nil {
		return nil
	}
	return l.log.file.Sync()
}

// close closes outcomes.csv.
func (l *ledger) close() error {
	if l.log == nil {
		return nil
	}
	return l.log.file.Close()
}
