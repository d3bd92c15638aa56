package agent

import (
	"context"
	"sync"
	"time"
)

// job is a unit of work for the sender pool: one batch, a run's control
// operations, or a wake-up (a run whose next send waited for a checkpoint
// save).
type job struct {
	run  *run
	b    *batch // nil: control or wake
	wake bool
}

// jobQueue is an unbounded FIFO: scheduling never blocks while a run's lock
// is held. Its length is bounded by the memory budget, which bounds the
// batches that can exist. It owns its lock (a leaf).
type jobQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []job
	closed bool
}

func newJobQueue() *jobQueue {
	q := &jobQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *jobQueue) push(jobs ...job) {
	if len(jobs) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, jobs...)
	q.mu.Unlock()
	if len(jobs) == 1 {
		q.cond.Signal()
	} else {
		q.cond.Broadcast()
	}
}

// pop blocks until a job is available or the queue is closed.
func (q *jobQueue) pop() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return job{}, false
	}
	j := q.items[0]
	q.items[0] = job{}
	q.items = q.items[1:]
	return j, true
}

func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// budget bounds the bytes of data read but not yet acknowledged. Readers
// wait in wait when it is spent; the files are the buffer meanwhile. It owns
// its lock (a leaf).
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int64
	used  int64
}

func newBudget(limit int64) *budget {
	b := &budget{limit: limit}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// charge counts n bytes without waiting (the bytes already exist).
func (b *budget) charge(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// wait blocks while the budget is spent, until ctx ends.
func (b *budget) wait(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used < b.limit {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	for b.used >= b.limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.cond.Wait()
	}
	return nil
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// lingerList holds runs with partial batches, oldest first. Since every
// batch waits the same linger, arrival order is deadline order. It owns its
// lock (a leaf).
type lingerList struct {
	mu    sync.Mutex
	items []lingerItem
	wake  chan struct{}
}

type lingerItem struct {
	run   *run
	since time.Time
}

func newLingerList() *lingerList { return &lingerList{wake: make(chan struct{}, 1)} }

func (l *lingerList) add(r *run, now time.Time) {
	l.mu.Lock()
	l.items = append(l.items, lingerItem{run: r, since: now})
	first := len(l.items) == 1
	l.mu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// next returns the oldest item without removing it.
func (l *lingerList) next() (lingerItem, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.items) == 0 {
		return lingerItem{}, false
	}
	return l.items[0], true
}

func (l *lingerList) pop() {
	l.mu.Lock()
	l.items[0] = lingerItem{}
	l.items = l.items[1:]
	l.mu.Unlock()
}
