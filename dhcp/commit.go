package dhcp

import (
	"context"
	"log/slog"
	"time"
)

// commitJob is lease changes plus the reply to send once they are durable.
type commitJob struct {
	changes []LeaseChange
	send    func()
}

// committer is the group commit: ONE goroutine writes leases, a batch per transaction, and only
// then releases the batch's replies. While one commit runs (an fsync with synchronous=FULL),
// the next batch gathers, so throughput follows the load and no ACK precedes its lease.
type committer struct {
	in       chan commitJob
	out      chan []commitJob
	store    LeaseStore
	linger   time.Duration
	maxBatch int
	m        *metrics
	log      *slog.Logger
}

func newCommitter(store LeaseStore, linger time.Duration, maxBatch int, m *metrics, log *slog.Logger) *committer {
	return &committer{in: make(chan commitJob, 4*maxBatch), out: make(chan []commitJob, 4), store: store,
		linger: linger, maxBatch: maxBatch, m: m, log: log}
}

// submit queues a job; false when the queue is full (the caller counts a drop; the client
// retries).
func (c *committer) submit(j commitJob) bool {
	select {
	case c.in <- j:
		return true
	default:
		return false
	}
}

func (c *committer) run(ctx context.Context) {
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		for batch := range c.out {
			for _, j := range batch {
				j.send()
			}
		}
	}()
	defer func() { close(c.out); <-senderDone }()
	var batch []commitJob
	var changes []LeaseChange
	lastN := 0
	for {
		var first commitJob
		select {
		case first = <-c.in:
		case <-ctx.Done():
			c.flush()
			return
		}
		batch = append(batch[:0:0], first)
		n := len(first.changes)
		var timer <-chan time.Time
		// Linger only under load (the previous batch had company): a lone client at night
		// gets its ACK after one commit, a storm gets fewer, larger commits.
		if c.linger > 0 && lastN > 1 {
			timer = time.After(c.linger)
		}
	gather:
		for n < c.maxBatch {
			if timer == nil {
				select {
				case j := <-c.in:
					batch = append(batch, j)
					n += len(j.changes)
				default:
					break gather
				}
				continue
			}
			select {
			case j := <-c.in:
				batch = append(batch, j)
				n += len(j.changes)
			case <-timer:
				break gather
			}
		}
		changes = changes[:0]
		for _, j := range batch {
			changes = append(changes, j.changes...)
		}
		lastN = len(changes)
		if c.write(changes) {
			c.out <- batch
		}
	}
}

// write commits one batch; on failure the replies are not sent (the clients retry and the
// retries are committed again).
func (c *committer) write(changes []LeaseChange) bool {
	start := time.Now()
	// Not the server's ctx: a batch already promised to clients is finished even at shutdown.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.store.CommitLeases(ctx, changes)
	c.m.commitSeconds.Observe(time.Since(start).Seconds())
	c.m.commitBatch.Observe(float64(len(changes)))
	if err != nil {
		c.log.Error("lease commit failed: replies withheld, clients will retry", "leases", len(changes), "err", err)
		c.m.drops.WithLabelValues("", "store_error").Add(float64(len(changes)))
		return false
	}
	return true
}

// flush commits what is still queued at shutdown.
func (c *committer) flush() {
	var batch []commitJob
	var changes []LeaseChange
	for {
		select {
		case j := <-c.in:
			batch = append(batch, j)
			changes = append(changes, j.changes...)
			continue
		default:
		}
		break
	}
	if len(batch) > 0 && c.write(changes) {
		c.out <- batch
	}
}
