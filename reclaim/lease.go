package reclaim

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// A lease is a run's claim on a folder or a file, kept in a small JSON file that names its holder and
// that the holder rewrites every heartbeat interval. It replaces flock, which network volumes such as
// Azure Files (SMB) and some NFS setups do not enforce between machines.
//
// How a run takes a lease, and why no two runs can both believe they hold it:
//
//  1. It reads the lease file and judges it (judgeLease): absent, held, or free to take over because
//     the holder's process is gone from this host or its heartbeat is stale.
//  2. It writes its own record to a temporary file of its own in the same folder.
//  3. It reads the lease file again and goes on only if it still has the bytes judged in step 1.
//  4. It renames its temporary file over the lease file.
//  5. It waits the settle time, reads the lease file again and holds the lease only if its token is
//     there.
//
// Say runs A and B both believe they hold the lease, and B renamed last. A's verifying read in step 5
// came before B's rename landed. B's read in step 3 came before A's rename landed, because it did not
// see A's token. So B took longer than the settle time from step 3 to the end of step 4. Every run
// measures that span and gives up when it reaches the settle time. Correctness thus rests on each
// run's own clock, never on a guessed bound for another machine. The same check guards each heartbeat
// rewrite. Neither hard links (Azure Files has none) nor exclusive create is used. Exclusive create
// would serve a missing lease, but a takeover would then have to remove a file that another run may
// just have replaced.
//
// NOTE: The protocol assumes that a read by path after a rename on another machine returns the new
// file, as SMB and NFS with close-to-open consistency (the default) give. NFS mounted with nocto, or
// with long attribute caching, can return the old file and break it.

// Names of lease files: leaseFileName in an out dir, and a checkpoint's path with leaseSuffix.
const (
	leaseFileName = ".reclaim.lease"
	leaseSuffix   = ".lease"
)

// Defaults of leaseOptions.
const (
	defaultLeaseHeartbeat = 10 * time.Second
	defaultLeaseStale     = 60 * time.Second
	defaultLeaseSettle    = 500 * time.Millisecond
)

// Log keys of lease messages.
const (
	keyLease         = "lease"
	keyResource      = "resource"
	keyHolder        = "holder"
	keyHolderHost    = "holder_host"
	keyHolderPID     = "holder_pid"
	keyHolderStarted = "holder_started"
	keyHeartbeatAge  = "heartbeat_age"
	keyLeaseFileAge  = "lease_file_age"
)

// errLeaseLost starts the stop reason of a run whose lease another run took or that it could not renew.
var errLeaseLost = errors.New("lost the lease")

// leaseOptions are the timings of a lease and the logger of its messages. Zero durations take the
// defaults. Only tests set them, as no flag does.
type leaseOptions struct {
	// heartbeat is the interval between the holder's rewrites of the lease file.
	heartbeat time.Duration
	// stale is the heartbeat age after which another run takes the lease over. The age is judged from
	// the time in the record against the reader's clock, which assumes that the clocks of all hosts
	// sharing the volume agree within a few seconds, as NTP keeps them in a cluster. judgeLease falls
	// back to the file's modification time for a heartbeat that lies too far in the future.
	stale time.Duration
	// settle is the wait between renaming a record over the lease file and reading it back.
	settle time.Duration
	// drain is how long the holder takes to stop once it finds its lease lost: it gives up renewing
	// early by this much, so that it has stopped before another run may take the lease over.
	drain time.Duration
	// pid replaces os.Getpid() in the record, so that one test process can act as several runs.
	pid    int
	logger zerolog.Logger
}

func (o leaseOptions) withDefaults() leaseOptions {
	setDefault(&o.heartbeat, defaultLeaseHeartbeat)
	setDefault(&o.stale, defaultLeaseStale)
	setDefault(&o.settle, defaultLeaseSettle)
	setDefault(&o.pid, os.Getpid())
	return o
}

// renewLimit returns how long the holder may go without a renewal before it counts its lease as lost.
// It is shorter than stale by two heartbeats and the drain time: the loss is seen at the next tick at
// the latest, and the run has then drained before any other run judges the heartbeat stale.
func (o leaseOptions) renewLimit() time.Duration {
	// NOTE: A drain close to the stale period leaves no margin. The floor only keeps the limit positive,
	// and the command line fixes the drain at DefaultDrain.
	return max(o.stale-2*o.heartbeat-o.drain, o.heartbeat)
}

// leaseOptions returns the options of every lease a run with cfg takes.
func (cfg Config) leaseOptions() leaseOptions {
	opts := cfg.lease
	opts.drain = cfg.Drain
	opts.logger = cfg.Logger
	return opts.withDefaults()
}

// leaseRecord is the content of a lease file.
type leaseRecord struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// BootID and PIDNamespace tell two hosts or containers apart that share a host name. They are
	// Linux's /proc/sys/kernel/random/boot_id and the /proc/self/ns/pid link, and empty elsewhere.
	BootID       string    `json:"boot_id,omitempty"`
	PIDNamespace string    `json:"pid_namespace,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	Heartbeat    time.Time `json:"heartbeat"`
	// Token is a random string that distinguishes two runs with the same process id.
	Token string `json:"token"`
}

// newLeaseRecord returns the record of a new holder with process id pid.
func newLeaseRecord(pid int) leaseRecord {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	return leaseRecord{
		Host:         host,
		PID:          pid,
		BootID:       readTrimmed("/proc/sys/kernel/random/boot_id"),
		PIDNamespace: readLinkOrEmpty("/proc/self/ns/pid"),
		StartedAt:    now,
		Heartbeat:    now,
		Token:        rand.Text(),
	}
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func readLinkOrEmpty(path string) string {
	target, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return target
}

// sameHost reports whether r and other were written in one pid namespace of one booted host, where
// process ids can be checked. Boot id and namespace are compared when both records have them, and
// the host name alone otherwise.
func (r leaseRecord) sameHost(other leaseRecord) bool {
	switch {
	case r.Host == "" || r.Host != other.Host:
		return false
	case r.BootID != "" && other.BootID != "" && r.BootID != other.BootID:
		return false
	case r.PIDNamespace != "" && other.PIDNamespace != "" && r.PIDNamespace != other.PIDNamespace:
		return false
	}
	return true
}

// parseLeaseRecord decodes data, or returns nil when data is not a complete record.
func parseLeaseRecord(data []byte) *leaseRecord {
	var r leaseRecord
	if json.Unmarshal(data, &r) != nil || r.Token == "" || r.PID <= 0 || r.Heartbeat.IsZero() {
		return nil
	}
	return &r
}

// leaseFile is a lease file as a run read it.
type leaseFile struct {
	// data is nil when no lease file exists.
	data    []byte
	modTime time.Time
}

func readLeaseFile(path string) (leaseFile, error) {
	// Lstat first, so that a pipe or a folder at the path is rejected instead of blocking the open.
	if info, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return leaseFile{}, nil
	} else if err == nil && !info.Mode().IsRegular() {
		return leaseFile{}, usageErrorf("lease path %s is not a regular file (%s); remove it, because reclaim keeps its lease file there",
			path, info.Mode().Type())
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return leaseFile{}, nil
	}
	if err != nil {
		return leaseFile{}, usageErrorf("read lease: %w; let reclaim read and write its out dir, or remove the file", err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return leaseFile{}, fmt.Errorf("read lease: %w", err)
	}
	// A record is a few hundred bytes: a larger file is not one and counts as unreadable.
	data, err := io.ReadAll(io.LimitReader(file, 4096))
	if err != nil {
		return leaseFile{}, fmt.Errorf("read lease: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return leaseFile{data: data, modTime: info.ModTime()}, nil
}

// leaseVerdict is the judgement of a lease file by a run that needs the lease.
type leaseVerdict int

const (
	leaseAbsent leaseVerdict = iota
	// leaseHeld: a live holder, or an unreadable file written within the stale period.
	leaseHeld
	// leaseHolderDead: the holder ran on this host and its process is gone.
	leaseHolderDead
	// leaseStale: the heartbeat, or for an unreadable file its modification time, is older than stale.
	leaseStale
)

// judgeLease decides whether the run with record self may take the lease in found at time now. It
// also returns the holder's record, or nil when there is none or it cannot be read.
func judgeLease(found leaseFile, self leaseRecord, now time.Time, stale time.Duration) (leaseVerdict, *leaseRecord) {
	if found.data == nil {
		return leaseAbsent, nil
	}
	holder := parseLeaseRecord(found.data)
	if holder == nil {
		// A half-written file, or one changed by hand: its writer may still be at work.
		if now.Sub(found.modTime) > stale {
			return leaseStale, nil
		}
		return leaseHeld, nil
	}

	if holder.sameHost(self) {
		// Our own process id under another token is an earlier run whose id this process now has.
		if holder.PID == self.PID && holder.Token != self.Token {
			return leaseHolderDead, holder
		}
		if !processAlive(holder.PID) {
			return leaseHolderDead, holder
		}
	}
	if now.Sub(holder.Heartbeat) > stale {
		return leaseStale, holder
	}
	// A heartbeat this far ahead comes from a holder whose clock ran fast, and would keep the lease
	// held long after that holder ended. The modification time comes from another clock, that of the
	// file server or of the host that wrote the file, so it judges the age instead.
	if holder.Heartbeat.Sub(now) > stale && now.Sub(found.modTime) > stale {
		return leaseStale, holder
	}
	return leaseHeld, holder
}

// clockAhead reports whether the heartbeat of the lease in found and its modification time both lie
// more than stale ahead of now, so that the lease stays held only because its writer's clock runs
// ahead. For an unreadable file it checks the modification time alone.
func clockAhead(holder *leaseRecord, found leaseFile, now time.Time, stale time.Duration) bool {
	if holder != nil && holder.Heartbeat.Sub(now) <= stale {
		return false
	}
	return found.modTime.Sub(now) > stale
}

// describeHolder returns the holder of found for messages, such as "process 12 on host h, started
// 2025-01-02T03:04:05Z, last heartbeat 3s ago".
func describeHolder(holder *leaseRecord, found leaseFile, now time.Time) string {
	if holder == nil {
		return "holder unreadable, lease file " + describeAge("last written", found.modTime, now)
	}
	return fmt.Sprintf("process %d on host %s, started %s, %s", holder.PID, holder.Host,
		holder.StartedAt.Format(time.RFC3339), describeAge("last heartbeat", holder.Heartbeat, now))
}

// describeAge returns the age at now of the event named label that happened at time at, such as
// "last heartbeat 3s ago", or "last heartbeat dated 2h0m0s ahead of this host's clock" when at lies in
// the future.
func describeAge(label string, at, now time.Time) string {
	age := now.Sub(at).Round(time.Second)
	if age < 0 {
		return fmt.Sprintf("%s dated %s ahead of this host's clock", label, -age)
	}
	return fmt.Sprintf("%s %s ago", label, age)
}

// describeClockAhead returns the Holder of the BusyError for a lease that clockAhead reports, with
// the way to clear it.
func describeClockAhead(holder *leaseRecord, found leaseFile, now time.Time, path string) string {
	host := "its host"
	if holder != nil {
		host = "host " + holder.Host
	}
	return fmt.Sprintf("%s; the lease file's modification time lies %s ahead of this host's clock too, "+
		"so the clock of %s runs ahead and the lease will not go stale until this clock catches up. "+
		"Once no reclaim runs on %s, remove %s", describeHolder(holder, found, now),
		found.modTime.Sub(now).Round(time.Second), host, host, path)
}

// lease is a lease this process holds, kept alive by a heartbeat goroutine until release.
type lease struct {
	path     string
	resource string
	opts     leaseOptions
	record   leaseRecord

	// renewed is when the record now in the lease file was written, with the monotonic clock reading
	// of this process. The heartbeat goroutine stores it and held reads it.
	renewed atomic.Pointer[time.Time]

	// lost is closed when the lease is lost, after lostErr is set.
	lost    chan struct{}
	lostErr error
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// takeLease takes the lease in the file at path, which guards resource (such as "out dir X"), and
// starts its heartbeat. It returns a *BusyError naming the holder when another run holds the lease,
// and a *UsageError when the folder cannot be written.
func takeLease(path, resource string, opts leaseOptions) (*lease, error) {
	opts = opts.withDefaults()
	l := &lease{path: path, resource: resource, opts: opts, record: newLeaseRecord(opts.pid)}

	// A lease that changes between the judging read and the rename is judged again. A live holder
	// changes it at every heartbeat, so the next round finds it held.
	const rounds = 3
	for round := 1; ; round++ {
		found, err := readLeaseFile(path)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		verdict, holder := judgeLease(found, l.record, now, opts.stale)
		if verdict == leaseHeld && clockAhead(holder, found, now, opts.stale) {
			return nil, &BusyError{Resource: resource, Holder: describeClockAhead(holder, found, now, path)}
		}
		if verdict == leaseHeld {
			return nil, &BusyError{Resource: resource, Holder: describeHolder(holder, found, now)}
		}

		written := time.Now()
		err = l.replace(found, written)
		if errors.Is(err, errLeaseChanged) && round < rounds {
			continue
		}
		if errors.Is(err, errLeaseChanged) {
			return nil, &BusyError{Resource: resource, Holder: "the lease file changed at every try; another run is taking it"}
		}
		if err != nil {
			return nil, err
		}

		time.Sleep(opts.settle)
		if err := l.verify(); err != nil {
			return nil, err
		}
		l.renewed.Store(&written)
		l.logTaken(verdict, holder, found, now)
		break
	}

	l.lost = make(chan struct{})
	l.quit = make(chan struct{})
	l.done = make(chan struct{})
	go l.heartbeat()
	return l, nil
}

// errLeaseChanged is a lease file that no longer has the bytes a run judged.
var errLeaseChanged = errors.New("lease file changed")

// replace renames this run's record, with its heartbeat at now, over the lease file if the file still
// has the bytes of judged. It returns errLeaseChanged when it does not, and a *BusyError when the
// check and the rename took so long that another run may have taken the lease in between.
func (l *lease) replace(judged leaseFile, now time.Time) error {
	l.record.Heartbeat = now.UTC()
	temp, err := l.writeTemp(l.record)
	if err != nil {
		return usageErrorf("%w; check that the folder of %s is writable", err, l.resource)
	}

	checked := time.Now()
	current, err := readLeaseFile(l.path)
	if err != nil {
		os.Remove(temp)
		return err
	}
	if !bytes.Equal(current.data, judged.data) || (current.data == nil) != (judged.data == nil) {
		os.Remove(temp)
		return errLeaseChanged
	}
	if err := os.Rename(temp, l.path); err != nil {
		os.Remove(temp)
		return fmt.Errorf("replace lease %s: %w", l.path, err)
	}

	if took := time.Since(checked); took >= l.opts.settle {
		// NOTE: Our record stays in place so that others keep away, and a run that believed it held the
		// lease finds our token at its next heartbeat. Until then it works on, and a run on this host
		// may also take the lease as soon as this process is gone.
		return &BusyError{Resource: l.resource, Holder: fmt.Sprintf(
			"another run may have taken the lease at the same moment, because checking and renaming the lease file took %s, longer than the settle time %s",
			took.Round(time.Millisecond), l.opts.settle)}
	}
	return nil
}

// writeTemp writes record to a file of this run beside the lease file and returns its path.
func (l *lease) writeTemp(record leaseRecord) (string, error) {
	data, err := json.Marshal(record)
	if err != nil {
		return "", err
	}
	temp := l.path + "." + record.Token + ".tmp"
	file, err := os.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("write lease: %w", err)
	}
	_, err = file.Write(append(data, '\n'))
	if err == nil {
		err = file.Sync()
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(temp)
		return "", fmt.Errorf("write lease: %w", err)
	}
	return temp, nil
}

// verify reads the lease file after the settle time and returns a *BusyError unless it has our token.
func (l *lease) verify() error {
	found, err := readLeaseFile(l.path)
	if err != nil {
		return err
	}
	holder := parseLeaseRecord(found.data)
	if holder != nil && holder.Token == l.record.Token {
		return nil
	}
	if found.data == nil {
		return &BusyError{Resource: l.resource, Holder: "the lease file was removed while this run was taking it"}
	}
	return &BusyError{Resource: l.resource, Holder: describeHolder(holder, found, time.Now())}
}

func (l *lease) logTaken(verdict leaseVerdict, holder *leaseRecord, found leaseFile, judgedAt time.Time) {
	log := l.opts.logger
	var event *zerolog.Event
	switch {
	case verdict == leaseAbsent:
		log.Info().Str(keyResource, l.resource).Str(keyLease, l.path).Msg("took the lease")
		return
	case verdict == leaseHolderDead:
		event = log.Warn()
		defer event.Msg("took over the lease: its holder's process has ended")
	case holder != nil && holder.Heartbeat.After(judgedAt):
		// judgeLease found the heartbeat too far ahead and judged the modification time instead.
		event = log.Warn().Stringer(keyLeaseFileAge, judgedAt.Sub(found.modTime).Round(time.Second))
		defer event.Msg("took over the lease: its heartbeat lies ahead of this host's clock, and the lease file has not been written for longer than the stale period")
	default:
		event = log.Warn()
		defer event.Msg("took over the lease: its heartbeat is stale")
	}
	event.Str(keyResource, l.resource).Str(keyLease, l.path).Str(keyHolder, describeHolder(holder, found, judgedAt))
	if holder != nil {
		event.Str(keyHolderHost, holder.Host).Int(keyHolderPID, holder.PID).Time(keyHolderStarted, holder.StartedAt).
			Stringer(keyHeartbeatAge, judgedAt.Sub(holder.Heartbeat).Round(time.Second))
	}
}
